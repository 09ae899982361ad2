"""What dropout costs in the seed CNN's training step, and where a mask's time goes.

    python benchmarks/dropout_speed.py [--rounds 3] [--steps 4]

(1) The seed CNN's training step (bf16 where the CPU has bf16 products, else fp32; batch 128, channels_last,
fashionlab's Adam) with torch's nn.Dropout, with fashionlab's Dropout (models/dropout.py) and with no dropout
at all (the floor), timed in interleaved rounds so that a slow minute hits all three; medians. (2) The pieces
of a mask for one 128x128x28x28 bf16 feature map (the CNN's largest), each timed alone: the random bits from
torch's generator and from numpy's SFC64, torch's int16 compare and bool-to-bf16 cast, numpy's
compare-and-multiply to bit patterns, and the bf16 multiply that applies a mask.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from epoch_speed import replace_dropouts, step_fn, with_torch_dropout
from layer_costs import median_ms
from machine import cpu_precision, describe
from torch import nn

from fashionlab.models import create_model
from fashionlab.models.dropout import _kept_bit_pattern
from fashionlab.training.precision import prepare_model

BATCH = 128
REPEATS = 10  # timings of each mask piece (after three warm-up calls)


def without_dropout(model: nn.Module) -> nn.Module:
    return replace_dropouts(model, lambda layer: nn.Identity())


def step_times(rounds: int, steps: int) -> dict[str, float]:
    variants = {"torch nn.Dropout": with_torch_dropout, "fashionlab Dropout": lambda m: m,
                "no dropout (floor)": without_dropout}
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    steppers = {}
    for name, change in variants.items():
        torch.manual_seed(0)
        steppers[name] = step_fn(prepare_model(change(create_model("cnn")), torch.device("cpu")), cpu_precision(), True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in steppers.items():
            for _ in range(2):  # warm-up: the first steps allocate
                step(x, y)
            start = time.perf_counter()
            for _ in range(steps):
                step(x, y)
            times[name].append((time.perf_counter() - start) / steps * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def mask_pieces() -> list[tuple[str, float]]:
    x = torch.randn(BATCH, 128, 28, 28).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    n = x.numel()
    bits = np.random.SFC64(0).random_raw(n // 4).view(np.int16)
    torch_bits = torch.from_numpy(bits)
    dropped = round(0.2 * 65536)
    threshold = dropped - 32768
    kept_value = _kept_bit_pattern(dropped, torch.bfloat16)  # the bf16 bits of 1.25, as models/dropout.py builds it
    torch_keep = (torch_bits >= threshold).view(x.shape)
    mask = torch.from_numpy(np.multiply(bits >= threshold, kept_value, dtype=np.int16)).view(torch.bfloat16)
    mask = mask.as_strided(x.size(), x.stride())
    return [
        ("torch.randint, full 64-bit range (n/4 words)",
         median_ms(lambda: torch.randint(-2**63, 2**63 - 1, (n // 4,), dtype=torch.int64), REPEATS)),
        ("numpy SFC64 random_raw (n/4 words)", median_ms(lambda: np.random.SFC64(1).random_raw(n // 4), REPEATS)),
        ("torch int16 >= threshold -> bool", median_ms(lambda: torch_bits >= threshold, REPEATS)),
        ("torch bool -> bf16", median_ms(lambda: torch_keep.to(torch.bfloat16), REPEATS)),
        ("numpy int16 >= threshold, times the bf16 pattern of 1.25",
         median_ms(lambda: np.multiply(bits >= threshold, kept_value, dtype=np.int16), REPEATS)),
        ("torch bf16 map x bf16 mask", median_ms(lambda: x * mask, REPEATS)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print(f"# {describe()}; seed CNN, batch {BATCH}, {cpu_precision()}, channels_last")
    print("| seed CNN training step with | ms (median of rounds) |")
    print("|---|---:|")
    for name, ms in step_times(args.rounds, args.steps).items():
        print(f"| {name} | {ms:.0f} |", flush=True)
    print(f"\n| one mask for a {BATCH}x128x28x28 bf16 map (n = {BATCH * 128 * 28 * 28:,}), p = 0.2 | ms |")
    print("|---|---:|")
    for name, ms in mask_pieces():
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
