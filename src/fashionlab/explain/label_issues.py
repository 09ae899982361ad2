"""Which training labels look wrong: out-of-fold probabilities from K models, ranked by confident learning.

K models are trained, each on all training images but one fold's (stratified by label, seeded), and each scores
the fold it never saw: every image gets probabilities from a model that did not learn its label. Every image is
ranked by self-confidence (cleanlab's label quality score: the out-of-fold probability of the given label, lowest
first), and cleanlab's `find_label_issues` (confident learning, Northcutt et al. 2021; filter
`prune_by_noise_rate`) flags the images whose given label disagrees with a confident out-of-fold prediction
more than the per-class noise rates it estimates explain: the flagged set is how many to review. The label most
likely in the given one's place is the out-of-fold prediction.

Ranking by self-confidence alone rather than flagged images first: with 1% of the labels flipped at random
(benchmarks/label_noise.py, `fast`, 4 folds, 3 seeds) 86.1% ± 1.0% of its top 1% are flips against 81.9% ±
0.9% for the flagged set first, ranked the same way: the flagged set misses ~13% of the flips (their given label
has a median out-of-fold probability of ~2.5%) and holds ~900 images whose given label got more than 5%.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..data import CLASSES, FashionMNIST
from ..errors import ConfigError
from ..recipes import recipe_settings

RANK_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def fold_of(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of each image: stratified by label, so every fold keeps the class balance."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    which = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        which[held] = k
    return which


def fold_data(data: FashionMNIST, labels: np.ndarray, train_idx: np.ndarray, held_idx: np.ndarray) -> FashionMNIST:
    """A FashionMNIST whose training images are `train_idx` and whose 'test' images are the held-out fold
    `held_idx`, both from the training set and labelled by `labels` (the given, possibly noisy, labels): what
    `training.loop.train(data=...)` trains on and then scores."""
    return dataclasses.replace(data, train_images=data.train_images[train_idx], train_labels=labels[train_idx],
                               test_images=data.train_images[held_idx], test_labels=labels[held_idx])


@dataclass
class OutOfFold:
    probs: np.ndarray          # (N, classes) float32: each image scored by the model that never saw it
    folds: np.ndarray          # (N,) fold of each image
    seconds: list[float]       # wall-clock seconds of each fold (training and scoring)
    accuracy: list[float]      # each fold model's accuracy on its held-out fold, against the given labels
    runs: list[Path]


def out_of_fold_probs(data: FashionMNIST, labels: np.ndarray | None = None, folds: int = 4, recipe: str = "fast",
                      seed: int = 0, root: str | Path = "out/labels/folds", threads: int = 2,
                      limit: int | None = None, show_progress: bool = False, log=print, **overrides) -> OutOfFold:
    """Train `folds` models with `recipe`'s settings (and `overrides`), each on the other folds, and collect the
    held-out probabilities (with the recipe's test-time augmentation, as its test accuracy is measured).

    `labels`: the labels to train and score against (default: the data set's own); `limit`: use only the first
    N training images (quick tries and tests)."""
    from ..training.loop import train

    labels = np.asarray(data.train_labels if labels is None else labels, dtype=np.int64)
    n = min(limit or len(labels), len(labels))
    labels = labels[:n]
    which = fold_of(labels, folds, seed)
    probs = np.zeros((n, len(CLASSES)), dtype=np.float32)
    seconds, accuracy, runs = [], [], []
    base = {**(recipe_settings(recipe) if recipe else {}), "val_size": 0, "train_limit": 0, "test_limit": 0,
            "threads": threads, "seed": seed, **overrides}
    for k in range(folds):
        held, kept = np.flatnonzero(which == k), np.flatnonzero(which != k)
        config = RunConfig.from_dict({**base, "name": f"fold-{k}"})
        if config.batch_size > len(kept):
            raise ConfigError(f"batch_size {config.batch_size} is larger than a fold's {len(kept)} training images")
        start = time.perf_counter()
        run = train(config, root=root, overwrite=True, data=fold_data(data, labels, kept, held),
                    show_progress=show_progress)
        with np.load(run.predictions_path) as saved:
            fold_probs = saved["probs"].astype(np.float32)
        probs[held] = fold_probs / fold_probs.sum(1, keepdims=True)  # saved as float16: re-normalise
        seconds.append(time.perf_counter() - start)
        accuracy.append(float(run.metrics()["accuracy"]))
        runs.append(run.path)
        if log:
            log(f"fold {k + 1}/{folds}: trained on {len(kept):,}, scored {len(held):,} held-out images, "
                f"accuracy {accuracy[-1]:.4f}, {seconds[-1]:.0f} s")
    return OutOfFold(probs, which, seconds, accuracy, runs)


@dataclass
class LabelIssues:
    ranking: np.ndarray    # every image, most suspect first
    flagged: np.ndarray    # bool (N,): flagged by find_label_issues
    scores: np.ndarray     # label quality (N,): lower is more suspect
    suggested: np.ndarray  # (N,) the out-of-fold prediction
    method: str

    def top(self, k: int) -> np.ndarray:
        return self.ranking[:k]


def rank_label_issues(labels: np.ndarray, probs: np.ndarray, method: str = "self_confidence",
                      flagged_first: bool = False) -> LabelIssues:
    """Rank every image by how likely its given label is wrong, from out-of-fold probabilities, and flag the
    ones find_label_issues finds.

    `method`: cleanlab's label quality score (self_confidence, normalized_margin, confidence_weighted_entropy).
    `flagged_first`: the flagged images come first, each group ordered by the score; by default the score alone
    ranks (the module docstring says why)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if method not in RANK_METHODS:
        raise ConfigError(f"unknown ranking '{method}'; choose from {', '.join(RANK_METHODS)}")
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(1, keepdims=True)
    if probs.shape != (len(labels), probs.shape[1]) or labels.max(initial=0) >= probs.shape[1]:
        raise ConfigError(f"labels ({len(labels)}) and probabilities {probs.shape} do not match")
    scores = get_label_quality_scores(labels, probs, method=method)
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)] = True
    # lexsort: last key first; flagged (True) must sort before unflagged, so the key is its negation
    keys = (np.arange(len(labels)), scores) + ((~flagged,) if flagged_first else ())
    ranking = np.lexsort(keys)
    return LabelIssues(ranking, flagged, scores, probs.argmax(1), method)


