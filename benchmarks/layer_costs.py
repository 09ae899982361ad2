"""Where a recipe's training step goes: each convolution alone against the whole step, and the optimizer step.

    python benchmarks/layer_costs.py [--model fastnet_small] [--batch-size 128] [--steps 20]

Times, in the recipes' precision on this CPU (bf16 autocast where it has bf16 products, fp32 otherwise) with
channels_last as the recipes train: (1) every convolution of the model on its own
(forward + backward with the input gradient, except the first layer's, as in training, on random tensors of
the shapes the layer sees) with its GFLOP/s; (2) the whole forward + backward; (3) the optimizer step of
SGD-Nesterov and of Muon (the fast and standard recipes' optimizer). If the convolutions alone add up to
most of the step, the step is bound by their arithmetic, and only fewer FLOPs make it faster. Medians of
--steps repetitions after warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from machine import cpu_precision, describe
from step_speed import recipe_step
from torch import nn

from fashionlab.models import create_model
from fashionlab.training.precision import autocast, prepare_model

CPU = torch.device("cpu")


def median_ms(fn, steps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def conv_inputs(model: nn.Module, batch_size: int) -> list[tuple[nn.Conv2d, torch.Size]]:
    seen = []
    hooks = [m.register_forward_hook(lambda m, inp, out: seen.append((m, inp[0].shape)))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad(), autocast(CPU, cpu_precision()):
        model(torch.zeros(batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last))
    for hook in hooks:
        hook.remove()
    return seen


def time_conv(conv: nn.Conv2d, shape: torch.Size, steps: int) -> tuple[float, float]:
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_(conv.in_channels > 1)

    def step():
        with autocast(CPU, cpu_precision()):
            y = conv(x)
        y.backward(torch.ones_like(y))

    ms = median_ms(step, steps)
    out_pixels = shape[0] * (shape[2] // conv.stride[0]) * (shape[3] // conv.stride[1])
    passes = 3 if conv.in_channels > 1 else 2  # forward, weight gradient, input gradient (not for the image)
    flops = passes * 2 * out_pixels * conv.weight[0].numel() * conv.out_channels
    return ms, flops / ms / 1e6


def time_training_step(model_name: str, optimizer: str, batch_size: int, steps: int) -> tuple[float, float]:
    forward_backward, opt = recipe_step(model_name, optimizer, batch_size)
    forward_backward()
    return median_ms(forward_backward, steps), median_ms(opt.step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fastnet_small")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {describe()}; {args.model}, batch {args.batch_size}, {cpu_precision()}, channels_last")
    model = prepare_model(create_model(args.model), CPU)
    print("| convolution | input | forward + backward ms | GFLOP/s |")
    print("|---|---|---:|---:|")
    total = 0.0
    for conv, shape in conv_inputs(model, args.batch_size):
        ms, gflops = time_conv(conv, shape, args.steps)
        total += ms
        print(f"| {conv.in_channels} → {conv.out_channels}, {conv.kernel_size[0]}x{conv.kernel_size[1]} | "
              f"{shape[2]}x{shape[3]} | {ms:.2f} | {gflops:.0f} |")
    print(f"| all convolutions, each alone | | {total:.1f} | |")
    print()
    print("| optimizer | forward + backward ms | optimizer step ms |")
    print("|---|---:|---:|")
    for name in ("sgd", "muon"):
        step_ms, opt_ms = time_training_step(args.model, name, args.batch_size, args.steps)
        print(f"| {name} | {step_ms:.1f} | {opt_ms:.2f} |")


if __name__ == "__main__":
    main()
