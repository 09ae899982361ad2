"""Training to a time budget (`fashionlab train --budget 5m`): how many steps fit, and the deadline that ends
training in time should the steps get slower.

What the budget bounds is the run's training time as `train_seconds` counts it: every step with its batching and
augmentation, and the batch-norm re-estimates. Set-up (loading data, choosing the precision, the probe below) and
evaluation (validation after each epoch, the final test, their test-time augmentation) are not in it; the run
reports them apart.

The plan: `probe` times the run's first steps on a throwaway model (training/loop.py), `fit` turns the step time
into the number of steps that fill the budget less a margin, and the run lays its learning-rate schedule and
pruning out over exactly those steps. Nothing here reads the time itself: the loop passes its clock, and tests
pass a fake one.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError, DamagedRun
from ..parsing import duration_text

MARGIN = 0.03        # the plan's share of the budget left free for the step time's noise
PROBE_WARMUP = 2     # the first steps build oneDNN's kernels and fill caches: run, not timed
PROBE_STEPS = 5      # steps timed after the warm-up
MAX_EPOCHS = 10_000  # RunConfig's bound on epochs
# the deadline expects the median of the last steps: one step slowed by another process's burst is ignored, a
# machine that stays slower shows after half of them
RECENT_STEPS = 5


@dataclass
class Probe:
    """What the first steps measured here."""
    step_seconds: float           # one training step, fetching and augmenting its batch included
    recalibration_seconds: float  # one batch-norm re-estimate (0 where the run makes none)
    seconds: float                # the probe itself, set-up of its throwaway model included
    precision: str                # the precision chosen for the probe, and so for the run


@dataclass
class Fit:
    """The plan of a budget run, fixed when it starts (the run keeps it in budget.json)."""
    budget: str
    budget_seconds: float
    step_seconds: float
    recalibration_seconds: float
    probe_seconds: float
    precision: str
    steps: int
    steps_per_epoch: int
    predicted_seconds: float

    @property
    def epochs(self) -> float:
        """The epochs that make exactly `steps` (optim.total_steps rounds epochs x steps_per_epoch)."""
        return self.steps / self.steps_per_epoch

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, path) -> Fit:
        """The plan a run saved (budget.json); DamagedRun when it is not one."""
        try:
            plan = cls(**values)
        except TypeError:
            raise DamagedRun(path, f"not a budget plan (it needs {', '.join(f.name for f in fields(cls))})") from None
        if not (isinstance(plan.steps, int) and plan.steps > 0 and isinstance(plan.step_seconds, int | float)):
            raise DamagedRun(path, f"not a budget plan (steps {plan.steps!r}, step_seconds {plan.step_seconds!r})")
        return plan


def recalibrations(steps: int, recalibrate_every: int | None) -> int:
    """Batch-norm re-estimates in `steps` steps: one after each epoch of `recalibrate_every` steps, or one at the
    end (`None`: no validation split, so only the final weights are re-estimated)."""
    return 1 if recalibrate_every is None else math.ceil(steps / recalibrate_every)


def predicted_seconds(steps: int, probe: Probe, recalibrate_every: int | None) -> float:
    return steps * probe.step_seconds + recalibrations(steps, recalibrate_every) * probe.recalibration_seconds


def fit(budget: str, budget_seconds: float, probe: Probe, steps_per_epoch: int, recalibrate_every: int | None,
        model: str) -> Fit:
    """The most steps whose predicted training time stays within the budget less MARGIN; a ConfigError that says
    the least budget that works when not even one step fits."""
    room = (1 - MARGIN) * budget_seconds
    cost = lambda steps: predicted_seconds(steps, probe, recalibrate_every)  # noqa: E731
    most = MAX_EPOCHS * steps_per_epoch + 1  # one more than allowed, to tell a budget that buys too many
    if probe.step_seconds > 0:
        most = min(most, math.floor(room / probe.step_seconds))
    steps = bisect.bisect_right(range(1, most + 1), room, key=cost)  # cost grows with steps
    if steps == 0:
        raise ConfigError(f"a budget of {budget} is too short to train one step of {model} here (a step takes "
                          f"{probe.step_seconds:.3g} s{_recalibration_text(probe)}); give at least "
                          f"{duration_text(cost(1) / (1 - MARGIN))}")
    if steps > MAX_EPOCHS * steps_per_epoch:
        raise ConfigError(f"a budget of {budget} buys more than {MAX_EPOCHS:,} epochs of {model} here (a step takes "
                          f"{probe.step_seconds:.3g} s); give a shorter one")
    return Fit(budget, budget_seconds, probe.step_seconds, probe.recalibration_seconds, probe.seconds,
               probe.precision, steps, steps_per_epoch, cost(steps))


def _recalibration_text(probe: Probe) -> str:
    if not probe.recalibration_seconds:
        return ""
    return f", and re-estimating batch norm {probe.recalibration_seconds:.3g} s"


class StepTimer:
    """Times the steps a batch iterator feeds: a step lasts from one batch's arrival to the next one's, so fetching
    and augmenting a batch count with the steps."""

    def __init__(self, clock: Callable[[], float], warmup: int):
        self.clock, self.warmup = clock, warmup
        self.times: list[float] = []

    def timed(self, batches: Iterable) -> Iterator:
        for item in batches:
            self.times.append(self.clock())
            yield item

    def step_seconds(self, end: float) -> float:
        """The mean step after the warm-up, `end` being the time the last step finished (after a GPU's sync)."""
        first = min(self.warmup, len(self.times) - 1)  # a run too short for a warm-up has its one step timed
        return (end - self.times[first]) / (len(self.times) - first)


class Deadline:
    """Ends training before the step that would take the run past its budget.

    Before each step it adds to the training time so far the next step's expected time (the median of the last
    RECENT_STEPS steps, the probe's figure until one has been seen) and the batch-norm re-estimate still to come
    (scaled by how much slower than probed the steps have become). When that passes the budget, it stops feeding
    batches; the run then finishes as usual. No step starts once the budget is spent, so the overrun is at most the
    last step's excess over its expected time, plus the final re-estimate's excess over its scaled figure: under 5%
    of a budget while a step takes less than 5% of it. On a GPU the host runs ahead of the device between loss reads
    (loop.GPU_SYNC_EVERY steps), and at most that far."""

    def __init__(self, plan: Fit, clock: Callable[[], float]):
        self.plan, self.clock = plan, clock
        self.recent: deque[float] = deque([plan.step_seconds], maxlen=RECENT_STEPS)
        self.reached = False

    def expected_step(self) -> float:
        return statistics.median(self.recent)

    def reserve(self) -> float:
        slowdown = self.expected_step() / self.plan.step_seconds if self.plan.step_seconds > 0 else 1.0
        return self.plan.recalibration_seconds * max(1.0, slowdown)

    def fits(self, spent: float) -> bool:
        """Whether one more step fits after `spent` seconds of training time."""
        return spent + self.expected_step() + self.reserve() <= self.plan.budget_seconds

    def report(self, train_seconds: float, steps_taken: int) -> dict:
        """The budget's entry in metrics.json: the actual seconds are the run's train_seconds."""
        plan = self.plan
        return {"budget": plan.budget, "budget_seconds": plan.budget_seconds,
                "predicted_seconds": round(plan.predicted_seconds, 3), "actual_seconds": round(train_seconds, 3),
                "steps_planned": plan.steps, "steps_taken": steps_taken, "stopped_at_budget": self.reached}

    def summary(self, report: dict, accuracy: float) -> str:
        """The run's last line: what the budget bought, and whether the deadline ended it."""
        if report["stopped_at_budget"]:
            how = (f"stopped at its budget after {report['steps_taken']} of {report['steps_planned']} steps (a step "
                   f"took {self.expected_step():.3g} s at the end, {self.plan.step_seconds:.3g} s when timed)")
        else:
            how = f"{report['steps_taken']} steps"
        return (f"budget {report['budget']}: {how}; predicted {report['predicted_seconds']:.1f} s, actual "
                f"{report['actual_seconds']:.1f} s of training; test accuracy {accuracy:.4f}")

    def limit(self, batches: Iterable, spent: float, start: float) -> Iterator:
        """`batches` while the next step fits; `spent`: the training time before `start`, the clock's reading when
        the training time of these batches began counting. Each batch is fetched before the check, so that running
        out of batches is never taken for reaching the budget; a step's time runs from one check to the next."""
        previous = None
        for item in batches:
            now = self.clock()
            if previous is not None:
                self.recent.append(now - previous)
            if not self.fits(spent + now - start):
                self.reached = True
                return
            previous = now
            yield item
