"""Optional behaviour inside the training loop, as one small object: the loop calls a `StepHooks` at fixed points
of every run and step, and the default does nothing. Distillation is one (training/distillation.py); probes under
benchmarks/probes/ (mixing, sharpness-aware steps, progressive resizing, ensembles, EMA) plug in the same way,
without options of their own in the product."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TrainingStart:
    """What a hook may look at or adjust before the first step."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    pruner: object | None      # training/pruning.Pruner when the run prunes
    steps: int                 # the run's steps in all
    steps_per_epoch: int       # steps of one full-data epoch
    device: torch.device


class StepHooks:
    def start(self, run: TrainingStart) -> None:
        """Once, before the first step (and again when a run resumes)."""

    def batch(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, targets) to train step `step` (counted over the run) on, after augmentation. Accuracy is still
        counted against the images' own labels."""
        return x, y

    def criterion(self, criterion: Callable, x: torch.Tensor, step: int) -> Callable:
        """The loss of this batch: `criterion(logits, targets)`, or another function of the same shape."""
        return criterion

    def before_optimizer_step(self, recompute: Callable[[], None], step: int) -> None:
        """The gradients are in place; `recompute()` runs the batch's forward and backward passes again."""


class Chain(StepHooks):
    """Several hooks in turn: each `batch` and `criterion` takes the previous one's result."""

    def __init__(self, *hooks: StepHooks):
        self.hooks = hooks

    def start(self, run: TrainingStart) -> None:
        for hook in self.hooks:
            hook.start(run)

    def batch(self, x, y, step):
        for hook in self.hooks:
            x, y = hook.batch(x, y, step)
        return x, y

    def criterion(self, criterion, x, step):
        for hook in self.hooks:
            criterion = hook.criterion(criterion, x, step)
        return criterion

    def before_optimizer_step(self, recompute, step) -> None:
        for hook in self.hooks:
            hook.before_optimizer_step(recompute, step)
