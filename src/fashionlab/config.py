"""Every setting of a training run, in one place: its type, default, allowed values and help text.

`RunConfig`'s fields are the single source: the `train` command's flags and `--help` (cli.py), the check of TOML
files and flags (`RunConfig.from_dict`), and docs/SETTINGS.md (`settings_markdown`) are all made from them.
TOML or flags in, JSON out beside every run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from .errors import ConfigError
from .parsing import parse_duration
from .recipes import RECIPES, recipe_settings

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "adagrad", "muon")
SCHEDULERS = ("none", "cosine", "onecycle", "onecycle-linear")
PRECISIONS = ("auto", "fp32", "bf16")
MONITORS = ("val_loss", "val_accuracy")
TTA_MODES = ("none", "flip", "flip-shift")
TRAIN_IMAGES = 60_000
MAX_NAME = 100
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")

# Settings that fashionlab no longer offers, with the value that meant "off": configs of older runs that hold that
# value still load; one that used the option is refused with a pointer to its probe (docs/EXPERIMENTS.md)
RETIRED = {"cutmix": 0.0, "mixup": 0.0, "low_res_size": 0, "low_res_epochs": 0, "sam_rho": 0.0, "sam_from": 0.0}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def setting(default, help: str, *, low=None, high=None, above=None, below=None, choices=None, flag: bool = True,
            more: str = ""):
    """A RunConfig field with its checks: `low`/`high` inclusive bounds, `above`/`below` exclusive ones, `choices`
    the allowed strings. `more`: the allowed values in words where the bounds do not say it all (docs only)."""
    meta = {"help": help, "low": low, "high": high, "above": above, "below": below, "choices": choices,
            "flag": flag, "more": more}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    name: str | None = setting(None, "run directory name under the runs folder (default: MODEL-TIMESTAMP)",
                               more=f"letters, digits, . _ + -; at most {MAX_NAME} characters")
    recipe: str | None = setting(None, "start from a named recipe; other settings override it", choices=tuple(RECIPES))
    model: str = setting("ann", "network name; 'fashionlab models' lists them", more="a name from 'fashionlab models'")
    epochs: float = setting(10, "number of epochs; a fraction trains part of a last epoch (e.g. 2.5)", above=0,
                            high=10_000)
    budget: str | None = setting(None, "train for this long instead of a number of epochs: times the first steps here, "
                                 "trains the steps that fit (schedules laid out over them) and stops early if steps "
                                 "get slower. It bounds the training time as train_seconds counts it (steps with "
                                 "their batching and augmentation, batch-norm re-estimates), not set-up, validation "
                                 "or testing; the epochs it bought are saved as epochs",
                                 more="a duration with its unit: 45s, 5m, 1h or 1h30m")
    batch_size: int = setting(128, "training batch size", low=1, high=TRAIN_IMAGES)
    optimizer: str = setting("adam", "optimizer (muon: Muon for the convolution filters, SGD for the rest)",
                             choices=OPTIMIZERS)
    lr: float = setting(1e-3, "learning rate (the peak rate for onecycle schedules)", above=0, high=100)
    weight_decay: float = setting(0.0, "L2 penalty (decoupled weight decay for adamw)", low=0, high=10)
    momentum: float = setting(0.9, "momentum for sgd, rmsprop and muon", low=0, below=1)
    nesterov: bool = setting(False, "Nesterov momentum for sgd (muon always uses it)")
    muon_lr: float = setting(0.02, "muon: the convolution filters' learning rate (lr sets the other parameters')",
                             above=0, high=100)
    scheduler: str = setting("none", "learning-rate schedule, stepped per batch: onecycle warms up and decays along "
                             "cosines, onecycle-linear along straight lines", choices=SCHEDULERS)
    warmup: float = setting(0.3, "onecycle schedules: the fraction of the steps spent rising to the peak rate",
                            above=0, below=1)
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy loss", low=0, below=1)
    bn_recalibration: int = setting(50, "training batches that re-estimate batch-norm statistics before each "
                                    "evaluation (0 = keep the running averages)", low=0, high=10_000)
    tta: str = setting("none", "test-time augmentation: flip averages with the mirror image, flip-shift also with "
                       "1-pixel shifts (10 views)", choices=TTA_MODES)
    augment: dict = setting({}, "batch augmentations, e.g. 'flip,crop:padding=2,affine:degrees=10,erase:p=0.5'",
                            more="crop:padding 0-14; flip:p, affine:p, erase:p 0-1; affine:degrees 0-180, "
                                 "scale 0-0.9, translate 0-0.5")
    prune: float = setting(0.0, "skip each well-learned image (loss below the mean) with this probability in the "
                           "epochs after the first (InfoBatch); epochs then counts steps of full-data epochs",
                           low=0, below=1)
    patience: int = setting(0, "early stopping: stop after this many epochs without improvement and keep the best "
                            "weights (0 = train all epochs)", low=0, high=10_000)
    monitor: str = setting("val_loss", "what early stopping watches", choices=MONITORS)
    min_delta: float = setting(0.0, "early stopping: the smallest change that counts as an improvement", low=0,
                               high=1e6)
    seed: int = setting(0, "random seed (weights, order, augmentation, dropout)", low=0, high=2**32 - 1)
    split_seed: int = setting(0, "random seed of the validation split (kept apart so that seeds share one split)",
                              low=0, high=2**32 - 1)
    val_size: int = setting(10_000, "validation images taken from the 60,000 training images (0 = none)", low=0,
                            below=TRAIN_IMAGES)
    train_limit: int = setting(0, "train on only the first N training images (0 = all)", low=0, high=TRAIN_IMAGES)
    test_limit: int = setting(0, "evaluate on only the first N test images (0 = all 10,000)", low=0, high=10_000)
    precision: str = setting("auto", "number format of training: auto times fp32 and bf16 and keeps the faster",
                             choices=PRECISIONS)
    winograd: bool = setting(True, "fp32 training on a CPU computes wide 3x3 convolutions by Winograd's F(4x4,3x3), "
                             "1.3-2x faster than the direct convolution")
    device: str = setting("auto", "where to train", more="auto, cpu, cuda or cuda:N")
    threads: int = setting(0, "CPU threads for torch (0 = all cores)", low=0, high=lambda: os.cpu_count() or 1,
                           more="0 (all cores) to the number of CPU cores")
    data_dir: str | None = setting(None, "folder with the four Fashion-MNIST files (default: found automatically)")
    init_from: str | None = setting(None, "fine-tune: start from the weights of this run (or checkpoint file)")
    distill_from: str | None = setting(None, "knowledge distillation: also match the outputs of this finished run "
                                       "(the teacher) on the same augmented images")
    distill_weight: float = setting(0.9, "distillation: the share of the loss that matches the teacher", above=0,
                                    high=1)
    distill_temperature: float = setting(4.0, "distillation: the softmax temperature of the matched outputs",
                                         above=0, high=100)
    eval_batch_size: int = setting(1000, "batch size for validation and testing", low=1, high=100_000)
    tensorboard: bool = setting(False, "also write TensorBoard logs (scalars, confusion matrix, example "
                                "predictions) into the run directory")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """Settings from TOML, flags or a run's config.json, each checked by type and range."""
        values = _without_retired(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; 'fashionlab settings' lists the valid ones")
        config = cls(**values)
        config.validate()
        return config

    def replace(self, **changes) -> RunConfig:
        return RunConfig.from_dict({**self.to_dict(), **changes})

    @property
    def budget_seconds(self) -> float | None:
        return None if self.budget is None else parse_duration(self.budget)

    @property
    def train_size(self) -> int:
        available = TRAIN_IMAGES - self.val_size
        return min(self.train_limit, available) if self.train_limit else available

    def validate(self) -> None:
        """Check every value by type and range, then the combinations of settings that cannot work, before
        anything runs."""
        # imported here: they import torch, and `predict --onnx` needs the settings' module without torch
        from .data.augment import parse_augment
        from .models import check_model_name

        for f in dataclasses.fields(self):
            setattr(self, f.name, check_value(f, getattr(self, f.name)))
        check_model_name(self.model)
        self.epochs = whole_if_integral(self.epochs)
        if self.budget is not None:
            parse_duration(self.budget)
        if self.device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", self.device):
            raise ConfigError(f"device {self.device!r} must be auto, cpu, cuda or cuda:N")
        if self.patience and not self.val_size:
            raise ConfigError("early stopping (patience) needs a validation split: set val_size > 0")
        if self.batch_size > self.train_size:
            raise ConfigError(f"batch_size {self.batch_size} is larger than the {self.train_size} training images")
        self.augment = parse_augment(self.augment)


def _without_retired(values: dict) -> dict:
    values = dict(values)
    for key, off in RETIRED.items():
        if key in values:
            if values[key] not in (off, None):
                raise ConfigError(f"setting {key} is no longer offered (it did not improve the recipes: "
                                  "docs/EXPERIMENTS.md); its probe is under benchmarks/probes/")
            del values[key]
    if "tta" in values and isinstance(values["tta"], bool):  # configs from before TTA had modes said true/false
        values["tta"] = "flip" if values["tta"] else "none"
    return values


def _kind(f: dataclasses.Field) -> str:
    return str(f.type).replace(" | None", "")


def check_value(f: dataclasses.Field, value):
    """`value` for setting `f`, checked against its type and bounds; a one-line ConfigError otherwise."""
    meta, kind, name = f.metadata, _kind(f), f.name
    if value is None:
        if "None" in str(f.type):
            return None
        raise ConfigError(f"{name} needs a value")
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
    elif kind == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {value!r}")
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(f"unknown {name} {value!r}; choose from {', '.join(meta['choices'])}")
        if name == "name" and (len(value) > MAX_NAME or not NAME_PATTERN.fullmatch(value)):
            raise ConfigError(f"run name {value[:MAX_NAME]!r} must be 1-{MAX_NAME} letters, digits, '.', '_', '+' "
                              "or '-', starting with a letter or digit")
        return value
    elif kind == "dict":
        return value  # augment: checked by parse_augment in validate()
    _check_bounds(name, value, meta)
    return value


def _check_bounds(name: str, value, meta) -> None:
    low, high, above, below = meta["low"], meta["high"], meta["above"], meta["below"]
    high = high() if callable(high) else high  # the CPU count, read where the run starts
    if (low is not None and value < low) or (above is not None and value <= above) \
            or (high is not None and value > high) or (below is not None and value >= below):
        raise ConfigError(f"{name} must be {_range_text(meta)}, got {value}")


def _range_text(meta) -> str:
    left = f"at least {meta['low']}" if meta["low"] is not None else (
        f"greater than {meta['above']}" if meta["above"] is not None else "")
    high = meta["high"]() if callable(meta["high"]) else meta["high"]
    right = f"at most {high}" if high is not None else (
        f"less than {meta['below']}" if meta["below"] is not None else "")
    return " and ".join(filter(None, (left, right)))


def whole_if_integral(epochs: float) -> int | float:
    """3, not 3.0, in configs, metrics and tables."""
    return int(epochs) if float(epochs).is_integer() else epochs


def tta_mode(value: str | bool) -> str:
    """The TTA mode of a setting; configs written before TTA had modes said true/false."""
    if isinstance(value, bool):
        return "flip" if value else "none"
    return value


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give the path of a .toml file") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read (permission denied)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def settings_markdown() -> str:
    """docs/SETTINGS.md: every setting with its type, default, allowed values and description."""
    lines = ["# Training settings", "",
             "Every setting of `fashionlab train`, as a flag (`--batch-size 64`) or in a TOML file given with `-c` "
             "(`batch_size = 64`); flags override the file, and both override a `--recipe`. Each value is checked "
             "by type and range before anything runs. Generated from `src/fashionlab/config.py` by "
             "`fashionlab settings --markdown > docs/SETTINGS.md`.", "",
             "| setting | flag | type | default | allowed | description |", "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(RunConfig):
        meta = f.metadata
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        allowed = (", ".join(meta["choices"]) if meta["choices"] else meta["more"] or _range_text(meta)
                   or ("true, false" if _kind(f) == "bool" else "any"))
        flag = (f"`--{f.name.replace('_', '-')}` / `--no-{f.name.replace('_', '-')}`" if _kind(f) == "bool"
                else f"`--{f.name.replace('_', '-')}`")
        lines.append(f"| `{f.name}` | {flag} | {_kind(f)} | `{default!r}` | {allowed} | {meta['help']} |")
    return "\n".join(lines) + "\n"


def train_command(config: RunConfig) -> str:
    """The `fashionlab train` command line that makes this run (settings that differ from the defaults)."""
    # flags only for what differs from where the command starts: the recipe's settings, or the defaults
    default = RunConfig.from_dict(recipe_settings(config.recipe) if config.recipe else {}).to_dict()
    args = ["fashionlab", "train"] + (["--recipe", config.recipe] if config.recipe else [])
    for key, value in config.to_dict().items():
        if value == default[key] or value is None or key == "recipe" or (key == "epochs" and config.budget):
            continue  # a budget run's epochs are what its budget bought here, not a setting of its command
        if key == "augment":
            value = ",".join(":".join([name, *(f"{k}={v}" for k, v in params.items())])
                             for name, params in value.items())
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [f"--no-{key.replace('_', '-')}"] if value is False else [flag, str(value)]
    return shlex.join(args)
