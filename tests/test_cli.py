"""The command line: one clear line and exit code 2 for bad input, nothing left behind."""

import os
import subprocess
import sys
import time

import pytest

from fashionlab.cli import main
from fashionlab.runs import open_run


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet9000"], "unknown model 'resnet9000'; choose from ann"),
    (["--optimizer", "adamax"], "unknown optimizer 'adamax'; choose from adam, adamw, rmsprop, sgd, adagrad, muon"),
    (["--lr", "0"], "lr must be greater than 0"),
    (["--lr=-1e-3"], "lr must be greater than 0"),
    (["--epochs", "0"], "epochs must be greater than 0"),
    (["--batch-size", "50001"], "batch_size 50001 is larger than the 50000 training images"),
    (["--train-limit", "100", "--batch-size", "200"], "larger than the 100 training images"),
    (["--augment", "blur"], "unknown augmentation 'blur'"),
    (["--patience", "3", "--val-size", "0"], "needs a validation split"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    code = main(["train", "--runs-dir", str(tmp_path), "--name", "x", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # rejected before anything ran


def test_toml_config_with_flag_override(tmp_path, capsys, fmnist):
    config = tmp_path / "run.toml"
    config.write_text('model = "ann_bn"\nepochs = 5\ntrain_limit = 1000\ntest_limit = 500\nprecision = "fp32"\n'
                      '[augment]\nflip = {}\ncrop = {padding = 2}\n')
    assert main(["train", "-c", str(config), "--epochs", "1", "--name", "t", "--runs-dir", str(tmp_path)]) == 0
    saved = open_run("t", tmp_path).config()
    assert (saved.model, saved.epochs, saved.augment) == ("ann_bn", 1, {"flip": {}, "crop": {"padding": 2}})
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert "| t " in capsys.readouterr().out
    # a second run of the same name is refused, not overwritten
    assert main(["train", "-c", str(config), "--name", "t", "--runs-dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["evaluate", "t", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "Ankle Boot" in out


def test_bad_toml_and_unknown_setting(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    assert main(["train", "-c", str(bad), "--runs-dir", str(tmp_path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    bad.write_text("epoch = 3")
    assert main(["train", "-c", str(bad), "--runs-dir", str(tmp_path)]) == 2
    assert "unknown setting(s) epoch" in capsys.readouterr().err


def test_missing_data_dir_is_one_line(tmp_path, capsys):
    code = main(["train", "--data-dir", str(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--name", "d"])
    err = capsys.readouterr().err
    assert code == 1 and "lacks train-images-idx3-ubyte" in err and err.count("\n") == 1


def test_evaluate_unknown_or_unfinished_run(tmp_path, capsys):
    assert main(["evaluate", "nope", "--runs-dir", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "many"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--help" in err


def test_models_lists_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "1,077,834" in out and "405,044" in out


def test_ctrl_c_saves_and_resume_finishes(tmp_path):
    """A real SIGINT to the command: exit 130, state 'interrupted', then --resume finishes the run."""
    cmd = [sys.executable, "-m", "fashionlab", "train", "--model", "ann", "--epochs", "12", "--train-limit",
           "10000", "--test-limit", "500", "--precision", "fp32", "--name", "c", "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    last = tmp_path / "c" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "fashionlab train --resume" in err and "Traceback" not in err
    run = open_run("c", tmp_path)
    assert run.state == "interrupted" and not run.finished
    assert main(["train", "--resume", str(run.path), "--no-progress"]) == 0
    assert run.finished and len(run.history()) == 12
