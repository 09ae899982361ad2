"""Export a finished run's model to ONNX: probabilities out, dynamic batch size, preprocessing in the metadata.

The metadata carries everything a consumer needs to feed the model correctly without fashionlab's code:
input size and layout, mean and std of the normalisation, class names, and the run it came from. When the run
has a temperature saved by `fashionlab explain` (and calibration is not turned off), the graph divides the
logits by it before the softmax, so the file's probabilities are the calibrated ones, and `temperature` in the
metadata says so.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch

from ..artifacts import saved_epoch_val_accuracy
from ..errors import ConfigError
from ..explain.calibration import load_temperature
from ..models import create_model
from ..runs import open_run
from ..training.checkpoint import load_checkpoint

INPUT, OUTPUT = "image", "probabilities"


def _run_dir_holding(path: Path) -> Path | None:
    """The run directory that `path` lies in (at any depth), if any: one with config.json and a run's other files."""
    for folder in path.parents:
        if (folder / "config.json").is_file() and any(
                (folder / name).exists() for name in ("status.json", "model.pt", "history.csv", "checkpoints")):
            return folder
    return None


def check_output(out: Path, force: bool = False) -> None:
    """Refuse to write over a run's own files, and over any existing file unless `force`.

    A run's only file an export may write is RUN/model.onnx, its default output; config.json, model.pt,
    metrics.json, checkpoints/ and everything else inside a run directory are the run itself.
    """
    target = out.resolve()  # through symbolic links: a link to a run's model.pt is that model.pt
    run_dir = _run_dir_holding(target)
    if run_dir is not None and target != run_dir / "model.onnx":
        raise ConfigError(f"--out {out} is inside run {run_dir}, whose files an export must not replace; "
                          f"choose a file outside it, or {run_dir / 'model.onnx'}")
    if target.is_dir():
        raise ConfigError(f"--out {out} is a directory; name a file, e.g. {out / 'model.onnx'}")
    if target.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to replace it, or choose another --out")


class _Temperature(torch.nn.Module):
    """Temperature scaling in the graph: the logits divided by T before the softmax."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


def export_onnx(run_name, out: str | Path | None = None, root=None, force: bool = False,
                calibration: bool = True) -> tuple[Path, float | None]:
    """Write the run's model as ONNX; returns the file and the temperature baked into it (None: none)."""
    import onnx

    run = open_run(run_name, root)
    metrics = run.metrics()  # refuses unfinished runs with a clear message
    out = Path(out) if out else run.path / "model.onnx"
    check_output(out, force)
    temperature = load_temperature(run, default=None) if calibration else None
    record = load_checkpoint(run.model_path)
    model = create_model(record["model_name"])
    model.load_state_dict(record["model"])
    # fp32 and the default memory format: the file must not depend on how the run was trained
    scaling = [_Temperature(temperature)] if temperature else []
    wrapped = torch.nn.Sequential(model, *scaling, torch.nn.Softmax(dim=1)).eval()
    example = torch.zeros(2, 1, 28, 28)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript exporter needs no onnxscript and works offline; it is what torch 2.13 ships
        torch.onnx.export(wrapped, (example,), buf, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=17,
                          dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    meta = {
        "classes": json.dumps(list(record["classes"])),
        "mean": repr(float(record["mean"])),
        "std": repr(float(record["std"])),
        "input_size": "28,28",
        "input": "float32 (batch,1,28,28): Fashion-MNIST style 8-bit greyscale, white object on black, "
                 "as pixel/255, then (x - mean) / std",
        "output": ("float32 (batch,classes): calibrated class probabilities, softmax(logits / temperature)"
                   if temperature else "float32 (batch,classes): class probabilities (softmax)"),
        "run": run.name,
        "model": record["model_name"],
        "epoch": str(record.get("epoch")),
        "test_accuracy": repr(float(metrics["accuracy"])),
        "val_accuracy": repr(saved_epoch_val_accuracy(run)),
        **({"temperature": repr(temperature)} if temperature else {}),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"fashionlab run {run.name} ({record['model_name']})"
    onnx.checker.check_model(proto)
    # written next to the target and renamed: an existing file is replaced only by a complete one, and the
    # target is checked again just before, in case a file appeared there while the model was exported
    check_output(out, force)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(proto.SerializeToString())
        tmp.replace(out)
    except OSError as err:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {out} ({err.strerror}); choose another --out") from None
    return out, temperature
