"""How sure a model is: expected calibration error, reliability bins, and temperature scaling.

Temperature scaling (Guo et al. 2017) divides the logits by one number T > 0 fitted to minimise the negative
log-likelihood on images the model never trained on. It never changes the predicted class, only how confident
the probabilities are, so accuracy is untouched and a fitted T can be applied wherever the run's logits or
probabilities are used (`calibrated_probabilities`, `load_temperature`).

Where T is fitted (`calibrate`):
- the run's validation split when it kept one (config.val_size > 0), reported on the whole test set;
- for a run trained on all 60,000 training images there is no held-out training image left, so the test set is
  split in two seeded halves: T is fitted on each half and the other half is scored with it (cross-fitting),
  so no reported test image was used to fit the temperature that scores it. The temperature saved for later use
  is the one fitted on the whole test set; the halves' values are saved beside it to show their spread.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RunError
from ..runs import Run, open_run, write_atomic

CALIBRATION_FILE = "calibration.json"
BINS = 15  # equal-width confidence bins, as in Guo et al.'s ECE
TEMPERATURE_RANGE = (0.05, 20.0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(logits))


def looks_like_probabilities(values: np.ndarray) -> bool:
    """Rows of non-negative numbers up to 1 that sum to 1 (to float16's precision: saved predictions are)."""
    values = np.asarray(values, dtype=np.float64)
    return bool(values.min() >= 0 and values.max() <= 1 and np.allclose(values.sum(1), 1, atol=1e-2))


def as_logits(logits_or_probs: np.ndarray, is_probs: bool | None = None) -> np.ndarray:
    """Logits for softmax: probabilities become their logs (softmax(log p) = p, so they act as logits), floored
    so a probability that rounded to 0 stays finite."""
    values = np.asarray(logits_or_probs, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected an (images, classes) array, got shape {values.shape}")
    if is_probs is None:
        is_probs = looks_like_probabilities(values)
    return np.log(np.clip(values, 1e-12, None)) if is_probs else values


def calibrated_probabilities(logits_or_probs, temperature: float, is_probs: bool | None = None) -> np.ndarray:
    """softmax(logits / temperature) of an (images, classes) array of logits or of probabilities (recognised as
    rows in [0, 1] summing to 1, or said so by `is_probs`). Temperature 1 returns the model's own probabilities;
    above 1 they are less confident. The predicted class never changes."""
    if not temperature > 0:
        raise ValueError(f"temperature must be greater than 0, got {temperature}")
    return _softmax(as_logits(logits_or_probs, is_probs) / float(temperature)).astype(np.float32)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    logp = _log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits_or_probs, labels, is_probs: bool | None = None) -> float:
    """The T that minimises the mean negative log-likelihood of softmax(logits / T), searched on log T (the loss
    is smooth and has one minimum there)."""
    from scipy.optimize import minimize_scalar

    logits = as_logits(logits_or_probs, is_probs)
    labels = np.asarray(labels, dtype=np.int64)
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    best = minimize_scalar(lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t)),
                           bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(best.x))


