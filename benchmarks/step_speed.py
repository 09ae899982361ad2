"""Per-step cost of the recipes' networks, and whether torch.compile pays on this CPU.

    python benchmarks/step_speed.py [--models fastnet_small,fastnet_large_ceil,fastnet,wrn16_4,resnet18]
                                    [--compile fastnet_small,fastnet_large_ceil] [--batch-size 256] [--steps 10]
                                    [--sizes 28,20]

Times the recipes' training step (bf16 autocast where the CPU has bf16 products, fp32 otherwise; channels_last,
SGD-Nesterov, label smoothing) of each model eager, in fp32 also with its wide 3x3 convolutions by Winograd
(models/winograd.py, as training runs them), and of the --compile models also under torch.compile
(inductor): the first two steps (compilation happens there, with inductor's caches off), the fastest and the
median step after them, and what a 60,000-image epoch costs at the fastest step. Everything runs in this one
process; the fastest step is the figure to compare (other jobs on the machine only ever add time). --sizes also
times the step on smaller images, what the progressive-resizing probe (probes/progressive_resize.py) trains its
first epochs on. --models may name any registered network, the probes' set-aside ones (probes/architectures.py:
fastnet, fastnet_large, fastnet_large_res, wrn16_4, resnet18, vit_p7) included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# time a cold compile, as a user's first run pays it, not one served from inductor's on-disk cache
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import probes.architectures  # noqa: F401  (registers the set-aside networks --models may name)
import torch  # noqa: E402
from machine import cpu_precision, describe  # noqa: E402
from torch import nn

from fashionlab.config import RunConfig
from fashionlab.models import MODELS, create_model
from fashionlab.models.winograd import use_winograd
from fashionlab.training.optim import create_optimizer
from fashionlab.training.precision import autocast, prepare_model

CPU = torch.device("cpu")

EPOCH = 60_000


def recipe_step(model_name: str, optimizer_name: str = "sgd", batch_size: int = 256, size: int = 28,
                compiled: bool = False, winograd: bool = False):
    """(forward_backward, optimizer) of the recipes' training step on one random batch: this CPU's precision,
    channels_last, label smoothing; call both for a whole step."""
    torch.manual_seed(0)
    model = prepare_model(create_model(model_name), CPU)
    if winograd:
        use_winograd(model)
    optimizer = create_optimizer(model.parameters(),
                                 RunConfig(optimizer=optimizer_name, lr=0.01, momentum=0.9, nesterov=True))
    forward = torch.compile(model) if compiled else model
    x = torch.randn(batch_size, 1, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))

    def forward_backward():
        with autocast(CPU, cpu_precision()):
            loss = nn.functional.cross_entropy(forward(x).float(), y, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    return forward_backward, optimizer


def time_steps(model_name: str, mode: str, batch_size: int, steps: int, size: int = 28
               ) -> tuple[float, list[float]]:
    forward_backward, optimizer = recipe_step(model_name, "sgd", batch_size, size, mode == "compiled",
                                              mode == "winograd")

    def step():
        forward_backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    step()
    warm_up = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return warm_up, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="fastnet_small,fastnet_large_ceil,fastnet,wrn16_4,resnet18",
                        help="comma-separated registered networks")
    parser.add_argument("--compile", default="fastnet_small,fastnet_large_ceil",
                        help="models also timed under torch.compile ('' = none)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--sizes", default="28", help="image sizes to time, e.g. 28,20")
    args = parser.parse_args()
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(sorted(MODELS))}")
    torch.set_num_threads(args.threads)
    print(f"# {describe()}; batch {args.batch_size}, {cpu_precision()}")
    print("| model | mode | image size | first 2 steps s | fastest step ms | median step ms "
          "| s per 60,000-image epoch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    compiled = [m for m in args.compile.split(",") if m]
    for name in args.models.split(","):
        winograd = cpu_precision() == "fp32" and use_winograd(create_model(name)) > 0
        for mode in ["eager"] + (["winograd"] if winograd else []) + (["compiled"] if name in compiled else []):
            for size in (int(s) for s in args.sizes.split(",")):
                warm_up, times = time_steps(name, mode, args.batch_size, args.steps, size)
                best = min(times)
                print(f"| {name} | {mode} | {size} | {warm_up:.1f} | {best * 1000:.0f} | "
                      f"{statistics.median(times) * 1000:.0f} | {best * EPOCH / args.batch_size:.1f} |", flush=True)


if __name__ == "__main__":
    main()
