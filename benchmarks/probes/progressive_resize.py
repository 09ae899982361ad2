"""Progressive resizing as a step hook: the first part of a run trains on downscaled batches, the rest at 28x28.

A training step's cost is roughly proportional to the pixels it convolves, so a step at 20x20 costs about half
a step at 28x28 (`benchmarks/step_speed.py --sizes 28,20`). Early in training the network learns coarse shapes
that survive downscaling; the last epochs at full size adapt it to the size it is evaluated at (validation and
test always run at 28x28). Only networks that end in global pooling can take other sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fashionlab.errors import ConfigError
from fashionlab.training.hooks import StepHooks, TrainingStart
from fashionlab.training.precision import prepare_input


def downscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, 28, 28) -> (B, C, size, size), bilinear with antialiasing: each output pixel a weighted average of
    its neighbourhood, where plain bilinear would subsample and alias fine stripes and edges."""
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def takes_size(model: torch.nn.Module, size: int, device: torch.device) -> bool:
    """Whether `model` maps a size x size image to one row of logits, as it does a 28x28 one."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, 1, size, size, device=device)
            return model(prepare_input(x, model)).shape == model(prepare_input(torch.zeros(
                1, 1, 28, 28, device=device), model)).shape
    except (RuntimeError, ValueError, AssertionError):  # what a fixed-size layer raises on the wrong size
        return False
    finally:
        model.train(was_training)


class ProgressiveResize(StepHooks):
    """Train the first `epochs` (of full-data epochs' steps) on `size` x `size` images, the rest at 28x28."""

    def __init__(self, size: int, epochs: float):
        if not 8 <= size < 28:
            raise ConfigError(f"low_res_size must be between 8 and 27 pixels, got {size}")
        if not epochs > 0:
            raise ConfigError(f"low_res_epochs must be more than 0, got {epochs}")
        self.size, self.epochs = size, epochs
        self.until = 0

    def start(self, run: TrainingStart) -> None:
        self.until = round(self.epochs * run.steps_per_epoch)
        if self.until >= run.steps:
            raise ConfigError(f"low_res_epochs ({self.epochs:g}) must be fewer than the run's epochs "
                              f"({run.steps / run.steps_per_epoch:g}); the last epochs train at 28x28")
        if not takes_size(run.model, self.size, run.device):
            raise ConfigError(f"this network only takes 28x28 images, so it cannot train at low_res_size "
                              f"{self.size}; use a convolutional net with global pooling")

    def batch(self, x, y, step):
        if step < self.until:
            x = downscale(x, self.size)
        return x, y
