"""Classify photos with a trained run (PyTorch) or an exported ONNX file (onnxruntime only).

A `Predictor` is loaded once and then classifies batches of prepared 28x28 images; the CLI and the
web server both use it. Its probabilities are calibrated when the run has a temperature saved by `fashionlab
explain` (RUN/calibration.json; an ONNX file has it baked into its graph), unless calibration is turned off.
A PyTorch predictor also draws attribution maps (Integrated Gradients, through explain/attributions.py).
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
from ..explain.calibration import calibrated_probabilities, load_temperature
from ..runs import open_run
from ..tables import format_table
from .outputs import check_output_folder, output_names, write_new
from .preprocess import ImageError, Prepared, image_files, normalise, prepare_file

# The served overlays' method: Integrated Gradients works for every network (Grad-CAM needs a convolution, and on
# the fast recipe's network it is a 3x3 blob) and is signed like the explain page's maps. 16 steps instead of the
# page's 32 halve its time; the maps keep a correlation of 0.99 with 256 steps' (docs/EXPLAIN.md).
OVERLAY_METHOD, OVERLAY_STEPS = "integrated_gradients", 16
EXPLAIN_BATCH = 32  # images per attribution call, so a folder of photos never holds more of their steps in memory


@dataclass
class Predictor:
    """A loaded model: `classify(x)` maps normalised (N,1,28,28) float32 to probabilities (N,10), calibrated when
    info["temperature"] is set; `attribute(x, targets)` maps them to (N,28,28) attribution maps of the target
    classes' logits (None where no PyTorch model is loaded)."""
    classify: object
    classes: list
    mean: float
    std: float
    info: dict = field(default_factory=dict)  # what is loaded: run, model, accuracies, backend, calibration
    attribute: object | None = None

    @property
    def temperature(self) -> float | None:
        """The temperature the probabilities are scaled with; None: the model's own probabilities."""
        return self.info.get("temperature")

    def _inputs(self, prepared: list[Prepared]) -> np.ndarray:
        return normalise(np.stack([p.pixels for p in prepared]), self.mean, self.std)

    def probabilities(self, prepared: list[Prepared]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, len(self.classes)), np.float32)
        return np.asarray(self.classify(self._inputs(prepared)), dtype=np.float32)

    def attributions(self, prepared: list[Prepared], targets) -> np.ndarray:
        """(N, 28, 28) attribution maps (OVERLAY_METHOD) of each image's target class."""
        if self.attribute is None:
            raise ConfigError("attribution maps need the run's PyTorch model; use a run rather than an ONNX file")
        if not prepared:
            return np.zeros((0, 28, 28), np.float32)
        return np.asarray(self.attribute(self._inputs(prepared), [int(t) for t in targets]), dtype=np.float32)

    def top(self, probs: np.ndarray, k: int = 3) -> list[dict]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [{"label": self.classes[i], "index": int(i), "probability": float(probs[i])} for i in order]


def _calibration_info(temperature: float | None) -> dict:
    return {"calibrated": temperature is not None, "temperature": temperature}


