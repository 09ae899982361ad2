"""The per-step learning-rate schedules: shape and length, fractional epochs included."""

import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.errors import ConfigError
from fashionlab.training.optim import create_scheduler, total_steps


def lrs(scheduler_name: str, epochs: float, steps_per_epoch: int = 10, lr: float = 1.0, **settings) -> list[float]:
    config = RunConfig(scheduler=scheduler_name, epochs=epochs, lr=lr, optimizer="sgd", **settings)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    scheduler = create_scheduler(optimizer, config, steps_per_epoch)
    seen = []
    for _ in range(total_steps(config, steps_per_epoch)):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize("epochs, steps", [(2, 20), (2.5, 25), (0.04, 1)])
def test_total_steps_follow_fractional_epochs(epochs, steps):
    assert total_steps(RunConfig(epochs=epochs), 10) == steps


def test_onecycle_linear_rises_and_falls_in_straight_lines():
    seen = lrs("onecycle-linear", epochs=10)  # 100 steps, peak at step 29 (pct_start 0.3)
    assert max(seen) == pytest.approx(1.0) and seen.index(max(seen)) == 29
    rise, fall = [b - a for a, b in zip(seen[:29], seen[1:30])], [b - a for a, b in zip(seen[29:-1], seen[30:])]
    assert max(rise) - min(rise) < 1e-9 and max(fall) - min(fall) < 1e-9  # constant slopes
    assert seen[-1] < 1e-3


def test_onecycle_cosine_is_not_linear():
    seen = lrs("onecycle", epochs=10)
    fall = [b - a for a, b in zip(seen[29:-1], seen[30:])]
    assert max(fall) - min(fall) > 1e-3 and max(seen) == pytest.approx(1.0)


@pytest.mark.parametrize("scheduler", ["onecycle", "onecycle-linear"])
def test_warmup_sets_where_the_one_cycle_peaks(scheduler):
    seen = lrs(scheduler, epochs=10, warmup=0.15)  # 100 steps
    assert seen.index(max(seen)) == 14 and max(seen) == pytest.approx(1.0)


@pytest.mark.parametrize("warmup", [0, 1, -0.1])
def test_warmup_must_be_a_fraction(warmup):
    with pytest.raises(ConfigError, match="warmup must be greater than 0 and less than 1"):
        RunConfig(warmup=warmup).validate()
