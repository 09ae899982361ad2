"""Numeric precision and device: bf16 autocast with channels_last where it is faster, fp32 elsewhere."""

from __future__ import annotations

import contextlib
import copy
import time

import torch
from torch import nn

from ..errors import ConfigError
from ..models import is_convolutional
from ..models.winograd import use_winograd


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for, but this torch build sees no CUDA device; use --device cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to the device; convolutional nets use channels_last, which oneDNN's fast kernels want."""
    model = model.to(device)
    if is_convolutional(model):
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    if x.dim() == 4 and is_convolutional(model):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def uses_winograd(precision: str, device: torch.device, winograd: bool) -> bool:
    return winograd and precision == "fp32" and device.type == "cpu"


def prepare_convolutions(model: nn.Module, precision: str, device: torch.device, winograd: bool) -> None:
    """Wide 3x3 convolutions by Winograd where the run trains in fp32 on a CPU (models/winograd.py)."""
    if uses_winograd(precision, device, winograd):
        use_winograd(model)


def _seconds_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str,
                      device: torch.device, winograd: bool, steps: int = 4) -> float:
    """The fastest of a few timed training steps: the minimum, unlike the mean, ignores other jobs' bursts."""
    trial = copy.deepcopy(model)
    prepare_convolutions(trial, precision, device, winograd)
    opt = torch.optim.SGD(trial.parameters(), lr=1e-6)

    def step():
        with autocast(device, precision):
            loss = nn.functional.cross_entropy(trial(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: oneDNN builds its kernels on first use
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def choose_precision(requested: str, model: nn.Module, device: torch.device, batch_size: int,
                     winograd: bool = True) -> str:
    """`auto` times a few training steps in fp32 (with Winograd convolutions if `winograd`) and in bf16 and
    keeps the faster (bf16 loses on tiny layers)."""
    if requested == "bf16" and not bf16_supported(device):
        raise ConfigError(f"precision bf16 is not supported on this {device.type} device; use --precision fp32")
    if requested != "auto":
        return requested
    if not bf16_supported(device):
        return "fp32"
    if device.type == "cuda":
        return "bf16"
    rng_state = torch.get_rng_state()  # the timing must not change the run's random numbers
    x = prepare_input(torch.randn(batch_size, 1, 28, 28, device=device), model)
    y = torch.randint(0, 10, (batch_size,), device=device)
    fp32 = _seconds_per_step(model, x, y, "fp32", device, winograd)
    bf16 = _seconds_per_step(model, x, y, "bf16", device, winograd)
    torch.set_rng_state(rng_state)
    return "bf16" if bf16 < 0.9 * fp32 else "fp32"
