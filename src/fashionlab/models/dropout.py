"""Dropout with a cheaper random mask on the CPU.

torch's CPU dropout draws one random number per element through `bernoulli_`; on the paper's CNN's
28x28x128 feature maps that was 42% of a bf16 training step (benchmarks/epoch_speed.py). This version
takes four 16-bit uniform integers from each 64-bit word of numpy's SFC64 generator (seeded from torch's
default generator, so `torch.manual_seed` still fixes every mask) and keeps an element where its integer is
above a threshold: the same inverted dropout (keep with probability 1 - p, scale the kept values by
1 / keep), p rounded to a multiple of 1/65536. numpy builds the mask too, as the bit pattern of
"0 or the scale" in x's dtype: torch's CPU int16 compare and bool-to-float cast are slow, together about
as slow as torch drawing the bits (benchmarks/dropout_speed.py, docs/EXPERIMENTS.md). On
other devices it is nn.Dropout.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

_LEVELS = 1 << 16
# x's dtype -> a signed integer type of the same width, to write its bit patterns in numpy
_BITS = {2: (torch.int16, np.int16), 4: (torch.int32, np.int32), 8: (torch.int64, np.int64)}


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dropped = round(self.p * _LEVELS)  # how many of the 65,536 16-bit values mean "drop"
        if (not self.training or not 0 < dropped < _LEVELS or x.device.type != "cpu" or self.inplace
                or not x.is_floating_point()):
            return super().forward(x)
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if not (x.is_contiguous() or channels_last):
            x = x.contiguous()
        keep = _mask(x.numel(), dropped, x.dtype)
        # lay the mask out like x (e.g. channels_last), so the multiply walks both in memory order
        return x * keep.as_strided(x.size(), x.stride())


def _mask(n: int, dropped: int, dtype: torch.dtype) -> torch.Tensor:
    """n values of `dtype`: 0 with probability dropped / 65536, else 65536 / (65536 - dropped)."""
    seed = int(torch.randint(0, 2**63 - 1, ()))
    bits = np.random.SFC64(seed).random_raw(-(-n // 4)).view(np.int16)[:n]
    kept_value = _kept_bit_pattern(dropped, dtype)
    mask = np.multiply(bits >= dropped - _LEVELS // 2, kept_value, dtype=kept_value.dtype)
    return torch.from_numpy(mask).view(dtype)


@functools.cache
def _kept_bit_pattern(dropped: int, dtype: torch.dtype) -> np.integer:
    """The bits of 65536 / (65536 - dropped) rounded to `dtype`, as a numpy integer of the same width."""
    torch_int, np_int = _BITS[torch.finfo(dtype).bits // 8]
    return np_int(torch.tensor(_LEVELS / (_LEVELS - dropped), dtype=dtype).view(torch_int).item())