def precision_recall_at(ranking: np.ndarray, truly_wrong: np.ndarray, k: int) -> tuple[float, float]:
    """Among the top `k` of `ranking`: the share that are truly wrong, and the share of the wrong ones found."""
    wrong = np.zeros(len(ranking), dtype=bool)
    wrong[truly_wrong] = True
    hits = int(wrong[ranking[:k]].sum())
    return hits / max(1, k), hits / max(1, len(truly_wrong))


def flip_labels(labels: np.ndarray, fraction: float = 0.01, seed: int = 0,
                classes: int = len(CLASSES)) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, sorted flipped indices): a seeded random `fraction` of the labels, each moved to a random
    other class (never its own, so every flip is a real error)."""
    rng = np.random.default_rng(seed)
    n = round(fraction * len(labels))
    flipped = np.sort(rng.choice(len(labels), size=n, replace=False))
    noisy = np.array(labels, dtype=np.int64, copy=True)
    noisy[flipped] = (noisy[flipped] + rng.integers(1, classes, size=n)) % classes
    return noisy, flipped


def write_issues_csv(path: str | Path, issues: LabelIssues, labels: np.ndarray, probs: np.ndarray,
                     top: int | None = None) -> Path:
    """index, given label, suggested label, score (and the probabilities of both labels) of the flagged images,
    most suspect first; `top` caps the rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [i for i in issues.ranking if issues.flagged[i]] or list(issues.ranking[: top or 100])
    rows = rows[:top] if top else rows
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["rank", "index", "given_label", "given_class", "suggested_label", "suggested_class", "score",
                      "p_given", "p_suggested"])
        for rank, i in enumerate(rows, 1):
            g, s = int(labels[i]), int(issues.suggested[i])
            out.writerow([rank, int(i), g, CLASSES[g], s, CLASSES[s], f"{issues.scores[i]:.6f}",
                          f"{probs[i, g]:.4f}", f"{probs[i, s]:.4f}"])
    return path


