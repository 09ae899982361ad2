"""One object holds every setting of a run: TOML (or flags) in, JSON out beside every result."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from .errors import ConfigError
from .recipes import RECIPES, recipe_settings

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "adagrad", "muon")
SCHEDULERS = ("none", "cosine", "onecycle", "onecycle-linear")
PRECISIONS = ("auto", "fp32", "bf16")
MONITORS = ("val_loss", "val_accuracy")
TTA_MODES = ("none", "flip", "flip-shift")
TRAIN_IMAGES = 60_000


@dataclass
class RunConfig:
    name: str | None = None          # run directory name; default "<model>-<timestamp>"
    recipe: str | None = None        # the named recipe these settings started from (recipes.py), if any
    model: str = "ann"
    epochs: float = 10               # a fraction trains part of a last epoch: 2.5 = 2 epochs + half of one
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9            # sgd, rmsprop and muon
    nesterov: bool = False           # sgd (muon always uses Nesterov momentum)
    muon_lr: float = 0.02            # muon: the convolution filters' learning rate; `lr` is everything else's
    scheduler: str = "none"
    warmup: float = 0.3              # onecycle schedules: the fraction of the steps that rises to the peak lr
    label_smoothing: float = 0.0
    bn_recalibration: int = 50       # batches to re-estimate batch-norm statistics before each evaluation
    tta: str = "none"                # test-time augmentation: none, flip, flip-shift (evaluation.py)
    augment: dict = field(default_factory=dict)  # {name: {param: value}}, see data/augment.py
    cutmix: float = 0.0              # the chance that an image takes a patch (and label share) of another
    mixup: float = 0.0               # mixup's Beta(alpha, alpha): blend each image with another; 0 = off
    prune: float = 0.0               # the chance to skip each well-learned image in an epoch (InfoBatch,
    #                                  training/pruning.py); `epochs` then counts steps of full-data epochs
    low_res_size: int = 0            # progressive resizing: train the first low_res_epochs at this size (px)
    low_res_epochs: float = 0        # ... then at 28x28 (data/resize.py); 0 = always 28x28
    patience: int = 0                # early stopping patience in epochs; 0 = train all epochs
    monitor: str = "val_loss"        # what early stopping watches
    min_delta: float = 0.0
    seed: int = 0
    split_seed: int = 0              # the validation split; kept apart so seeds share one split
    val_size: int = 10_000           # 0 = train on all 60,000 images, no validation
    train_limit: int = 0             # use only the first N training images (0 = all): quick tries, tests
    test_limit: int = 0              # evaluate on the first N test images (0 = all 10,000)
    precision: str = "auto"
    winograd: bool = True            # fp32 on a CPU: wide 3x3 convolutions by Winograd F(4x4,3x3) (models/winograd.py)
    device: str = "auto"
    threads: int = 0                 # torch CPU threads; 0 = torch's default (all cores)
    data_dir: str | None = None
    init_from: str | None = None     # fine-tune from this run or checkpoint's weights
    distill_from: str | None = None  # knowledge distillation: also match this finished run's outputs
    distill_weight: float = 0.9      # ... the share of the loss that matches the teacher (training/distillation.py)
    distill_temperature: float = 4.0
    sam_rho: float = 0.0             # sharpness-aware minimisation's radius (training/sam.py); 0 = plain steps
    sam_from: float = 0.0            # ... used from this fraction of the steps on (SAM late in training)
    eval_batch_size: int = 1000
    tensorboard: bool = False        # also write TensorBoard event files into the run directory

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; valid ones are {', '.join(sorted(known))}")
        config = cls(**values)
        config.validate()
        return config

    def replace(self, **changes) -> RunConfig:
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config

    @property
    def train_size(self) -> int:
        available = TRAIN_IMAGES - self.val_size
        return min(self.train_limit, available) if self.train_limit else available

    def validate(self) -> None:
        """Reject settings that cannot work, before anything runs."""
        # imported here: they import torch, and `predict --onnx` reads no settings but must run without torch
        from .data.augment import parse_augment
        from .models import check_model_name
        if self.recipe is not None and self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe '{self.recipe}'; choose from {', '.join(RECIPES)}")
        check_model_name(self.model)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("monitor", self.monitor, MONITORS)
        self.tta = tta_mode(self.tta)
        _choice("tta", self.tta, TTA_MODES)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"device '{self.device}' must be auto, cpu, cuda or cuda:N")
        _positive("lr", self.lr)
        _positive("muon_lr", self.muon_lr)
        _positive("epochs", self.epochs)
        self.epochs = whole_if_integral(self.epochs)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("eval_batch_size", self.eval_batch_size, 1)
        _check_low_res(self)
        for name in ("weight_decay", "patience", "bn_recalibration", "threads", "train_limit", "test_limit",
                     "min_delta"):
            _at_least(name, getattr(self, name), 0)
        if not 0 < self.warmup < 1:
            raise ConfigError(f"warmup must be a fraction of the steps in (0, 1), got {self.warmup}")
        if not 0 <= self.prune < 1:
            raise ConfigError(f"prune must be a probability in [0, 1), got {self.prune}")
        if not 0 <= self.cutmix <= 1:
            raise ConfigError(f"cutmix must be a probability in [0, 1], got {self.cutmix}")
        _at_least("mixup", self.mixup, 0)
        if self.mixup and self.cutmix:
            raise ConfigError("choose one of cutmix and mixup: both mix the same pairs of images")
        _at_least("sam_rho", self.sam_rho, 0)
        if not 0 <= self.sam_from < 1:
            raise ConfigError(f"sam_from must be a fraction of the steps in [0, 1), got {self.sam_from}")
        if not 0 < self.distill_weight <= 1:
            raise ConfigError(f"distill_weight must be in (0, 1], got {self.distill_weight}")
        _positive("distill_temperature", self.distill_temperature)
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.val_size < TRAIN_IMAGES:
            raise ConfigError(f"val_size must be between 0 and {TRAIN_IMAGES - 1}, got {self.val_size}")
        if self.patience and not self.val_size:
            raise ConfigError("early stopping (patience) needs a validation split: set val_size > 0")
        if self.batch_size > self.train_size:
            raise ConfigError(f"batch_size {self.batch_size} is larger than the {self.train_size} training images")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"run name '{self.name}' must be a plain folder name (no '/', not starting with '.')")
        self.augment = parse_augment(self.augment)


def _check_low_res(config: RunConfig) -> None:
    if not config.low_res_size and not config.low_res_epochs:
        return
    if not 8 <= config.low_res_size < 28:
        raise ConfigError(f"low_res_size must be between 8 and 27 pixels, got {config.low_res_size}")
    if not 0 < config.low_res_epochs < config.epochs:
        raise ConfigError(f"low_res_epochs must be more than 0 and fewer than epochs ({config.epochs}), "
                          f"got {config.low_res_epochs}; the last epochs train at 28x28")
    if not takes_any_size(config.model, config.low_res_size):
        raise ConfigError(f"model '{config.model}' only takes 28x28 images, so it cannot train at "
                          f"low_res_size {config.low_res_size}; use a convolutional net with global pooling")


def takes_any_size(model_name: str, size: int) -> bool:
    import torch

    from .models import create_model

    try:
        with torch.no_grad():
            create_model(model_name).eval()(torch.zeros(1, 1, size, size))
    except RuntimeError:
        return False
    return True


def whole_if_integral(epochs: float) -> int | float:
    """3, not 3.0, in configs, metrics and tables."""
    return int(epochs) if float(epochs).is_integer() else epochs


def tta_mode(value: str | bool) -> str:
    """The TTA mode of a setting; configs written before TTA had modes said true/false."""
    if isinstance(value, bool):
        return "flip" if value else "none"
    return value


def _choice(name: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} '{value}'; choose from {', '.join(choices)}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be greater than 0, got {value}")


def _at_least(name: str, value, low) -> None:
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def train_command(config: RunConfig) -> str:
    """The `fashionlab train` command line that makes this run (settings that differ from the defaults)."""
    # flags only for what differs from where the command starts: the recipe's settings, or the defaults
    default = RunConfig.from_dict(recipe_settings(config.recipe) if config.recipe else {}).to_dict()
    args = ["fashionlab", "train"] + (["--recipe", config.recipe] if config.recipe else [])
    for key, value in config.to_dict().items():
        if value == default[key] or value is None or key == "recipe":
            continue
        if key == "augment":
            value = ",".join(":".join([name, *(f"{k}={v}" for k, v in params.items())])
                             for name, params in value.items())
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [f"--no-{key.replace('_', '-')}"] if value is False else [flag, str(value)]
    return shlex.join(args)
