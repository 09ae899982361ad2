"""Optuna sweeps on SQLite: interrupted and resumed into one study, trials as run dirs, the report page."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from fashionlab.cli import main
from fashionlab.errors import ConfigError
from fashionlab.runs import Run
from fashionlab.sweep.report import write_report
from fashionlab.sweep.search import load_space, objective_value, open_study, retrain_best, run_sweep

# small and slow enough that an interrupt lands inside a trial's training
SPACE = """
[fixed]
train_limit = {limit}
test_limit = 200
threads = 1
precision = "fp32"

[space.model]
choices = ["ann", "ann_bn"]

[space.lr]
low = 3e-4
high = 3e-3
log = true

[space.batch_size]
choices = [50, 100]

[space.epochs]
low = {epochs_low}
high = {epochs_high}

[sweep]
pruner = "{pruner}"
seed = 0
"""


def space_file(tmp_path, limit=500, epochs_low=1, epochs_high=2, pruner="none"):
    path = tmp_path / "space.toml"
    path.write_text(SPACE.format(limit=limit, epochs_low=epochs_low, epochs_high=epochs_high, pruner=pruner))
    return path


def sweep_cmd(tmp_path, name, trials, space, *extra):
    return [sys.executable, "-m", "fashionlab", "sweep", "--name", name, "--trials", str(trials), "--space",
            str(space), "--runs-dir", str(tmp_path / "runs"), "--no-progress", *extra]


def check_trials_match_runs(study, trial_root):
    """Every finished trial is one finished run directory whose validation accuracy is the trial's value."""
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # numbers unique, none missing
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    runs = {p.name for p in trial_root.iterdir()}
    assert runs == {f"t{t.number:04d}" for t in trials}  # one run directory per trial, no strays
    for t in trials:
        if t.state == TrialState.COMPLETE:
            run = Run(trial_root / f"t{t.number:04d}")
            assert run.finished and objective_value(run) == t.value


def test_sweep_interrupted_and_resumed_is_one_study(tmp_path, fmnist):
    space = space_file(tmp_path, limit=2000, epochs_low=4, epochs_high=6)
    storage = f"sqlite:///{tmp_path / 'runs' / 'sweeps' / 'resume.db'}"
    proc = subprocess.Popen(sweep_cmd(tmp_path, "resume", 20, space), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    # interrupt once trial 0 has finished and trial 1 is training (its first epoch is in history.csv)
    second = tmp_path / "runs" / "sweeps" / "resume" / "t0001"
    deadline = time.time() + 180
    while not ((second / "history.csv").exists() and not (second / "metrics.json").exists()):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"never saw trial 1 training: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]

    study = optuna.load_study(study_name="resume", storage=storage)
    first = study.get_trials(deepcopy=False)
    done_first = [t for t in first if t.state == TrialState.COMPLETE]
    interrupted = [t for t in first if t.state == TrialState.FAIL]
    assert done_first and len(interrupted) == 1 and interrupted[0].user_attrs["interrupted"]
    assert (tmp_path / "runs" / "sweeps" / "resume" / f"t{interrupted[0].number:04d}" / "checkpoints").is_dir()

    target = len(done_first) + 2
    resumed = subprocess.run(sweep_cmd(tmp_path, "resume", target, space), capture_output=True, text=True,
                             timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "best trial" in resumed.stdout

    study = optuna.load_study(study_name="resume", storage=storage)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == target
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both parts' trials are in this one study
    # the resumed sweep first re-ran the interrupted trial's parameters
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == interrupted[0].number)
    assert retry.params == interrupted[0].params and retry.state == TrialState.COMPLETE
    check_trials_match_runs(study, tmp_path / "runs" / "sweeps" / "resume")

    # asking again for no more trials than it has runs nothing
    again = subprocess.run(sweep_cmd(tmp_path, "resume", target, space), capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and "already has" in again.stderr
    assert len(optuna.load_study(study_name="resume", storage=storage).trials) == len(trials)


def test_pruned_trials_stop_early_and_report_and_retrain(tmp_path, fmnist, page):
    space = space_file(tmp_path, limit=500, epochs_low=3, epochs_high=3, pruner="median")
    study = run_sweep("prune", trials=7, space=space, root=tmp_path / "runs", data=fmnist, show_progress=False)
    trials = study.get_trials(deepcopy=False)
    check_trials_match_runs(study, tmp_path / "runs" / "sweeps" / "prune")
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.PRUNED}
    for t in trials:
        run = Run(tmp_path / "runs" / "sweeps" / "prune" / f"t{t.number:04d}")
        assert list(t.intermediate_values) == [row["epoch"] for row in run.history()]
        if t.state == TrialState.PRUNED:  # stopped at the epoch Optuna pruned it, and finished cleanly
            assert run.finished and run.metrics()["stopped_early"] and len(run.history()) < 3

    best = retrain_best(study, root=tmp_path / "runs", data=fmnist, show_progress=False, train_limit=1000,
                        test_limit=500)
    config = best.config()
    assert config.val_size == 0 and best.finished and best.metrics()["n"] == 500
    assert {k: getattr(config, k) for k in study.best_params} == study.best_params

    out = write_report(study, root=tmp_path / "runs")
    page.goto(out.as_uri())
    page.wait_for_selector(".js-plotly-plot")
    assert page.locator(".js-plotly-plot").count() == 3  # history, importances, parallel coordinates
    text = page.inner_text("body")
    assert f"trial {study.best_trial.number}, val accuracy {study.best_value:.4f}" in text
    assert f"test accuracy {best.metrics()['accuracy']:.4f}" in text
    assert not page.problems
    html = out.read_text()
    assert "<script src=" not in html and "plotly.js v" in html  # self-contained: plotly.js is inline


def test_space_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[space.learning_rate]\nlow = 1e-4\nhigh = 1e-2\n")
    with pytest.raises(ConfigError, match="'learning_rate' is not a run setting"):
        load_space(bad)
    bad.write_text("[space.lr]\nlow = 1e-4\n")
    with pytest.raises(ConfigError, match="choices"):
        load_space(bad)
    bad.write_text("[fixed]\nbatch_size = 0\n[space.lr]\nlow = 1e-4\nhigh = 1e-2\n")
    assert main(["sweep", "--name", "x", "--space", str(bad), "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("fashionlab: error: batch_size must be at least 1")
    assert main(["sweep-report", "nothing", "--runs-dir", str(tmp_path)]) == 2
    assert "no sweep 'nothing'" in capsys.readouterr().err
    assert main(["sweep", "--name", "x", "--storage", "nosuchdb://x", "--runs-dir", str(tmp_path)]) == 2
    assert "cannot use storage" in capsys.readouterr().err
    assert load_space(None)["space"]["model"]["choices"] == ["ann", "ann_dropout", "ann_batchnorm", "ann_bn"]


def test_report_of_a_study_without_completed_trials(tmp_path, page):
    study = open_study("empty", root=tmp_path)
    out = write_report(study, root=tmp_path)
    page.goto(out.as_uri())
    assert "No completed trial yet" in page.inner_text("body") and not page.problems
