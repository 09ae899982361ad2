"""Progressive resizing: the first part of a run trains on downscaled batches, the rest at 28x28.

A training step's cost is roughly proportional to the pixels it convolves, so a step at 20x20 costs about
half a step at 28x28 (`benchmarks/step_speed.py --sizes 28,20`: 0.55 for fastnet_small, 0.53 for
fastnet_large on the 2-core CPU). Early in training the network learns coarse shapes that
survive downscaling; the last epochs at full size adapt it to the size it is evaluated at (validation
and test always run at 28x28). Only networks that end in global pooling can take other sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def downscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, 28, 28) -> (B, C, size, size), bilinear with antialiasing: each output pixel a weighted average of
    its neighbourhood, where plain bilinear would subsample and alias fine stripes and edges."""
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
