"""Load a finished run's model and evaluate it again on a chosen split."""

from __future__ import annotations

import torch

from .data import load_fashion_mnist, make_splits
from .errors import RunError
from .evaluation import classification_metrics, predict_proba
from .models import create_model
from .runs import open_run
from .training.checkpoint import load_checkpoint, load_weights_into
from .training.precision import prepare_model, resolve_device


def load_run_model(run_name, root=None, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """The trained model of a finished run (eval mode) and its model.pt record."""
    run = open_run(run_name, root)
    run.metrics()  # raises a clear error when the run is unfinished
    record = load_checkpoint(run.model_path)
    model = create_model(record["model_name"])
    # fails for a run saved before its model's definition changed (fastnet lost its stem batch norm in session 11)
    load_weights_into(model, record["model"],
                      f"run {run.name}'s weights do not fit the current '{record['model_name']}' network",
                      "was it trained by an older fashionlab? train it again")
    model = prepare_model(model, resolve_device(device)).eval()
    return model, record


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
