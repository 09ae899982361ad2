"""A finished run's model and its logits on the images it was scored on: what every part of the explain page
starts from.

The logits are recomputed rather than read from test_predictions.npz: that file keeps float16 probabilities,
in which the smallest ones round to 0, and temperature scaling needs finite logits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..artifacts import load_run_model
from ..data import FashionMNIST, Split, iterate_batches, load_fashion_mnist, make_splits
from ..evaluation import tta_views
from ..runs import Run, open_run
from ..training.precision import autocast, prepare_input


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000, precision: str = "fp32",
                   tta: str = "none") -> np.ndarray:
    """(N, classes) float32 logits; with `tta` the mean logits of the views, as `evaluation.predict_proba` takes
    them before its softmax."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for x, _ in iterate_batches(Split(images, torch.zeros(len(images), dtype=torch.long)), batch_size):
        x = x.to(device)
        with autocast(device, precision):
            views = tta_views(x, tta)
            out.append((sum(model(prepare_input(v, model)).float() for v in views) / len(views)).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 10), np.float32)


@dataclass
class RunOutputs:
    run: Run
    model: torch.nn.Module          # eval mode, on the CPU
    record: dict                    # model.pt's record: model_name, config, precision, classes, mean, std
    data: FashionMNIST
    test: Split                     # the test images the run was scored on (its test_limit)
    test_logits: np.ndarray
    val: Split | None               # the run's validation split, None when it trained on all images
    val_logits: np.ndarray | None

    @property
    def labels(self) -> np.ndarray:
        return self.test.labels.numpy()

    @property
    def probs(self) -> np.ndarray:
        z = self.test_logits - self.test_logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    @property
    def tta(self) -> str:
        return self.record["config"].get("tta", "none")


def run_outputs(run_name, root=None, data: FashionMNIST | None = None, data_dir=None) -> RunOutputs:
    """Load a finished run's model, rebuild its test (and validation) split and compute the logits of both."""
    run = open_run(run_name, root)
    model, record = load_run_model(run.path, device="cpu")
    config = record["config"]
    data = data or load_fashion_mnist(data_dir or config.get("data_dir"))
    splits = make_splits(data, config["val_size"], config["split_seed"], config.get("train_limit") or None,
                         config.get("test_limit") or None)
    precision, tta = record.get("precision", "fp32"), config.get("tta", "none")
    batch = config.get("eval_batch_size", 1000)
    test_logits = predict_logits(model, splits.test.images, batch, precision, tta)
    val_logits = predict_logits(model, splits.val.images, batch, precision, tta) if splits.val is not None else None
    return RunOutputs(run, model, record, data, splits.test, test_logits, splits.val, val_logits)
