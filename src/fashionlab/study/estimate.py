"""How long a study takes on this machine, before it starts: each distinct network's training step is timed for a
few steps here, then multiplied by the steps each run takes, plus its evaluations. The same estimates size the CNN
rows to a time budget (`fashionlab study --budget 45m`) and give the progress lines their ETA."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import RunConfig
from ..data import apply_augment
from ..errors import ConfigError
from ..models import create_model
from ..parsing import duration_text
from ..training.optim import create_optimizer, total_steps
from ..training.precision import (
    autocast,
    choose_precision,
    prepare_convolutions,
    prepare_input,
    prepare_model,
    resolve_device,
)

PROBE_STEPS = 2
FORWARD_SHARE = 1 / 3  # a forward pass alone costs about a third of a training step


def step_seconds(config: RunConfig) -> float:
    """The fastest of a few training steps of `config`'s network here, augmentation included, at the precision and
    with the convolutions training would choose."""
    device = resolve_device(config.device)
    threads = torch.get_num_threads()  # the probe's threads are its config's, not the next probe's
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = torch.get_rng_state()  # probing must not move anyone's random numbers
    model = prepare_model(create_model(config.model), device)
    precision = choose_precision(config.precision, model, device, config.batch_size, config.winograd)
    prepare_convolutions(model, precision, device, config.winograd)
    optimizer = create_optimizer(model.parameters(), config)
    x = torch.randn(config.batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (config.batch_size,), device=device)
    times = []
    for _ in range(PROBE_STEPS + 1):  # the first step builds oneDNN's kernels: not timed
        start = time.perf_counter()
        batch = apply_augment(x, config.augment, None) if config.augment else x
        with autocast(device, precision):
            loss = nn.functional.cross_entropy(model(prepare_input(batch, model)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    torch.set_rng_state(rng)
    torch.set_num_threads(threads)
    return min(times[1:])


def run_seconds(config: RunConfig, step: float) -> float:
    """A run's training steps, its per-epoch evaluations and its final test, from the step time."""
    steps_per_epoch = config.train_size // config.batch_size
    steps = total_steps(config, steps_per_epoch)
    per_image = step / config.batch_size
    views = {"none": 1, "flip": 2, "flip-shift": 10}[config.tta]
    epochs = -(-steps // steps_per_epoch)
    evaluate = epochs * (config.val_size * views + config.bn_recalibration * config.batch_size) \
        if config.val_size else config.bn_recalibration * config.batch_size
    test = (config.test_limit or 10_000) * views
    return steps * step + (evaluate + test) * per_image * FORWARD_SHARE


@dataclass
class Estimates:
    """Seconds per experiment key (one seed's run), from step times probed once per distinct network setting, and
    what each adds to the study's wall time: a run trained beside others (side_by_side.py) adds a share of it."""
    seconds: dict = field(default_factory=dict)
    wall: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)

    def add(self, key: str, config: RunConfig, at_once: int = 1) -> float:
        # the optimizer's own cost is small beside the network's: runs that differ only in it share a probe
        probe = (config.model, config.batch_size, config.precision, str(config.augment), config.threads,
                 config.device, config.winograd)
        if probe not in self.probes:
            self.probes[probe] = step_seconds(config)
        self.seconds[key] = run_seconds(config, self.probes[probe])
        self.wall[key] = self.seconds[key] / at_once
        return self.seconds[key]

    def total(self, keys=None) -> float:
        """The study's wall seconds for these keys' runs (one seed each)."""
        return sum(self.wall.get(k, self.seconds[k]) for k in (self.seconds if keys is None else keys))


def fit_to_budget(configs: dict[str, RunConfig], scaled: tuple, estimates: Estimates, budget_seconds: float,
                  seeds: int) -> dict[str, float]:
    """Epochs for the `scaled` experiments (the CNN rows) so that every run of the study fits `budget_seconds`,
    keeping the preset's ratio between them. The other experiments keep their epochs."""
    fixed = seeds * estimates.total([k for k in configs if k not in scaled])
    flexible = seeds * estimates.total([k for k in scaled if k in configs])
    room = 0.97 * budget_seconds - fixed  # a little headroom for writing the report
    factor = room / flexible if flexible else 0.0
    epochs = {k: round(configs[k].epochs * factor, 2) for k in scaled if k in configs}
    if room <= 0 or min(epochs.values(), default=1) < 0.05:
        raise ConfigError(f"a budget of {duration_text(budget_seconds)} is too small here: the experiments other "
                          f"than the CNN rows alone take about {duration_text(fixed)} on this CPU; give at least "
                          f"{duration_text((fixed + 0.1 * flexible) / 0.97)}")
    return epochs
