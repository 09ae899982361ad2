"""The probes by setting-like names, so `key=value` overrides of the benchmark scripts (tune_recipe.py) name them:

    cutmix=P          CutMix with probability P (mixing.py)
    mixup=ALPHA       mixup with Beta(ALPHA, ALPHA) (mixing.py)
    sam_rho=RHO       sharpness-aware steps of radius RHO (sam.py) ...
    sam_from=F        ... from the fraction F of the steps on (default 0: all steps)
    low_res_size=S    progressive resizing: the first low_res_epochs train on S x S images ...
    low_res_epochs=E  ... (progressive_resize.py)
    full_data_tail=F  pruned runs keep every image in the epochs that start in the last F of the steps
                      (InfoBatch's 0.125 otherwise)
    model=NAME-xK     an ensemble of K NAMEs (ensemble.py): registered, and trained with EnsembleLoss

`run_settings(overrides)` is what RunConfig takes of them; `hooks_from(overrides)` the hook for the rest (one hook,
or a `Hooks` list of several, or None).
"""

from __future__ import annotations

from fashionlab.errors import ConfigError
from fashionlab.training.hooks import StepHooks, TrainingStart

from .ensemble import EnsembleLoss, register_ensemble
from .mixing import CutMix, Mixup
from .progressive_resize import ProgressiveResize
from .sam import SharpnessAware

# name -> what it does (argparse help, error messages)
PROBE_OPTIONS = {
    "cutmix": "CutMix's probability per image (probes/mixing.py)",
    "mixup": "mixup's Beta(alpha, alpha) (probes/mixing.py)",
    "sam_rho": "sharpness-aware minimisation's radius (probes/sam.py)",
    "sam_from": "the fraction of the steps from which SAM runs (default 0)",
    "low_res_size": "progressive resizing: image size of the first low_res_epochs (probes/progressive_resize.py)",
    "low_res_epochs": "progressive resizing: epochs' steps at low_res_size",
    "full_data_tail": "pruning keeps every image in the epochs starting in this last fraction of the steps",
}


class Hooks(list, StepHooks):
    """Several hooks as one, each called in turn: `batch` and `criterion` feed each hook's result to the next."""

    def start(self, run: TrainingStart) -> None:
        for hook in self:
            hook.start(run)

    def batch(self, x, y, step):
        for hook in self:
            x, y = hook.batch(x, y, step)
        return x, y

    def criterion(self, criterion, x, step):
        for hook in self:
            criterion = hook.criterion(criterion, x, step)
        return criterion

    def before_optimizer_step(self, recompute, step: int) -> None:
        for hook in self:
            hook.before_optimizer_step(recompute, step)


class FullDataTail(StepHooks):
    """Sets the pruner's full-data tail: the last `fraction` of the steps' epochs keep every image."""

    def __init__(self, fraction: float):
        if not 0 <= fraction <= 1:
            raise ConfigError(f"full_data_tail must be a fraction of the steps in [0, 1], got {fraction}")
        self.fraction = fraction

    def start(self, run: TrainingStart) -> None:
        if run.pruner is None:
            raise ConfigError("full_data_tail only changes a run that prunes: set prune > 0")
        run.pruner.full_data_tail = self.fraction


def run_settings(overrides: dict) -> dict:
    """The RunConfig settings among `overrides`: all but the probe options. A model NAME-xK is registered here,
    so that RunConfig accepts the name."""
    if "model" in overrides:
        register_ensemble(str(overrides["model"]))
    return {key: value for key, value in overrides.items() if key not in PROBE_OPTIONS}


def _number(options: dict, key: str, kind=float):
    value = options.get(key, 0)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if kind is int and number != value:
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    return number


def hooks_from(options: dict) -> StepHooks | None:
    """The hook for the probe options among `options` (RunConfig's own keys are left alone; a model NAME-xK is
    registered and adds EnsembleLoss): one hook, several as a `Hooks` list, or None where none is asked for."""
    hooks: list[StepHooks] = []
    cutmix, mixup = _number(options, "cutmix"), _number(options, "mixup")
    if cutmix and mixup:
        raise ConfigError("choose one of cutmix and mixup: both mix the same pairs of images")
    if cutmix:
        hooks.append(CutMix(cutmix))
    if mixup:
        hooks.append(Mixup(mixup))
    if options.get("low_res_size") or options.get("low_res_epochs"):
        # after mixing: the mixed image is what gets downscaled
        hooks.append(ProgressiveResize(_number(options, "low_res_size", int), _number(options, "low_res_epochs")))
    if "model" in options and register_ensemble(str(options["model"])):
        hooks.append(EnsembleLoss())
    if _number(options, "sam_rho"):
        hooks.append(SharpnessAware(_number(options, "sam_rho"), _number(options, "sam_from")))
    elif _number(options, "sam_from"):
        raise ConfigError("sam_from needs sam_rho > 0")
    if options.get("full_data_tail") is not None:
        hooks.append(FullDataTail(_number(options, "full_data_tail")))
    if not hooks:
        return None
    return hooks[0] if len(hooks) == 1 else Hooks(hooks)
