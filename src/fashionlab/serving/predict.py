"""Classify photos with a trained run (PyTorch) or an exported ONNX file (onnxruntime only).

A `Predictor` is loaded once and then classifies batches of prepared 28x28 images; the CLI and the
web server both use it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import best_run, load_run_model, read_onnx_metadata, saved_epoch_val_accuracy
from ..errors import ConfigError, RunError
from ..runs import open_run
from ..tables import format_table
from .preprocess import ImageError, Prepared, image_files, normalise, prepare_file


@dataclass
class Predictor:
    """A loaded model: `classify(x)` maps normalised (N,1,28,28) float32 to probabilities (N,10)."""
    classify: object
    classes: list
    mean: float
    std: float
    info: dict = field(default_factory=dict)  # what is loaded: run, model, accuracies, backend

    def probabilities(self, prepared: list[Prepared]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, len(self.classes)), np.float32)
        x = normalise(np.stack([p.pixels for p in prepared]), self.mean, self.std)
        return np.asarray(self.classify(x), dtype=np.float32)

    def top(self, probs: np.ndarray, k: int = 3) -> list[dict]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [{"label": self.classes[i], "index": int(i), "probability": float(probs[i])} for i in order]


def load_torch_predictor(run_name=None, root=None, threads: int | None = None) -> Predictor:
    import torch

    if threads:
        torch.set_num_threads(threads)
    run = open_run(run_name, root) if run_name else best_run(root)
    model, record = load_run_model(run.path, root, "cpu")

    @torch.inference_mode()
    def classify(x: np.ndarray) -> np.ndarray:
        # fp32 on purpose: a handful of images gains nothing from bf16, and fp32 matches the ONNX export
        logits = model(torch.from_numpy(x))
        return torch.softmax(logits.float(), dim=1).numpy()

    metrics = run.metrics()
    info = {"backend": "pytorch", "run": run.name, "model": record["model_name"], "epoch": record.get("epoch"),
            "test_accuracy": metrics["accuracy"], "val_accuracy": saved_epoch_val_accuracy(run),
            "parameters": metrics.get("parameters")}
    return Predictor(classify, list(record["classes"]), float(record["mean"]), float(record["std"]), info)


def load_onnx_predictor(path, threads: int | None = None) -> Predictor:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types for missing or foreign files
        raise RunError(f"cannot load ONNX model {path}: {str(err).splitlines()[0]}") from None
    meta = read_onnx_metadata(session)
    input_name = session.get_inputs()[0].name

    def classify(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

    info = {"backend": "onnxruntime", "file": str(path), "run": meta.get("run"), "model": meta.get("model"),
            "test_accuracy": meta.get("test_accuracy"), "val_accuracy": meta.get("val_accuracy")}
    return Predictor(classify, meta["classes"], meta["mean"], meta["std"], info)


def predict_files(predictor: Predictor, paths: list, top_k: int = 3, show_input: str | Path | None = None,
                  batch_size: int = 256, on_error=None) -> list[dict]:
    """One result per image, in order: file, top-k labels with probabilities, whether it was negated.

    A file that cannot be used (missing, unreadable, special, damaged, not an image) does not stop the others:
    its result has `error` (the reason, naming the file) and no prediction, and `on_error(err)` is called with
    its ImageError as it happens. Every result has the same keys; `error` is None for the good ones.
    """
    files = image_files(paths)
    if show_input:
        try:
            Path(show_input).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"--show-input {show_input}: cannot create that folder ({err.strerror})") from None
    results, saved = [], set()
    for start in range(0, len(files), batch_size):
        chunk, prepared, failed = files[start:start + batch_size], [], {}
        for f in chunk:
            try:
                prepared.append((f, prepare_file(f, str(f))))
            except ImageError as err:
                err.file = str(f)
                failed[f] = err
                if on_error is not None:
                    on_error(err)
        probabilities = iter(predictor.probabilities([p for _, p in prepared]))
        by_file = {f: (p, next(probabilities)) for f, p in prepared}
        for f in chunk:
            if f in failed:
                results.append({"file": str(f), "negated": None, "top": [], "error": str(failed[f])})
                continue
            p, probs = by_file[f]
            if show_input:
                name = f.stem
                while name in saved:  # boot.jpg and boot.png, or same names in two folders: keep both
                    name += "_"
                saved.add(name)
                (Path(show_input) / f"{name}.png").write_bytes(p.png())
            results.append({"file": str(f), "negated": p.negated, "top": predictor.top(probs, top_k), "error": None})
    return results


def format_results(results: list[dict], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(results, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "rank", "label", "probability", "error"])
        for r in results:
            if r.get("error"):
                writer.writerow([r["file"], "", "", "", r["error"]])
            for rank, t in enumerate(r["top"], 1):
                writer.writerow([r["file"], rank, t["label"], f"{t['probability']:.4f}", ""])
        return buf.getvalue().rstrip("\n")
    rows = [[r["file"], ("error: " + r["error"]) if r.get("error") else
             " ".join(f"{t['label']} {t['probability']:.1%}" for t in r["top"])] for r in results]
    return format_table(["file", "prediction (probability)"], rows, "ll")
