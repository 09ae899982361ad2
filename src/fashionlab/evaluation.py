"""Metrics from predictions (scikit-learn), batched inference to get those predictions, and a finished run's
model scored again on a chosen split."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .artifacts import load_run_model
from .config import tta_mode
from .data import CLASSES, Split, iterate_batches, load_fashion_mnist, make_splits
from .data.augment import BACKGROUND
from .errors import RunError
from .training.precision import autocast, prepare_input

SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def shifted(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """`x` moved by (dx, dy) pixels, the uncovered border filled with the background (black) value."""
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=BACKGROUND)
    h, w = x.shape[-2:]
    return padded[..., 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]


def tta_views(x: torch.Tensor, tta: str | bool) -> list[torch.Tensor]:
    """The versions of a batch whose predictions are averaged.

    `flip`: the image and its mirror (clothes are symmetric enough that flips are also the training
    augmentation). `flip-shift`: those two, each also moved by one pixel in four directions (10 views),
    the test-time counterpart of random-crop training (airbench's multi-crop TTA): about +0.25 points of
    validation accuracy for the `fast` recipe, for five times the evaluation cost.
    """
    mode = tta_mode(tta)
    views = [x] if mode == "none" else [x, x.flip(3)]
    if mode == "flip-shift":
        views += [shifted(v, dx, dy) for v in views for dx, dy in SHIFTS]
    return views


@torch.no_grad()
def predict_proba(model: torch.nn.Module, split: Split, batch_size: int = 1000, precision: str = "fp32",
                  device: torch.device | None = None, tta: str | bool = "none") -> np.ndarray:
    """Class probabilities (N, 10) of a whole split, in eval mode; the model's mode is restored after.

    With `tta` (see `tta_views`) the logits of several versions of each image are averaged.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for x, _ in iterate_batches(split, batch_size):
        x = x.to(device, non_blocking=True)
        with autocast(device, precision):
            views = tta_views(x, tta)
            logits = sum(model(prepare_input(v, model)).float() for v in views) / len(views)
        out.append(torch.softmax(logits, dim=1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, per-class and mean precision/recall/F1, and the confusion matrix, as plain values."""
    pred = probs.argmax(1)
    classes = list(range(len(CLASSES)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, pred, labels=classes,
                                                                     zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "precision_mean": float(precision.mean()),
        "recall_mean": float(recall.mean()),
        "f1_mean": float(f1.mean()),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(CLASSES, precision, recall, f1, support)},
        "confusion_matrix": confusion_matrix(labels, pred, labels=classes).tolist(),
        "n": int(len(labels)),
    }


def loss_and_accuracy(model: torch.nn.Module, split: Split, batch_size: int, precision: str,
                      device: torch.device, tta: str | bool = "none") -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a split (used for per-epoch validation)."""
    probs = torch.from_numpy(predict_proba(model, split, batch_size, precision, device, tta))
    labels = split.labels.cpu()
    loss = torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), labels).item()
    return loss, (probs.argmax(1) == labels).float().mean().item()


def evaluate_run(run_name, split: str = "test", root=None, data_dir=None, device: str = "auto",
                 tta: str | None = None) -> dict:
    """Metrics of a finished run on its test or validation split, with its own TTA unless `tta` names another."""
    model, record = load_run_model(run_name, root, device)
    config = record["config"]
    splits = make_splits(load_fashion_mnist(data_dir or config.get("data_dir")), config["val_size"],
                         config["split_seed"])
    data = splits.test if split == "test" else splits.val
    if data is None:
        raise RunError(f"run {run_name} trained without a validation split; evaluate it with --split test")
    dev = next(model.parameters()).device
    probs = predict_proba(model, data.to(dev), config["eval_batch_size"], record["precision"], dev,
                          tta or config.get("tta", "none"))
    return classification_metrics(data.labels.numpy(), probs)
