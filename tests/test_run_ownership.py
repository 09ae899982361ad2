"""A run belongs to the process that trains it: a second process cannot resume, overwrite or re-create it; a
process that dies leaves it interrupted and resumable; --overwrite replaces a run only once the new one can train;
--resume changes only the settings it documents (runs.RESUMABLE)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fashionlab.cli import main
from fashionlab.errors import RunBusy
from fashionlab.runs import RESUMABLE, open_run
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.loop import Interrupted, train

TINY = ["--model", "ann", "--train-limit", "1000", "--test-limit", "200", "--val-size", "200", "--batch-size", "50",
        "--threads", "1", "--precision", "fp32", "--no-progress"]


def start_training(runs, name, epochs, *extra):
    """`fashionlab train` in a process of its own, returned once it has saved its first epoch's checkpoint."""
    cmd = [sys.executable, "-m", "fashionlab", "train", *TINY, "--epochs", str(epochs), "--name", name,
           "--runs-dir", str(runs), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    last = runs / name / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or not last.exists():
        proc.kill()
        pytest.fail(f"training did not reach its first checkpoint: {proc.communicate()}")
    return proc


def one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


def test_a_run_in_training_is_refused_to_a_second_process_and_finishes_intact(tmp_path, capsys):
    runs = tmp_path / "runs"
    first = start_training(runs, "a", 4)
    # stopped, the first process still holds its lock: the refusals below cannot race its end
    first.send_signal(signal.SIGSTOP)
    try:
        run = open_run("a", runs)
        assert run.state == "running" and run.lock_holder() == first.pid
        resume = subprocess.run([sys.executable, "-m", "fashionlab", "train", "--resume", str(run.path)],
                                capture_output=True, text=True, timeout=120)
        assert resume.returncode == 1, resume.stderr
        assert f"process {first.pid}" in resume.stderr and one_line(resume.stderr)
        assert "--overwrite" not in resume.stderr
        for again in (["--overwrite", "--lr", "0.5"], []):
            code = main(["train", *TINY, "--epochs", "1", "--name", "a", "--runs-dir", str(runs), *again])
            err = capsys.readouterr().err
            assert code == 1 and f"process {first.pid}" in err and one_line(err) and "--overwrite" not in err
        assert main(["runs", "--runs-dir", str(runs)]) == 0
        assert f"running (PID {first.pid})" in capsys.readouterr().out
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert out.strip() == f"finished {run.path}"
    # the run holds the first process's own settings, model and results, nothing of the refused commands
    assert run.finished and run.lock_holder() is None
    config = json.loads(run.config_path.read_text())
    assert (config["epochs"], config["lr"]) == (4, 0.001)
    assert len(run.history()) == 4 and run.metrics()["epochs"] == 4 and run.metrics()["model"] == "ann"
    assert load_checkpoint(run.model_path)["config"]["lr"] == 0.001
    assert sorted(p.name for p in runs.iterdir()) == ["a"]


def test_a_killed_process_leaves_its_run_interrupted_and_resumable(tmp_path, capsys):
    runs = tmp_path / "runs"
    proc = start_training(runs, "k", 3)
    proc.kill()  # SIGKILL: nothing of the process runs, its status still says "running"
    proc.communicate(timeout=60)
    run = open_run("k", runs)
    assert run.status()["state"] == "running"
    assert run.state == "interrupted" and run.lock_holder() is None
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    assert "interrupted" in capsys.readouterr().out
    assert main(["train", *TINY, "--name", "k", "--runs-dir", str(runs)]) == 2
    assert "already exists (state: interrupted); continue it with 'fashionlab train --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run.path), "--no-progress"]) == 0
    assert run.finished and len(run.history()) == 3


def test_a_lock_is_held_once(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    run = open_run(run_dir)
    with run.lock():
        assert run.lock_holder() == os.getpid()
        with pytest.raises(RunBusy, match=f"process {os.getpid()}"):
            run.lock()
    assert run.lock_holder() is None


def finished_run(tmp_path, fmnist, tiny_config, name="old"):
    return train(tiny_config(name=name, epochs=1, train_limit=500, test_limit=200, val_size=200, threads=1),
                 root=tmp_path, data=fmnist, show_progress=False)


@pytest.mark.parametrize("flags, code, message", [
    (["--data-dir", "nowhere"], 1, "lacks train-images"),
    (["--init-from", "no-such-run"], 2, "no run 'no-such-run'"),
], ids=["bad-data-dir", "missing-init-from"])
def test_overwrite_that_cannot_train_keeps_the_old_run(tmp_path, fmnist, tiny_config, capsys, monkeypatch, flags,
                                                       code, message):
    old = finished_run(tmp_path, fmnist, tiny_config)
    before = {p.name: p.read_bytes() for p in old.path.iterdir() if p.is_file()}
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--epochs", "1", "--name", "old", "--overwrite", "--runs-dir", str(tmp_path),
                 *flags]) == code
    err = capsys.readouterr().err
    assert message in err and one_line(err)
    assert old.finished and {p.name: p.read_bytes() for p in old.path.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # no half-built run beside it


def test_a_data_error_leaves_no_run_behind(tmp_path, capsys):
    code = main(["train", *TINY, "--name", "new", "--runs-dir", str(tmp_path / "runs"),
                 "--data-dir", str(tmp_path / "nowhere")])
    assert code == 1 and "lacks" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_overwrite_replaces_a_finished_run(tmp_path, fmnist, tiny_config):
    finished_run(tmp_path, fmnist, tiny_config)
    assert main(["train", *TINY, "--epochs", "1", "--lr", "0.002", "--name", "old", "--overwrite",
                 "--runs-dir", str(tmp_path)]) == 0
    run = open_run("old", tmp_path)
    assert run.finished and run.config().lr == 0.002 and run.config().train_limit == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


@pytest.fixture
def interrupted(tmp_path, fmnist, tiny_config, ctrl_c_at):
    """An interrupted 2-epoch run stopped in its first epoch; `interrupted(**settings)` makes it."""
    def make(**settings):
        ctrl_c_at(0, 3)
        with pytest.raises(Interrupted):
            train(tiny_config(name="r", train_limit=500, test_limit=200, val_size=200, threads=1, **settings),
                  root=tmp_path, data=fmnist, show_progress=False)
        return open_run("r", tmp_path)
    return make


@pytest.mark.parametrize("flags, message", [
    (["--lr", "0.5", "--batch-size", "10"], "cannot change --batch-size (run: 100, given: 10), --lr (run: 0.001, "
                                            "given: 0.5)"),
    (["--name", "other"], "cannot change --name"),
    (["--model", "ann_bn"], "cannot change --model"),
    (["--epochs", "1"], "would shorten run r (2 epochs)"),
    (["--overwrite"], "give one of them"),
])
def test_resume_refuses_settings_it_cannot_change(interrupted, capsys, flags, message):
    run = interrupted()
    before = run.config_path.read_text()
    assert main(["train", "--resume", str(run.path), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and one_line(err)
    assert run.config_path.read_text() == before and run.state == "interrupted"


def test_resume_refuses_longer_epochs_under_a_schedule(interrupted, capsys):
    run = interrupted(scheduler="onecycle")
    assert main(["train", "--resume", str(run.path), "--epochs", "3"]) == 2
    assert "onecycle learning-rate schedule was laid out over its 2 epochs" in capsys.readouterr().err


def test_resume_trains_longer_and_takes_its_own_values_again(interrupted, tmp_path):
    run = interrupted()
    toml = tmp_path / "same.toml"
    toml.write_text('model = "ann"\nlr = 0.001\n')  # the run's own values: no change
    assert main(["train", "--resume", str(run.path), "-c", str(toml), "--epochs", "3", "--threads", "1",
                 "--no-progress"]) == 0
    assert run.finished and len(run.history()) == 3 and run.metrics()["epochs"] == 3
    assert run.config().epochs == 3
    assert set(RESUMABLE) == {"epochs", "threads", "device", "data_dir"}