@dataclass
class ReliabilityBins:
    """Per confidence bin: its edges, the images in it, their mean confidence and their accuracy."""
    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray  # NaN where a bin is empty
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] * gaps).sum() / self.counts.sum())


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> ReliabilityBins:
    probs = np.asarray(probs, dtype=np.float64)
    conf, correct = probs.max(1), probs.argmax(1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)  # (lo, hi]; 0 joins the first
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, bins) / counts
        accuracy = np.bincount(which, correct.astype(float), bins) / counts
    return ReliabilityBins(edges, counts, mean_conf, accuracy)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """ECE: the image-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    return reliability_bins(probs, labels, bins).ece


@dataclass
class Calibration:
    """A fitted temperature and what it does on the test set; saved as RUN/calibration.json."""
    temperature: float
    fitted_on: str                  # "validation" or "test-halves"
    description: str                # one sentence for the page: where T was fitted, where the ECE was scored
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    images_fitted: int
    images_scored: int
    tta: str = "none"               # the logits T applies to: the run's own test-time augmentation mode
    bins: int = BINS
    half_temperatures: list = field(default_factory=list)  # test-halves: T fitted on each half

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CalibrationResult:
    """A `Calibration` and the test-set probabilities behind its numbers (for the reliability diagram)."""
    calibration: Calibration
    labels: np.ndarray
    probs_before: np.ndarray
    probs_after: np.ndarray         # each test image scored with a temperature not fitted on it


def calibrate(test_logits: np.ndarray, test_labels: np.ndarray, val_logits: np.ndarray | None = None,
              val_labels: np.ndarray | None = None, tta: str = "none", seed: int = 0) -> CalibrationResult:
    """Fit the temperature on the validation logits when given, else by cross-fitting the test set's halves."""
    test_logits = np.asarray(test_logits, dtype=np.float64)
    test_labels = np.asarray(test_labels, dtype=np.int64)
    before = _softmax(test_logits)
    if val_logits is not None and len(val_logits):
        t = fit_temperature(val_logits, val_labels, is_probs=False)
        after = _softmax(test_logits / t)
        halves, fitted_on, n_fit = [], "validation", len(val_labels)
        description = (f"T = {t:.3f}, fitted on the run's {n_fit:,}-image validation split; the ECE is measured "
                       f"on the {len(test_labels):,} test images.")
    else:
        if len(test_labels) < 4:
            raise RunError("too few test images to fit a temperature on one half and score the other")
        order = np.random.default_rng(seed).permutation(len(test_labels))
        parts = (order[: len(order) // 2], order[len(order) // 2:])
        after = np.empty_like(before)
        halves = []
        for fit_part, score_part in (parts, parts[::-1]):
            t_half = fit_temperature(test_logits[fit_part], test_labels[fit_part], is_probs=False)
            halves.append(t_half)
            after[score_part] = _softmax(test_logits[score_part] / t_half)
        t = fit_temperature(test_logits, test_labels, is_probs=False)
        fitted_on, n_fit = "test-halves", len(test_labels) // 2
        description = (f"The run trained on all its training images and kept no validation split, so the test set "
                       f"is split in two random halves (seed {seed}): each half is scored with the temperature "
                       f"fitted on the other (T = {halves[0]:.3f} and {halves[1]:.3f}); no test image is scored "
                       f"with a temperature fitted on it. The temperature saved for later use, T = {t:.3f}, is "
                       f"fitted on all {len(test_labels):,} test images.")
    calibration = Calibration(
        temperature=t, fitted_on=fitted_on, description=description,
        ece_before=expected_calibration_error(before, test_labels),
        ece_after=expected_calibration_error(after, test_labels),
        nll_before=negative_log_likelihood(test_logits, test_labels),
        nll_after=float(-np.log(np.clip(after[np.arange(len(test_labels)), test_labels], 1e-300, None)).mean()),
        images_fitted=n_fit, images_scored=len(test_labels), tta=tta, half_temperatures=halves)
    return CalibrationResult(calibration, test_labels, before.astype(np.float32), after.astype(np.float32))


def calibration_path(run: Run | str | Path) -> Path:
    return Path(getattr(run, "path", run)) / CALIBRATION_FILE


def save_calibration(run: Run | str | Path, calibration: Calibration) -> Path:
    path = calibration_path(run)
    write_atomic(path, json.dumps(calibration.to_dict(), indent=1))
    return path


def load_temperature(run: Run | str | Path, default: float | None = 1.0, root=None) -> float | None:
    """The temperature saved by `fashionlab explain` (RUN/calibration.json), or `default` when the run has none.
    `run`: a Run, a run directory, or a run name under `root` (the runs folder).

    A broken file is an error rather than a silent 1.0: a served model would otherwise be over-confident
    without anyone knowing."""
    if not isinstance(run, Run) and not Path(run).is_dir():
        run = open_run(run, root)
    path = calibration_path(run)
    if not path.is_file():
        return default
    try:
        t = float(json.loads(path.read_text())["temperature"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise RunError(f"{path} is not a calibration file with a 'temperature'; rerun 'fashionlab explain'") from None
    if not (t > 0 and math.isfinite(t)):
        raise RunError(f"{path} holds temperature {t}; it must be a positive number")
    return t


def calibrate_run(run_name, root=None, data=None, outputs=None, save: bool = True) -> CalibrationResult:
    """Fit a finished run's temperature (see the module docstring for where) and save RUN/calibration.json."""
    from .outputs import run_outputs

    outputs = outputs or run_outputs(run_name, root, data)
    val_labels = outputs.val.labels.numpy() if outputs.val is not None else None
    result = calibrate(outputs.test_logits, outputs.labels, outputs.val_logits, val_labels, tta=outputs.tta)
    if save:
        save_calibration(outputs.run, result.calibration)
    return result
