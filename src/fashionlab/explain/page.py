"""The explain page of one finished run: where it fails, why it answers, how sure it is, what it learned.

One self-contained HTML file (report/html.py, the study report's look) with every figure embedded and also
saved as PNG under OUT/figures/, tables also as CSV, and the fitted temperature saved with the run
(RUN/calibration.json). Each part is a library function of its own module; this one only lays them out.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from ..data import CLASSES
from ..report.html import Report
from ..runs import open_run
from . import figures
from .attributions import METHOD_TITLES, explain_items, items_from_spec, methods_for, select_items
from .calibration import calibrate, save_calibration
from .drawing import fig_attributions
from .embedding import SAMPLE, embed
from .failures import confused_pairs, confusion, highest_loss, per_class_accuracy
from .outputs import RunOutputs, run_outputs


class _Clock:
    """Seconds per part of the page, for its last table (and docs/EXPLAIN.md)."""

    def __init__(self):
        self.parts: list[tuple[str, float, float]] = []  # (part, wall-clock seconds, CPU seconds of all threads)
        self._start = (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.parts.append((name, now[0] - self._start[0], now[1] - self._start[1]))
        self._start = now


def explain_run(run_name, out: str | Path | None = None, root=None, images: list[str] | None = None,
                thumbnails: int = 0, sample: int = SAMPLE, worst: int = 24, explain_worst: int = 6,
                correct_per_class: int = 1, data=None, data_dir=None, seed: int = 0, log=None) -> Path:
    """Write OUT/report.html (default OUT: RUN/explain) for a finished run and return its path.

    `images`: test indices or image files to explain instead of the default choice (the `explain_worst`
    highest-loss errors and each class's `correct_per_class` most confident correct images). `thumbnails`: draw
    that many images on the t-SNE map. `sample`: test images in the map."""
    clock = _Clock()
    run = open_run(run_name, root)
    run.metrics()  # a clear error for an unfinished run, before anything is computed
    o = run_outputs(run.path, data=data, data_dir=data_dir)
    out = Path(out) if out else run.path / "explain"
    clock.lap("load the model, score the test (and validation) images")
    say = log or (lambda _msg: None)
    model_name = o.record["model_name"]
    accuracy = float((o.probs.argmax(1) == o.labels).mean())
    report = Report(out, f"fashionlab explain: {run.name}",
                    f"{model_name}, test accuracy {accuracy:.2%} on {len(o.labels):,} images "
                    f"(test-time augmentation: {o.tta})")

    say("where it fails")
    _failures(report, o, worst)
    clock.lap("where it fails")
    say("why it answers (attributions)")
    _attributions(report, o, images, explain_worst, correct_per_class)
    clock.lap("why it answers: attributions")
    say("how sure it is (calibration)")
    _calibration(report, o, seed)
    clock.lap("how sure it is: temperature scaling")
    say("what it learned (t-SNE)")
    _embedding(report, o, sample, thumbnails, seed)
    clock.lap("what it learned: t-SNE map")
    section = report.section("Time per part")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    section.text(f"Seconds of each part of this page on this machine ({os.cpu_count()} logical cores, "
                 f"{torch.get_num_threads()} torch threads, load average {load:.1f} at the end; writing the page "
                 "itself is not counted). CPU seconds add up all threads; wall-clock seconds grow when other "
                 "processes share the cores.")
    rows = [[name, f"{wall:.1f}", f"{cpu:.1f}"] for name, wall, cpu in clock.parts]
    rows.append(["total", f"{sum(p[1] for p in clock.parts):.1f}", f"{sum(p[2] for p in clock.parts):.1f}"])
    section.table("Seconds per part", ["Part", "Wall-clock seconds", "CPU seconds"], rows, name="timings")
    return report.write()


def _failures(report: Report, o: RunOutputs, k: int) -> None:
    probs, labels, images = o.probs, o.labels, o.test.images
    pred = probs.argmax(1)
    s = report.section("Where it fails")
    worst = highest_loss(probs, labels, k)
    wrong = int((pred != labels).sum())
    s.text(f"{wrong:,} of the {len(labels):,} test images are misclassified. The highest-loss images are those whose "
           "true class got the lowest probability: confident mistakes, and images whose label is itself doubtful.")
    s.figure("highest_loss", figures.fig_highest_loss(images, worst),
             f"The {len(worst)} test images with the highest cross-entropy loss, worst first: index in the test set, "
             "true and predicted class, the prediction's confidence and the true class's probability.")
    s.table("Highest-loss test images", ["Test index", "True", "Predicted", "Confidence", "p(true)", "Loss"],
            [[f.index, CLASSES[f.label], CLASSES[f.predicted], f"{f.confidence:.1%}", f"{f.true_prob:.2%}",
              f"{f.loss:.2f}"] for f in worst], name="highest_loss")
    cm = confusion(labels, pred, len(CLASSES))
    acc = per_class_accuracy(labels, pred, len(CLASSES))
    s.figure("confusion_and_accuracy", figures.fig_confusion_and_accuracy(cm, acc),
             "Left: rows are the true class, columns the predicted one; counts, coloured by the share of the true "
             "class. Right: each class's accuracy (its recall).")
    pairs = confused_pairs(probs, labels, 5, 4)
    if pairs:
        s.figure("confused_pairs", figures.fig_confused_pairs(images, pairs, probs.max(1), 4),
                 "The class pairs with the most mistakes between them, both directions counted; left of the gap: "
                 "images of the first class taken for the second, right: the other way; each direction's most "
                 "confident mistakes, with the prediction's confidence.")
        s.table("Most-confused class pairs", ["Pair", "A taken for B", "B taken for A", "Mistakes", "Share of all"],
                [[f"{CLASSES[p.a]} / {CLASSES[p.b]}", p.a_as_b, p.b_as_a, p.total, f"{p.total / max(1, wrong):.1%}"]
                 for p in pairs], name="confused_pairs")


def _attributions(report: Report, o: RunOutputs, specs, worst: int, per_class: int) -> None:
    methods = methods_for(o.model)
    s = report.section("Why it answers")
    names = ", ".join(METHOD_TITLES[m] for m in methods)
    conv = "gradcam" in methods
    s.text(f"Attribution maps ({names}) of the logit of the predicted class and, for a mistake, of the true class. "
           "Red pixels raise that class's score, blue ones lower it"
           + (" (Grad-CAM is clipped at zero: red only)" if conv else "")
           + ". Integrated Gradients: 32 steps from a black image; occlusion: 4x4 black patches at stride 2"
           + ("; Grad-CAM: the last convolution's maps weighed by their gradients, upsampled to 28x28." if conv else
              ". Grad-CAM is left out: it needs a convolution and this network has none.")
           + " The maps explain one view of each image, without test-time augmentation.")
    if specs:
        items = items_from_spec(specs, o.test.images, o.probs, o.labels, o.model, o.record["mean"], o.record["std"],
                                o.tta)
        groups = [("chosen", items, "The chosen images")]
    else:
        items = select_items(o.test.images, o.probs, o.labels, worst, per_class)
        groups = [("errors", [i for i in items if i.kind == "error"],
                   f"The {worst} highest-loss mistakes: what the model saw for its answer, and for the true class"),
                  ("correct", [i for i in items if i.kind == "correct"],
                   "Each class's most confident correct image: what the model keys on when it is right")]
    explain_items(o.model, items, methods)
    for name, group, title in groups:
        if group:
            s.figure(f"attributions_{name}", fig_attributions(group, methods, title),
                     f"{title}. Red: raises the class's logit; blue: lowers it; colour scale per map (99th "
                     "percentile of its magnitude).")


def _calibration(report: Report, o: RunOutputs, seed: int) -> None:
    val_labels = o.val.labels.numpy() if o.val is not None else None
    result = calibrate(o.test_logits, o.labels, o.val_logits, val_labels, tta=o.tta, seed=seed)
    path = save_calibration(o.run, result.calibration)
    c = result.calibration
    s = report.section("How sure it is")
    s.text("Expected calibration error (ECE): the test images are put into 15 equal-width bins by their confidence "
           "(the probability of the predicted class); ECE is the image-weighted mean gap between each bin's accuracy "
           "and its mean confidence. Temperature scaling divides the logits by one number T fitted to minimise the "
           "negative log-likelihood on held-out images; T > 1 makes the model less sure, T < 1 surer, and the "
           "predicted class never changes.")
    s.text(c.description)
    s.figure("reliability", figures.fig_reliability(result),
             "Reliability diagrams: bars are each bin's accuracy, the shaded part its gap to the bin's mean "
             "confidence; below, the images per bin (log scale). Bars under the diagonal: over-confident.")
    s.table("Calibration on the test set", ["", "ECE", "Negative log-likelihood", "Accuracy"],
            [["before (T = 1)", f"{c.ece_before:.2%}", f"{c.nll_before:.4f}",
              f"{(result.probs_before.argmax(1) == o.labels).mean():.2%}"],
             [f"after (T = {c.temperature:.3f})", f"{c.ece_after:.2%}", f"{c.nll_after:.4f}",
              f"{(result.probs_after.argmax(1) == o.labels).mean():.2%}"]], name="calibration")
    s.text(f"Saved as {path}: calibrated probabilities are softmax(logits / {c.temperature:.3f}) "
           "(fashionlab.explain.calibration: load_temperature(run), calibrated_probabilities(logits_or_probs, T)).")


def _embedding(report: Report, o: RunOutputs, sample: int, thumbnails: int, seed: int) -> None:
    pred = o.probs.argmax(1)
    emb = embed(o.model, o.test.images, o.labels, pred, sample, seed)
    s = report.section("What it learned")
    s.text(f"The {emb.features} features the last Linear layer receives (a forward hook), for a class-stratified "
           f"sample of {len(emb.indices):,} test images, mapped to 2-D by t-SNE (scikit-learn, perplexity 30, PCA "
           "start). Neighbours in the map are neighbours in the feature space; distances between clusters and "
           "cluster sizes carry little meaning. Black crosses: misclassified images, usually on the border "
           "between two clusters or inside the wrong one.")
    wrong = emb.labels != emb.predicted
    s.figure("embedding", figures.fig_embedding(emb, o.test.images, thumbnails, seed),
             f"t-SNE of the penultimate features; {int(wrong.sum())} of the {len(emb.indices):,} points are "
             "misclassified" + (f"; {thumbnails} images drawn at their points." if thumbnails else "."))
    # how mixed each class's neighbourhood is: the share of a point's 10 nearest map neighbours of another class
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=11).fit(emb.points)
    _, idx = nn.kneighbors(emb.points)
    other = (emb.labels[idx[:, 1:]] != emb.labels[:, None]).mean(1)
    table = []
    for c, name in enumerate(CLASSES):
        here = emb.labels == c
        if not here.any():
            continue
        counts = np.bincount(emb.labels[idx[here, 1:]].ravel(), minlength=len(CLASSES)).astype(float)
        counts[c] = -1
        table.append([name, int(here.sum()), f"{other[here].mean():.1%}", CLASSES[int(counts.argmax())]
                      if counts.max() > 0 else "-"])
    s.table("How mixed each class is in the map: the share of each point's 10 nearest neighbours (in the map) that "
            "belong to another class, and the class most often among them", ["Class", "Points",
            "Neighbours of another class", "Most frequent other class"], table, name="embedding_neighbours")


def write_label_page(out: str | Path, data, labels: np.ndarray, probs: np.ndarray, issues, top: int = 60,
                     about: str = "", fold_rows: list[list] | None = None, command: str = "") -> Path:
    """OUT/report.html: a gallery and a table of the `top` most suspect training labels, and what was done."""
    report = Report(out, "fashionlab labels: suspected label errors in the training set",
                    f"{int(issues.flagged.sum()):,} of {len(labels):,} training labels flagged by confident learning")
    s = report.section("Suspected label errors")
    if about:
        s.text(about)
    shown = issues.ranking[:top]
    p_given = probs[shown, labels[shown]]
    s.figure("label_suspects", figures.fig_label_suspects(data.train_images[shown], shown, labels[shown],
                                                          issues.suggested[shown], p_given),
             f"The {len(shown)} most suspect training images: index in the 60,000 training images, the given "
             "label, the suggested one (the out-of-fold prediction) and the out-of-fold probability of the given "
             "label.")
    s.table(f"The {len(shown)} most suspect labels (all flagged ones are in label_issues.csv)",
            ["Rank", "Index", "Given", "Suggested", "p(given)", "p(suggested)", "Flagged"],
            [[r + 1, int(i), CLASSES[labels[i]], CLASSES[issues.suggested[i]], f"{probs[i, labels[i]]:.2%}",
              f"{probs[i, issues.suggested[i]]:.1%}", "yes" if issues.flagged[i] else "no"]
             for r, i in enumerate(shown)])
    flagged = np.flatnonzero(issues.flagged)
    if len(flagged):
        pairs = {}
        for i in flagged:
            key = (CLASSES[labels[i]], CLASSES[issues.suggested[i]])
            pairs[key] = pairs.get(key, 0) + 1
        rows = [[g, sug, n, f"{n / len(flagged):.1%}"] for (g, sug), n in sorted(pairs.items(), key=lambda t: -t[1])]
        s.table("Flagged labels by given and suggested class", ["Given", "Suggested", "Images", "Share"], rows[:15],
                name="flagged_pairs")
    if fold_rows:
        h = report.section("How the probabilities were made")
        h.table("One model per fold, each scoring the fold it never trained on",
                ["Fold", "Trained on", "Scored", "Accuracy on the held-out fold (given labels)", "Seconds"],
                fold_rows, name="folds")
        if command:
            h.code(command, summary="command")
    return report.write()
