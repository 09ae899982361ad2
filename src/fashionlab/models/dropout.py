"""Dropout with a cheaper random mask on the CPU.

torch's CPU dropout draws one random number per element through `bernoulli_`; on the seed CNN's
28x28x128 feature maps that was 42% of a bf16 training step (benchmarks/epoch_speed.py). This
version draws one 64-bit integer per four elements and compares each 16-bit quarter with a threshold:
the same inverted dropout (keep with probability 1 - p, scale the kept values by 1 / keep), p rounded to
a multiple of 1/65536, from the same seeded default generator. On other devices it is nn.Dropout.
"""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 1 << 16


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if not (x.is_contiguous() or channels_last):
            x = x.contiguous()
        dropped = round(self.p * _LEVELS)  # how many of the 65,536 16-bit values mean "drop"
        n = x.numel()
        bits = torch.randint(-2**63, 2**63 - 1, (-(-n // 4),), dtype=torch.int64).view(torch.int16)[:n]
        # lay the mask out like x (e.g. channels_last), so the multiply walks both in memory order
        bits = bits.as_strided(x.size(), x.stride())
        keep = (bits >= dropped - _LEVELS // 2).to(x.dtype)
        return x * keep.mul_(_LEVELS / (_LEVELS - dropped))