def _fold_rows(which: np.ndarray, accuracy: list, seconds: list) -> list[list]:
    return [[k + 1, f"{int((which != k).sum()):,}", f"{int((which == k).sum()):,}", f"{accuracy[k]:.2%}",
             f"{seconds[k]:.0f}"] for k in range(len(accuracy))]


def label_issues_report(out: str | Path = "out/labels", recipe: str = "fast", folds: int = 4, seed: int = 0,
                        threads: int = 2, limit: int | None = None, top: int = 60, data=None, data_dir=None,
                        reuse: bool = False, show_progress: bool = False, log=print, command: str = "",
                        **overrides) -> tuple[Path, Path, LabelIssues]:
    """`fashionlab labels`: out-of-fold probabilities of the training images (OUT/out_of_fold.npz, fold runs in
    OUT/folds/), the ranking, OUT/label_issues.csv and the gallery OUT/report.html. With `reuse`, probabilities
    saved by an earlier call with the same folds, seed, limit and recipe are ranked again without training."""
    from ..data import load_fashion_mnist
    from .page import write_label_page

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = data or load_fashion_mnist(data_dir)
    labels = np.asarray(data.train_labels, dtype=np.int64)[: limit or None]
    saved = out / "out_of_fold.npz"
    key = np.array(f"recipe={recipe} folds={folds} seed={seed} limit={limit or 0} "
                   f"overrides={sorted(overrides.items())}")
    fold_rows = None
    if reuse and saved.is_file():
        with np.load(saved) as npz:
            if str(npz["key"]) != str(key):
                raise ConfigError(f"{saved} was made with {npz['key']}, not {key}; drop --reuse to train again")
            probs = npz["probs"].astype(np.float32)
            if "fold_seconds" in npz:
                fold_rows = _fold_rows(npz["folds"], list(npz["fold_accuracy"]), list(npz["fold_seconds"]))
        if log:
            log(f"reusing the out-of-fold probabilities in {saved}")
    else:
        oof = out_of_fold_probs(data, labels, folds, recipe, seed, out / "folds", threads, limit, show_progress, log,
                                **overrides)
        probs = oof.probs
        np.savez_compressed(saved, probs=probs, folds=oof.folds, labels=labels, key=key,
                            fold_accuracy=np.array(oof.accuracy), fold_seconds=np.array(oof.seconds))
        fold_rows = _fold_rows(oof.folds, oof.accuracy, oof.seconds)
    issues = rank_label_issues(labels, probs)
    csv_path = write_issues_csv(out / "label_issues.csv", issues, labels, probs)
    oof_accuracy = float((probs.argmax(1) == labels).mean())
    about = (f"{folds} models ({recipe or 'custom'} settings), each trained on {folds - 1} of {folds} stratified "
             f"folds of the {len(labels):,} training images, scored the fold they never saw (out-of-fold accuracy "
             f"against the given labels: {oof_accuracy:.2%}). cleanlab's find_label_issues (confident learning, "
             f"prune_by_noise_rate) flagged {int(issues.flagged.sum()):,} labels "
             f"({issues.flagged.mean():.2%}). Images are ranked by self-confidence, the out-of-fold probability of "
             "the given label, lowest first. A flagged image is a candidate for review, not a proven error: many are "
             "ambiguous (a shirt that could be a T-shirt) rather than mislabelled.")
    page = write_label_page(out, data, labels, probs, issues, top, about, fold_rows, command)
    return page, csv_path, issues