def load_torch_predictor(run_name=None, root=None, threads: int | None = None, calibration: bool = True) -> Predictor:
    """The run's model (default: the best by validation accuracy); `calibration`: scale its logits by the
    temperature saved with the run, when there is one."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    run = open_run(run_name, root) if run_name else best_run(root)
    model, record = load_run_model(run.path, root, "cpu")
    temperature = load_temperature(run, default=None) if calibration else None

    @torch.inference_mode()
    def classify(x: np.ndarray) -> np.ndarray:
        # fp32 on purpose: a handful of images gains nothing from bf16, and fp32 matches the ONNX export
        logits = model(torch.from_numpy(x)).float()
        return torch.softmax(logits / temperature if temperature else logits, dim=1).numpy()

    def attribute(x: np.ndarray, targets: list[int]) -> np.ndarray:
        from ..explain.attributions import attribute as attribute_maps

        maps = attribute_maps(model, torch.from_numpy(x), targets, (OVERLAY_METHOD,), ig_steps=OVERLAY_STEPS)
        return maps[OVERLAY_METHOD]

    metrics = run.metrics()
    info = {"backend": "pytorch", "run": run.name, "model": record["model_name"], "epoch": record.get("epoch"),
            "test_accuracy": metrics["accuracy"], "val_accuracy": saved_epoch_val_accuracy(run),
            "parameters": metrics.get("parameters"), **_calibration_info(temperature), "attribution": OVERLAY_METHOD}
    return Predictor(classify, list(record["classes"]), float(record["mean"]), float(record["std"]), info, attribute)


def load_onnx_predictor(path, threads: int | None = None, calibration: bool = True) -> Predictor:
    """An exported model run by onnxruntime (no torch); `calibration=False` undoes a temperature baked into it."""
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

    baked = meta["temperature"]  # the file's output is softmax(logits / baked) when it is set
    temperature = baked if calibration else None

    def classify(x: np.ndarray) -> np.ndarray:
        probs = session.run(None, {input_name: x})[0]
        if baked and not calibration:  # softmax(baked * log p) is softmax(logits) again
            return calibrated_probabilities(probs, 1 / baked, is_probs=True)
        return probs

    info = {"backend": "onnxruntime", "file": str(path), "run": meta.get("run"), "model": meta.get("model"),
            "test_accuracy": meta.get("test_accuracy"), "val_accuracy": meta.get("val_accuracy"),
            **_calibration_info(temperature), "attribution": None}
    return Predictor(classify, meta["classes"], meta["mean"], meta["std"], info)


def predict_files(predictor: Predictor, paths: list, top_k: int = 3, show_input: str | Path | None = None,
                  batch_size: int = 256, on_error=None, explain: str | Path | None = None,
                  force: bool = False) -> list[dict]:
    """One result per image, in order: file, top-k labels with probabilities, whether it was negated, and the
    temperature the probabilities were calibrated with (None: the model's own).

    A file that cannot be used (missing, unreadable, special, damaged, not an image) does not stop the others:
    its result has `error` (the reason, naming the file) and no prediction, and `on_error(err)` is called with
    its ImageError as it happens. Every result has the same keys; `error` is None for the good ones.

    `show_input`: a folder for the 28x28 image the model saw; `explain`: a folder for an attribution card per image
    (the model input beside the map of its predicted class). Both name a file after its image (outputs.py),
    replace an existing file only with `force`, never an input image, and check every name before any image is read.
    """
    files = image_files(paths)
    names = output_names(files)
    if explain:
        if predictor.attribute is None:
            raise ConfigError("--explain needs the run's PyTorch model for its attribution maps; use --run RUN "
                              "instead of --onnx")
        check_output_folder(explain, "--explain", names, files, force)
    if show_input:
        check_output_folder(show_input, "--show-input", names, files, force)
    calibration = {"calibrated": predictor.temperature is not None, "temperature": predictor.temperature}
    results, named = [], list(zip(files, names))
    for start in range(0, len(files), batch_size):
        chunk, prepared, failed = named[start:start + batch_size], [], {}
        for f, name in chunk:
            try:
                prepared.append((f, name, prepare_file(f, str(f))))
            except ImageError as err:
                err.file = str(f)
                failed[f] = err
                if on_error is not None:
                    on_error(err)
        probabilities = predictor.probabilities([p for _, _, p in prepared])
        if explain:
            _write_cards(predictor, Path(explain), prepared, probabilities, force)
        by_file = {f: (name, p, probs) for (f, name, p), probs in zip(prepared, probabilities)}
        for f, _ in chunk:
            if f in failed:
                results.append({"file": str(f), "negated": None, "top": [], "error": str(failed[f]), **calibration})
                continue
            name, p, probs = by_file[f]
            if show_input:
                write_new(Path(show_input) / name, p.png(), force, "--show-input")
            results.append({"file": str(f), "negated": p.negated, "top": predictor.top(probs, top_k), "error": None,
                            **calibration})
    return results


def _write_cards(predictor: Predictor, folder: Path, prepared: list, probabilities: np.ndarray, force: bool) -> None:
    """folder/NAME: each image's model input beside the attribution map of its predicted class."""
    from ..explain.attributions import METHOD_TITLES
    from ..explain.overlay import overlay_card

    method = METHOD_TITLES[OVERLAY_METHOD]
    calibrated = f", calibrated (T = {predictor.temperature:.3f})" if predictor.temperature else ""
    for start in range(0, len(prepared), EXPLAIN_BATCH):
        part = prepared[start:start + EXPLAIN_BATCH]
        predicted = probabilities[start:start + EXPLAIN_BATCH].argmax(1)
        maps = predictor.attributions([p for _, _, p in part], predicted)
        for (f, name, p), target, probs, attribution in zip(part, predicted, probabilities[start:], maps):
            label = predictor.classes[target]
            card = overlay_card(p.pixels, attribution, f"{f.name}: {label} {probs[target]:.1%}{calibrated}",
                                f"{method} of {label}: red raises its score, blue lowers it")
            write_new(folder / name, card, force)


def format_results(results: list[dict], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(results, indent=1)
    temperature = next((r["temperature"] for r in results if r.get("temperature")), None)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "rank", "label", "probability", "error", "temperature"])
        t_cell = f"{temperature:.4f}" if temperature else ""  # empty: the model's own probabilities
        for r in results:
            if r.get("error"):
                writer.writerow([r["file"], "", "", "", r["error"], t_cell])
            for rank, t in enumerate(r["top"], 1):
                writer.writerow([r["file"], rank, t["label"], f"{t['probability']:.4f}", "", t_cell])
        return buf.getvalue().rstrip("\n")
    rows = [[r["file"], ("error: " + r["error"]) if r.get("error") else
             " ".join(f"{t['label']} {t['probability']:.1%}" for t in r["top"])] for r in results]
    header = f"prediction (calibrated probability, T = {temperature:.3f})" if temperature else \
        "prediction (probability)"
    return format_table(["file", header], rows, "ll")
