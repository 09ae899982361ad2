"""What a finished run leaves behind, read back: its weights, its trained model, the validation accuracy of the
weights it saved, the best run to use, and the metadata of an exported ONNX file.

Torch is imported only by the functions that load weights, so that `predict --onnx` and `serve --onnx` run on a
machine without it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import DamagedRun, RunError
from .runs import Run, list_runs, open_run


def load_weights(source: str | Path, root=None) -> dict:
    """Model weights from a run (its model.pt, else its best checkpoint) or from a checkpoint file."""
    from .training.checkpoint import load_checkpoint

    path = Path(source)
    if not path.is_file():
        run = open_run(source, root)
        path = run.model_path if run.model_path.is_file() else run.best_checkpoint
    state = load_checkpoint(path)
    return state["model"] if "model" in state else state


def load_run_model(run_name, root=None, device: str = "cpu") -> tuple:
    """(the trained torch model of a finished run in eval mode, its model.pt record)."""
    from .models import create_model
    from .training.checkpoint import load_checkpoint, load_weights_into
    from .training.precision import prepare_model, resolve_device

    run = open_run(run_name, root)
    run.metrics()  # raises a clear error when the run is unfinished
    record = load_checkpoint(run.model_path)
    model = create_model(record["model_name"])
    # fails for a run saved before its model's definition changed
    load_weights_into(model, record["model"],
                      f"run {run.name}'s weights do not fit the current '{record['model_name']}' network",
                      "was it trained by an older fashionlab? train it again")
    model = prepare_model(model, resolve_device(device)).eval()
    return model, record


def saved_epoch_val_accuracy(run: Run) -> float | None:
    """Validation accuracy of the weights a finished run saved (its best epoch with early stopping, else its last).

    None when the run trained without a validation split. The test accuracy is never used to choose a model.
    """
    if not run.finished or not run.config().val_size:
        return None
    metrics = run.metrics()
    key = "best_epoch" if run.config().patience else "epochs"
    if key not in metrics:
        raise DamagedRun(run.metrics_path, f"no {key!r}")
    epoch = metrics[key]
    rows = [r for r in run.history() if isinstance(r.get("val_accuracy"), float)]
    chosen = [r for r in rows if r.get("epoch") == epoch] or rows[-1:]
    return chosen[0]["val_accuracy"] if chosen else None


def best_run(root=None) -> Run:
    """The finished run whose saved model has the highest validation accuracy; a damaged run (a file that cannot
    be read, which `fashionlab runs` names) is passed over, so one bad folder does not stop the choice."""
    scored = [(acc, run) for run in list_runs(root) if (acc := _val_accuracy_or_none(run)) is not None]
    if not scored:
        raise RunError("no finished run with a validation split to choose from; train one "
                       "('fashionlab train --model ann_bn') or name one with --run RUN")
    return max(scored, key=lambda pair: pair[0])[1]


def _val_accuracy_or_none(run: Run) -> float | None:
    try:
        accuracy = saved_epoch_val_accuracy(run)
    except DamagedRun:
        return None
    return accuracy if isinstance(accuracy, float) else None


def read_onnx_metadata(session) -> dict:
    """The preprocessing constants and provenance that `serving.export.export_onnx` stores, decoded."""
    props = session.get_modelmeta().custom_metadata_map
    try:
        meta = {"classes": json.loads(props["classes"]), "mean": float(props["mean"]), "std": float(props["std"])}
    except (KeyError, ValueError):
        raise RunError("this ONNX file lacks fashionlab's metadata (classes, mean, std); "
                       "export it with 'fashionlab export RUN --format onnx'") from None
    for key in ("test_accuracy", "val_accuracy"):
        try:
            meta[key] = float(props[key])
        except (KeyError, ValueError):
            meta[key] = None
    meta.update(run=props.get("run"), model=props.get("model"), temperature=_baked_temperature(props))
    return meta


def _baked_temperature(props: dict) -> float | None:
    """The temperature an export divided the logits by before its softmax; None when it has none."""
    if "temperature" not in props:
        return None
    try:
        t = float(props["temperature"])
    except ValueError:
        t = math.nan
    if not (t > 0 and math.isfinite(t)):
        raise RunError(f"this ONNX file's metadata holds temperature {props['temperature']!r}, not a positive "
                       "number; export it again with 'fashionlab export RUN --format onnx'")
    return t
