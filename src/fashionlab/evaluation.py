"""Metrics from predictions (scikit-learn), and batched inference to get those predictions."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .data import CLASSES, Split, iterate_batches
from .training.precision import autocast, prepare_input


@torch.no_grad()
def predict_proba(model: torch.nn.Module, split: Split, batch_size: int = 1000, precision: str = "fp32",
                  device: torch.device | None = None, tta: bool = False) -> np.ndarray:
    """Class probabilities (N, 10) of a whole split, in eval mode; the model's mode is restored after.

    With `tta`, each image's logits are averaged with those of its mirror image (clothes are symmetric
    enough that flips are also the training augmentation).
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for x, _ in iterate_batches(split, batch_size):
        x = prepare_input(x.to(device, non_blocking=True), model)
        with autocast(device, precision):
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(3)).float()) / 2
        out.append(torch.softmax(logits.float(), dim=1).cpu())
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
                      device: torch.device, tta: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a split (used for per-epoch validation)."""
    probs = torch.from_numpy(predict_proba(model, split, batch_size, precision, device, tta))
    labels = split.labels.cpu()
    loss = torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), labels).item()
    return loss, (probs.argmax(1) == labels).float().mean().item()
