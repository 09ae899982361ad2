"""Progressive resizing: the first part of a run trains on downscaled batches, the rest at 28x28.

A training step's cost is roughly proportional to the pixels it convolves, so a step at 20x20 costs about
half a step at 28x28 (benchmarks/step_speed.py). Early in training the network learns coarse shapes that
survive downscaling; the last epochs at full size adapt it to the size it is evaluated at (validation
and test always run at 28x28). Only networks that end in global pooling can take other sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FULL_SIZE = 28


def downscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, 28, 28) -> (B, C, size, size), bilinear with antialiasing (an area average, not a subsample)."""
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def low_res_steps(epochs: float, steps_per_epoch: int) -> int:
    """Training steps at the low resolution: `epochs` (a fraction allowed) worth of steps."""
    return round(epochs * steps_per_epoch)
