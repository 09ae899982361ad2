"""The explain page's figures: one function per figure, plain values in, a matplotlib Figure out (the report's
style: report/style.py). Images are drawn as the study report draws them: dark clothes on white."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..data import CLASSES
from ..report.figures import draw_confusion
from ..report.style import PALETTE, plt
from .calibration import CalibrationResult, reliability_bins
from .drawing import RIGHT, WRONG, bare, pixels, show
from .embedding import Embedding
from .failures import ConfusedPair, Failure

FEW = 20  # reliability bins with fewer images are drawn faint


def _grid(n: int, cols: int, cell=(1.35, 1.6)):
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cell[0] * cols, cell[1] * rows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def fig_highest_loss(images: torch.Tensor, failures: list[Failure], cols: int = 8):
    """The highest-loss test images: true label, prediction and its confidence, the true class's probability."""
    fig, axes = _grid(len(failures), cols, cell=(1.45, 1.75))
    for ax, f in zip(axes, failures):
        ok = f.predicted == f.label
        show(ax, images[f.index], f"#{f.index} true {CLASSES[f.label]}\npred {CLASSES[f.predicted]} "
             f"{f.confidence:.0%}\np(true) {f.true_prob:.1%}", RIGHT if ok else WRONG, 7)
    fig.suptitle("Highest-loss test images, worst first (true class, prediction and its confidence, "
                 "probability of the true class)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_confused_pairs(images: torch.Tensor, pairs: list[ConfusedPair], confidence: np.ndarray, examples: int = 4):
    """One row per most-confused pair: its most confident mistakes each way, A taken for B left, B for A right."""
    rows = max(1, len(pairs))
    ratios = [1.1] + [1] * examples + [0.3] + [1.1] + [1] * examples
    fig, axes = plt.subplots(rows, len(ratios), figsize=(1.3 * sum(ratios), 1.5 * rows + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": ratios})
    for ax in axes.flat:
        ax.axis("off")
    for r, p in enumerate(pairs):
        sides = ((p.examples_a_as_b, p.a, p.b, p.a_as_b), (p.examples_b_as_a, p.b, p.a, p.b_as_a))
        for s, (idx, true, pred, count) in enumerate(sides):
            start = s * (examples + 2)
            axes[r][start].text(0.95, 0.5, f"{CLASSES[true]}\ntaken for\n{CLASSES[pred]}:\n{count} image"
                                + ("s" if count != 1 else ""), ha="right", va="center", fontsize=8,
                                fontweight="bold", transform=axes[r][start].transAxes)
            for c, i in enumerate(idx[:examples]):
                ax = axes[r][start + 1 + c]
                ax.axis("on")
                show(ax, images[i], f"#{i} ({confidence[i]:.0%})", WRONG, 7)
    fig.suptitle("Most-confused class pairs (most mistakes both ways first): each direction's most confident "
                 "mistakes, with the prediction's confidence", fontsize=10)
    fig.tight_layout()
    return fig


def fig_confusion_and_accuracy(cm: np.ndarray, accuracy: np.ndarray):
    """Confusion matrix (counts, coloured by the share of the true class) and each class's accuracy beside it."""
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(10.5, 4.6), gridspec_kw={"width_ratios": [1.25, 1]})
    draw_confusion(ax, cm, "confusion matrix", fontsize=7)
    y = np.arange(len(CLASSES))
    colors = [WRONG if a < np.nanmean(accuracy) else "steelblue" for a in accuracy]
    bar.barh(y, accuracy, color=colors)
    low = np.nanmin(accuracy)
    left = max(0, low - 0.15)
    for yy, a in zip(y, accuracy):
        inside = a - left > 0.12  # the number inside a long bar, after a short one
        bar.text(a - 0.01 if inside else a + 0.01, yy, f"{a:.1%}", ha="right" if inside else "left", va="center",
                 fontsize=7.5, color="white" if inside else "black")
    bar.set_yticks(y, CLASSES, fontsize=7.5)
    bar.invert_yaxis()
    bar.set_xlim(left, 1)
    bar.axvline(np.nanmean(accuracy), color="grey", ls=":", lw=1)
    bar.set(title=f"accuracy per class (recall); dotted: their mean, {np.nanmean(accuracy):.1%}; red: below it",
            xlabel="share of the class predicted right")
    fig.tight_layout()
    return fig


def fig_reliability(result: CalibrationResult):
    """Reliability diagrams before and after temperature scaling: accuracy per confidence bin against the
    diagonal of perfect calibration, the gap shaded; below, how many images fall in each bin."""
    cal = result.calibration
    fig, axes = plt.subplots(2, 2, figsize=(10, 5.6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    for c, (probs, name, ece) in enumerate(((result.probs_before, "before: the model's own probabilities",
                                             cal.ece_before),
                                            (result.probs_after, f"after temperature scaling (T = {cal.temperature:.2f}"
                                             + (", cross-fitted halves)" if cal.fitted_on == "test-halves" else ")"),
                                             cal.ece_after))):
        bins = reliability_bins(probs, result.labels, cal.bins)
        centres, width = (bins.edges[:-1] + bins.edges[1:]) / 2, bins.edges[1] - bins.edges[0]
        ax, hist = axes[0][c], axes[1][c]
        # a bin of a handful of images says little; drawn faint so its bar does not dominate the eye
        for few, alpha in ((False, 1.0), (True, 0.25)):
            sel = (bins.counts > 0) & ((bins.counts < FEW) == few)
            ax.bar(centres[sel], bins.accuracy[sel], width=width * 0.95, color="steelblue", alpha=alpha,
                   label=None if few else "accuracy")
            ax.bar(centres[sel], (bins.confidence - bins.accuracy)[sel], bottom=bins.accuracy[sel],
                   width=width * 0.95, facecolor="none", edgecolor="firebrick", hatch="///", linewidth=0.8,
                   alpha=alpha, label=None if few else "gap to the bin's mean confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy in the bin", title=f"{name}\nECE {ece:.2%}")
        ax.legend(loc="upper left", fontsize=7)
        hist.bar(centres, bins.counts, width=width * 0.95, color="grey")
        hist.set_yscale("log")
        hist.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        hist.yaxis.set_minor_formatter(NullFormatter())
        hist.set(xlabel="confidence (probability of the predicted class)", ylabel="images")
    fig.suptitle(f"Reliability on the {len(result.labels):,} test images ({cal.bins} equal-width bins; faint: bins of "
                 f"fewer than {FEW} images)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def fig_embedding(emb: Embedding, images: torch.Tensor | None = None, thumbnails: int = 0, seed: int = 0):
    """t-SNE map of the penultimate features, one colour per true class; black crosses mark misclassified images;
    with `thumbnails`, that many images drawn at their points."""
    fig, ax = plt.subplots(figsize=(10, 8))
    for c, name in enumerate(CLASSES):
        here = emb.labels == c
        ax.scatter(emb.points[here, 0], emb.points[here, 1], s=6, color=PALETTE[c], label=name, alpha=0.8,
                   linewidths=0)
    wrong = emb.labels != emb.predicted
    ax.scatter(emb.points[wrong, 0], emb.points[wrong, 1], s=16, marker="x", color="black", linewidths=0.8,
               label=f"misclassified ({wrong.sum()})")
    if thumbnails and images is not None:
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage

        rng = np.random.default_rng(seed)
        for j in rng.choice(len(emb.indices), size=min(thumbnails, len(emb.indices)), replace=False):
            box = OffsetImage(pixels(images[emb.indices[j]]), cmap="gray_r", zoom=0.7)
            ax.add_artist(AnnotationBbox(box, emb.points[j], frameon=True, pad=0.05,
                                         bboxprops={"edgecolor": PALETTE[emb.labels[j]], "lw": 1.2}))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set(title=f"t-SNE of the penultimate layer's {emb.features} features of {len(emb.indices):,} test images "
                 "(colour: true class)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=2, fontsize=8)
    fig.tight_layout()
    return fig


def fig_label_suspects(images: np.ndarray, indices: np.ndarray, given: np.ndarray, suggested: np.ndarray,
                       p_given: np.ndarray, cols: int = 10):
    """A gallery of suspected label errors: the training image, its given label and the suggested one."""
    fig, axes = _grid(len(indices), cols, cell=(1.35, 1.95))
    for n, ax in enumerate(axes):
        ax.imshow(images[n] / 255.0, cmap="gray_r", vmin=0, vmax=1)
        bare(ax)
        ax.set_title(f"{n + 1}. #{indices[n]}\ngiven {CLASSES[given[n]]}\nsuggest {CLASSES[suggested[n]]}\n"
                     f"p(given) {p_given[n]:.1%}", fontsize=6.5)
    fig.suptitle("Suspected label errors in the training set, most suspect first (out-of-fold probability of the "
                 "given label)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title above 4-line labels
    return fig
