"""Where a model fails: its highest-loss test images, its most-confused class pairs, its per-class accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def per_image_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each image: -log p(true class)."""
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))


@dataclass
class Failure:
    index: int          # position in the scored test set
    label: int
    predicted: int
    confidence: float   # probability of the predicted class
    true_prob: float    # probability of the true class
    loss: float


def highest_loss(probs: np.ndarray, labels: np.ndarray, k: int = 24) -> list[Failure]:
    """The `k` test images with the highest loss, worst first (ties: lower index first)."""
    loss = per_image_loss(probs, labels)
    order = np.lexsort((np.arange(len(loss)), -loss))[:k]
    pred = probs.argmax(1)
    return [Failure(int(i), int(labels[i]), int(pred[i]), float(probs[i, pred[i]]), float(probs[i, labels[i]]),
                    float(loss[i])) for i in order]


def confusion(labels: np.ndarray, pred: np.ndarray, classes: int = 10) -> np.ndarray:
    return np.bincount(labels * classes + pred, minlength=classes * classes).reshape(classes, classes)


@dataclass
class ConfusedPair:
    a: int
    b: int
    a_as_b: int                  # images of class a predicted as b
    b_as_a: int
    examples_a_as_b: list[int]   # test indices, most confident mistakes first
    examples_b_as_a: list[int]

    @property
    def total(self) -> int:
        return self.a_as_b + self.b_as_a


def confused_pairs(probs: np.ndarray, labels: np.ndarray, k: int = 5, examples: int = 4) -> list[ConfusedPair]:
    """The `k` unordered class pairs with the most mistakes between them (both directions counted), each with
    up to `examples` of its most confident mistakes in each direction."""
    pred = probs.argmax(1)
    cm = confusion(labels, pred, probs.shape[1])
    both = cm + cm.T
    pairs = sorted(((int(both[a, b]), a, b) for a in range(len(cm)) for b in range(a + 1, len(cm))
                    if both[a, b] > 0), key=lambda t: (-t[0], t[1], t[2]))[:k]
    conf = probs.max(1)

    def worst(true: int, as_: int) -> list[int]:
        idx = np.flatnonzero((labels == true) & (pred == as_))
        return [int(i) for i in idx[np.argsort(-conf[idx], kind="stable")][:examples]]

    return [ConfusedPair(a, b, int(cm[a, b]), int(cm[b, a]), worst(a, b), worst(b, a)) for _, a, b in pairs]


def per_class_accuracy(labels: np.ndarray, pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """Recall of each class: the share of its images predicted as it (NaN for a class with no images)."""
    cm = confusion(labels, pred, classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(1)
