"""Export a finished run's model to ONNX: probabilities out, dynamic batch size, preprocessing in the metadata.

The metadata carries everything a consumer needs to feed the model correctly without fashionlab's code:
input size and layout, mean and std of the normalisation, class names, and the run it came from.
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
from ..models import create_model
from ..runs import open_run
from ..training.checkpoint import load_checkpoint

INPUT, OUTPUT = "image", "probabilities"


def export_onnx(run_name, out: str | Path | None = None, root=None) -> Path:
    import onnx


    run = open_run(run_name, root)
    metrics = run.metrics()  # refuses unfinished runs with a clear message
    record = load_checkpoint(run.model_path)
    model = create_model(record["model_name"])
    model.load_state_dict(record["model"])
    # fp32 and the default memory format: the file must not depend on how the run was trained
    wrapped = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval()
    out = Path(out) if out else run.path / "model.onnx"
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
        "output": "float32 (batch,classes): class probabilities (softmax)",
        "run": run.name,
        "model": record["model_name"],
        "epoch": str(record.get("epoch")),
        "test_accuracy": repr(float(metrics["accuracy"])),
        "val_accuracy": repr(saved_epoch_val_accuracy(run)),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"fashionlab run {run.name} ({record['model_name']})"
    onnx.checker.check_model(proto)
    # written next to the target and renamed: an existing file is replaced only by a complete one
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(proto.SerializeToString())
        tmp.replace(out)
    except OSError as err:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {out} ({err.strerror}); choose another --out") from None
    return out
