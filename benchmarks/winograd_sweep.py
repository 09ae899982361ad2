"""Where Winograd's 3x3 convolution pays: one fp32 training pass (forward and backward) of a 3x3 convolution,
oneDNN's direct algorithm against fashionlab's Winograd F(4x4, 3x3) (models/winograd.py), over channel counts,
map sizes and batch sizes. `winograd.pays` follows its table.

    python benchmarks/winograd_sweep.py [--batch-sizes 128,256] [--sizes 28,14,7,4,3]
                                        [--channels 32x64,64x64,64x128,96x96,128x128] [--forward-only]

`--forward-only` times a forward pass without gradients instead (evaluation, `pays(..., forward_only=True)`),
Winograd in the slices evaluation uses.

Winograd runs with the compiled transforms (models/winograd_transforms.c) where the machine has a C compiler;
the last column times it with the torch-operation transforms, the fallback. Each cell is the fastest of 2x4
passes, the algorithms alternating, so that a burst of other work on the machine slows all; `pays` says
whether the layer uses Winograd in training.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from machine import describe
from torch import nn

from fashionlab.models import native
from fashionlab.models.winograd import eligible, pays, torch_transforms, winograd_conv3x3, winograd_forward


def fastest_pass(conv, x, weight, grad, repeats: int = 4) -> float:
    """The fastest of `repeats` training passes, or forward passes without gradients where `grad` is None."""
    def one():
        if grad is None:
            with torch.no_grad():
                conv(x, weight)
        else:
            conv(x, weight).backward(grad)
    one()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return min(times)


def compare(n: int, c: int, k: int, size: int, forward_only: bool = False) -> tuple[float, float, float | None]:
    torch.manual_seed(0)
    x = torch.randn(n, c, size, size).contiguous(memory_format=torch.channels_last).requires_grad_(not forward_only)
    weight = (torch.randn(k, c, 3, 3) * 0.05).requires_grad_(not forward_only)
    grad = None if forward_only else torch.randn(n, k, size, size).contiguous(memory_format=torch.channels_last)
    direct = lambda x, w: F.conv2d(x, w, padding=1)  # noqa: E731
    winograd = winograd_forward if forward_only else winograd_conv3x3
    times = {"direct": [], "winograd": [], "torch transforms": []}
    for _ in range(2):
        times["direct"].append(fastest_pass(direct, x, weight, grad))
        times["winograd"].append(fastest_pass(winograd, x, weight, grad))
        if native.library() is not None and not forward_only:
            with torch_transforms():
                times["torch transforms"].append(fastest_pass(winograd_conv3x3, x, weight, grad))
    return min(times["direct"]), min(times["winograd"]), min(times["torch transforms"], default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="128,256")
    parser.add_argument("--sizes", default="28,14,7,4,3")
    parser.add_argument("--channels", default="32x64,64x64,64x128,96x96,128x128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--forward-only", action="store_true", help="forward passes without gradients (evaluation)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transforms = "compiled transforms" if native.library() else "no C compiler: torch-operation transforms"
    passes = "forward only, no gradients" if args.forward_only else "forward + backward"
    print(f"# {describe()}; fp32, channels_last, {passes}; {transforms}")
    print("| batch | channels | map | direct ms | Winograd ms | gain | pays | Winograd, torch-op transforms ms |")
    print("|---:|---|---:|---:|---:|---:|---|---:|")
    for n in (int(b) for b in args.batch_sizes.split(",")):
        for size in (int(s) for s in args.sizes.split(",")):
            for channels in args.channels.split(","):
                c, k = (int(v) for v in channels.split("x"))
                direct, winograd, torch_ops = compare(n, c, k, size, args.forward_only)
                conv = nn.Conv2d(c, k, 3, padding=1)
                used = "yes" if eligible(conv) and pays(conv, size, size, args.forward_only) else "no"
                fallback = "-" if torch_ops is None else f"{torch_ops * 1000:.1f}"
                print(f"| {n} | {c}->{k} | {size}x{size} | {direct * 1000:.1f} | {winograd * 1000:.1f} | "
                      f"{direct / winograd:.2f}x | {used} | {fallback} |", flush=True)


if __name__ == "__main__":
    main()
