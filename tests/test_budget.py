"""Training to a time budget: the duration parser, the plan, the deadline, and budget runs end to end.

Time here is a fake clock that moves only when a training step runs, so nothing depends on this machine's speed."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fashionlab.cli import main
from fashionlab.errors import ConfigError
from fashionlab.parsing import duration_text, parse_duration
from fashionlab.runs import open_run
from fashionlab.training import loop
from fashionlab.training.budget import MARGIN, PROBE_STEPS, PROBE_WARMUP, Deadline, Fit, Probe, fit
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.hooks import StepHooks
from fashionlab.training.loop import Interrupted, train

PROBED = PROBE_WARMUP + PROBE_STEPS  # steps the probe takes before the run's first


# --- the duration parser -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("45s", 45), ("5m", 300), ("1h", 3600), ("1.5h", 5400), ("1h30m", 5400), ("2m 30s", 150), (" 90S ", 90),
    (".5s", 0.5), ("0.25m", 15),
])
def test_durations_with_units_are_read(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, message", [
    ("30", "has no unit; give a unit: 30s, 5m or 1h"),
    ("2.5", "has no unit; give a unit"),
    ("0s", "must be longer than 0 s"),
    ("-5s", "is not a duration"),
    ("5 min", "is not a duration"),
    ("1e3s", "is not a duration"),
    ("5m5", "is not a duration"),
    ("", "is not a duration"),
    ("inf", "is not a duration"),
])
def test_bad_durations_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_duration(text)
    assert "\n" not in str(err.value)


@settings(max_examples=200, deadline=None)
@given(seconds=st.floats(min_value=0.01, max_value=1e6))
def test_duration_text_reads_back_as_at_least_the_time(seconds):
    """What an error offers as the least that works is a valid duration, rounded up by less than a minute."""
    back = parse_duration(duration_text(seconds))
    assert seconds - 1e-6 <= back < seconds + 60


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from("smh")), min_size=1, max_size=3))
def test_a_duration_is_the_sum_of_its_parts(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * {"s": 1, "m": 60, "h": 3600}[unit] for n, unit in parts)
    if total == 0:
        with pytest.raises(ConfigError, match="longer than 0"):
            parse_duration(text)
    else:
        assert parse_duration(text) == total


# --- the plan ------------------------------------------------------------------------------------------------------

def probe(step=0.125, recalibration=0.0):
    return Probe(step_seconds=step, recalibration_seconds=recalibration, seconds=1.0, precision="fp32")


def test_the_plan_fills_the_budget_less_the_margin():
    plan = fit("10s", 10, probe(0.125), steps_per_epoch=20, recalibrate_every=None, model="ann")
    assert plan.steps == int((1 - MARGIN) * 10 / 0.125) == 77
    assert plan.predicted_seconds == 77 * 0.125 and plan.epochs == 77 / 20


def test_the_plan_counts_a_batch_norm_re_estimate_after_each_epoch():
    # 10 s less 3%: steps * 0.125 + (one re-estimate of 1 s per 20 steps, rounded up) <= 9.7
    plan = fit("10s", 10, probe(0.125, recalibration=1.0), steps_per_epoch=20, recalibrate_every=20, model="cnn")
    assert plan.steps == 53 and plan.predicted_seconds == 53 * 0.125 + 3
    once = fit("10s", 10, probe(0.125, recalibration=1.0), steps_per_epoch=20, recalibrate_every=None, model="cnn")
    assert once.steps == 69 and once.predicted_seconds == 69 * 0.125 + 1


def test_a_budget_too_short_for_one_step_says_the_least_that_works():
    with pytest.raises(ConfigError, match=r"a budget of 1s is too short to train one step of cnn here \(a step takes "
                                          r"0.5 s, and re-estimating batch norm 0.8 s\); give at least 1.4s") as err:
        fit("1s", 1, probe(0.5, recalibration=0.8), steps_per_epoch=20, recalibrate_every=None, model="cnn")
    least = parse_duration(str(err.value).rsplit(" ", 1)[-1])
    assert fit("1.4s", least, probe(0.5, recalibration=0.8), 20, None, "cnn").steps == 1


def test_a_budget_that_buys_more_than_the_epoch_limit_is_refused():
    with pytest.raises(ConfigError, match=r"buys more than 10,000 epochs of ann here \(a step takes 0.001 s\); give a "
                                          "shorter one"):
        fit("1000h", 3.6e6, probe(0.001), steps_per_epoch=10, recalibrate_every=None, model="ann")


@settings(max_examples=300, deadline=None)
@given(steps=st.integers(1, 10**7), per_epoch=st.integers(1, 60_000))
def test_the_saved_epochs_give_back_exactly_the_planned_steps(steps, per_epoch):
    from fashionlab.config import RunConfig
    from fashionlab.training.optim import total_steps

    plan = Fit("1s", 1, 0.1, 0, 0, "fp32", steps, per_epoch, 0.1)
    assert total_steps(RunConfig(epochs=plan.epochs), per_epoch) == steps


# --- the deadline --------------------------------------------------------------------------------------------------

class FakeClock:
    """Time that moves only when a step runs: step n (counted from 0, the probe's included) costs `cost(n)`."""

    def __init__(self, cost):
        self.now, self.steps, self.cost = 0.0, 0, cost

    def __call__(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += self.cost(self.steps)
        self.steps += 1


def run_deadline(durations, budget=10.0, step=0.125, recalibration=0.0):
    """(steps taken, training seconds at the stop) of a deadline fed steps of `durations` seconds."""
    clock = FakeClock(lambda n: durations[n])
    deadline = Deadline(Fit("10s", budget, step, recalibration, 0, "fp32", 10**6, 10, budget), clock)
    taken = 0
    for _ in deadline.limit(range(len(durations)), spent=0.0, start=clock()):
        clock.step()
        taken += 1
    return taken, clock.now, deadline


def test_the_deadline_stops_when_steps_get_slower():
    taken, seconds, deadline = run_deadline([0.125] * 40 + [0.5] * 100)
    assert deadline.reached and seconds <= 10 and taken == 50  # 40 fast steps (5 s), then ten of 0.5 s
    assert deadline.expected_step() == 0.5


def test_a_run_whose_steps_end_at_the_budget_was_not_stopped_by_it():
    taken, seconds, deadline = run_deadline([0.125] * 80)  # exactly 10 s: no step is left for the deadline to end
    assert taken == 80 and seconds == 10 and not deadline.reached


def test_one_slow_step_does_not_end_the_run():
    durations = [0.125] * 20 + [2.0] + [0.125] * 40
    taken, seconds, deadline = run_deadline(durations)
    assert not deadline.reached and taken == len(durations)


def test_the_reserve_for_the_last_re_estimate_grows_with_the_slowdown():
    # 1 s of re-estimate probed; steps twice as slow as probed leave room for 2 s of it
    taken, seconds, deadline = run_deadline([0.25] * 100, step=0.125, recalibration=1.0)
    assert deadline.reserve() == 2.0 and 7.75 < seconds <= 8.0


@settings(max_examples=300, deadline=None)
@given(durations=st.lists(st.floats(min_value=1e-4, max_value=0.5), min_size=1, max_size=400),
       budget=st.floats(min_value=10, max_value=40), step=st.floats(min_value=1e-4, max_value=0.5))
def test_the_overrun_is_under_5_percent_while_a_step_is_under_5_percent_of_the_budget(durations, budget, step):
    """Any step times, sudden slowdowns included, each at most 0.5 s against a budget of at least 10 s."""
    taken, seconds, deadline = run_deadline(durations, budget=budget, step=step)
    assert seconds <= 1.05 * budget
    assert taken == len(durations) or deadline.reached


# --- budget runs ---------------------------------------------------------------------------------------------------

@pytest.fixture
def fake_clock(monkeypatch):
    """`fake_clock(cost)`: a FakeClock that every training step advances, the probe's steps included."""
    def make(cost) -> FakeClock:
        clock, real = FakeClock(cost), loop.derive_seed
        monkeypatch.setattr(loop, "derive_seed", lambda seed, epoch, step: clock.step() or real(seed, epoch, step))
        return clock
    return make


class LearningRates(StepHooks):
    """Records the learning rate of every step the run takes."""

    def __init__(self):
        self.seen = []

    def start(self, run):
        self.optimizer = run.optimizer

    def batch(self, x, y, step):
        self.seen.append(self.optimizer.param_groups[0]["lr"])
        return x, y


def budget_config(tiny_config, **changes):
    # 2,000 images in batches of 100: 20 steps an epoch
    return tiny_config(budget="10s", optimizer="sgd", lr=0.1, scheduler="onecycle", warmup=0.25, **changes)


def test_the_schedule_is_laid_out_over_the_steps_that_fit(tmp_path, fmnist, tiny_config, fake_clock):
    clock = fake_clock(lambda n: 0.125)
    rates = LearningRates()
    run = train(budget_config(tiny_config), root=tmp_path, data=fmnist, show_progress=False, hooks=rates,
                clock=clock)
    assert clock.steps == PROBED + 77  # 9.7 s of the 10 s budget at 0.125 s a step
    assert json.loads(run.budget_path.read_text())["steps"] == 77
    assert json.loads(run.config_path.read_text())["epochs"] == 77 / 20
    # one-cycle over exactly those 77 steps: its warm-up peaks a quarter of the way, then it decays to nothing
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=0.1, total_steps=77, pct_start=0.25)
    expected = []
    for _ in range(77):
        expected.append(reference.param_groups[0]["lr"])
        reference.step()
        schedule.step()
    assert rates.seen == pytest.approx(expected, rel=1e-12)
    assert abs(rates.seen.index(max(rates.seen)) - 0.25 * 77) < 1 and rates.seen[-1] < 1e-5
    assert load_checkpoint(run.last_checkpoint)["scheduler"]["total_steps"] == 77
    metrics = run.metrics()
    assert metrics["budget"] == {"budget": "10s", "budget_seconds": 10.0, "predicted_seconds": 9.625,
                                 "actual_seconds": 9.625, "steps_planned": 77, "steps_taken": 77,
                                 "stopped_at_budget": False}
    assert metrics["train_seconds"] == 9.625 and metrics["epochs"] == 3.85 and not metrics["stopped_early"]


def test_a_run_that_slows_down_stops_at_its_budget_and_finishes(tmp_path, fmnist, tiny_config, fake_clock, capsys):
    clock = fake_clock(lambda n: 0.125 if n < PROBED + 40 else 0.5)
    run = train(budget_config(tiny_config), root=tmp_path, data=fmnist, show_progress=False, clock=clock)
    metrics = run.metrics()
    assert run.finished and run.model_path.is_file() and metrics["n"] == 1000
    assert metrics["budget"]["stopped_at_budget"] and metrics["stopped_early"]
    assert metrics["budget"]["steps_taken"] == 50 and metrics["epochs"] == 2.5  # 40 steps, then ten slow ones
    assert metrics["train_seconds"] == metrics["budget"]["actual_seconds"] == 10.0
    assert [row["epoch"] for row in run.history()] == [1, 2, 3]
    assert "budget 10s: stopped at its budget after 50 of 77 steps" in capsys.readouterr().err


def test_a_budget_too_short_is_refused_before_any_run_is_replaced(tmp_path, fmnist, tiny_config, fake_clock):
    kept = train(tiny_config(epochs=1), root=tmp_path, data=fmnist, show_progress=False)
    clock = fake_clock(lambda n: 1.0)
    with pytest.raises(ConfigError, match="a budget of 0.5s is too short to train one step of ann here .* give at "
                                          "least 1.1s"):
        train(tiny_config(budget="0.5s"), root=tmp_path, data=fmnist, overwrite=True, show_progress=False,
              clock=clock)
    assert open_run("tiny", tmp_path).finished and kept.metrics()["epochs"] == 1
    assert not kept.budget_path.exists()


def weights(run):
    return load_checkpoint(run.model_path)["model"]


def test_a_budget_run_resumes_on_its_plan(tmp_path, fmnist, tiny_config, fake_clock, ctrl_c_at):
    """Interrupted and resumed, a budget run keeps the steps it fitted (no second probe) and ends with the weights
    of the uninterrupted run."""
    clock = fake_clock(lambda n: 0.125)
    straight = train(budget_config(tiny_config, name="straight"), root=tmp_path, data=fmnist, show_progress=False,
                     clock=clock)
    clock = fake_clock(lambda n: 0.125)
    ctrl_c_at(1, 5)
    with pytest.raises(Interrupted):
        train(budget_config(tiny_config, name="broken"), root=tmp_path, data=fmnist, show_progress=False,
              clock=clock)
    broken = open_run("broken", tmp_path)
    plan = broken.budget_path.read_text()
    resumed = train(None, root=tmp_path, resume=broken.path, data=fmnist, show_progress=False, clock=clock)
    assert clock.steps == PROBED + 77  # one probe, then the 77 steps in two parts
    assert resumed.budget_path.read_text() == plan
    assert all(torch.equal(a, b) for a, b in zip(weights(straight).values(), weights(resumed).values()))
    assert resumed.metrics()["budget"] == straight.metrics()["budget"]


def test_a_budget_run_cannot_change_its_length_on_resume(tmp_path, fmnist, tiny_config, fake_clock, ctrl_c_at):
    clock = fake_clock(lambda n: 0.125)
    ctrl_c_at(1, 3)  # in the run's second epoch (the probe takes steps of the first)
    with pytest.raises(Interrupted):
        train(budget_config(tiny_config), root=tmp_path, data=fmnist, show_progress=False, clock=clock)
    run = open_run("tiny", tmp_path)
    with pytest.raises(ConfigError, match="--epochs cannot change on resume: run tiny trains the 3.85 epochs its "
                                          "budget of 10s bought"):
        train(None, root=tmp_path, resume=run.path, changes={"epochs": 5}, show_progress=False)
    with pytest.raises(ConfigError, match=r"cannot change --budget \(run: '10s', given: '20s'\)"):
        train(None, root=tmp_path, resume=run.path, changes={"budget": "20s"}, show_progress=False)


# --- the command line ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["train", "--model", "ann", "--budget", "30s", "--epochs", "3"], "--budget replaces --epochs"),
    (["train", "--recipe", "fast", "--epochs", "2", "--budget", "1m"], "--budget replaces --epochs"),
    (["train", "--model", "ann", "--budget", "30"], "duration '30' has no unit; give a unit: 30s, 5m or 1h"),
    (["train", "--model", "ann", "--budget", "soon"], "duration 'soon' is not a duration"),
    (["study", "--preset", "test", "--budget", "30"], "duration '30' has no unit; give a unit: 30s, 5m or 1h"),
    (["study", "--preset", "test", "--budget", "0m"], "duration '0m' must be longer than 0 s"),
])
def test_budget_usage_errors_are_one_line_with_exit_2(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*args, "--runs-dir", str(out)] + (["--out", str(out)] if args[0] == "study" else [])) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_epochs_in_a_toml_file_and_a_budget_flag_are_a_usage_error(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text("model = 'ann'\nepochs = 4\n")
    assert main(["train", "-c", str(toml), "--budget", "1m", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "--budget replaces --epochs" in capsys.readouterr().err


def test_a_budget_runs_command_gives_the_budget_not_the_epochs_it_bought():
    from fashionlab.config import RunConfig, train_command
    from fashionlab.recipes import recipe_settings

    config = RunConfig.from_dict({**recipe_settings("fast"), "budget": "30s", "epochs": 1.37})
    assert train_command(config) == "fashionlab train --recipe fast --budget 30s"
