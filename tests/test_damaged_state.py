"""Damaged or unreadable state is named or repaired, never fatal to everything: run folders with bad files, a bad
decoded-data cache, data files the OS will not let us read, and output to a reader that went away."""

import errno
import gzip
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fashionlab.artifacts import best_run
from fashionlab.cli import main
from fashionlab.data import dataset
from fashionlab.data.dataset import FILES, load_fashion_mnist
from fashionlab.errors import DamagedRun, DataError
from fashionlab.runs import open_run
from fashionlab.training.loop import train

TINY = ["--model", "ann", "--train-limit", "1000", "--test-limit", "200", "--val-size", "200", "--batch-size", "50",
        "--threads", "1", "--precision", "fp32", "--no-progress"]

# run name -> (file, its damaged content, what `fashionlab runs` says)
DAMAGES = {
    "config-not-json": ("config.json", b'{"model": "ann",', "damaged: config.json: not valid JSON"),
    "config-binary": ("config.json", b"\x80\x93\xff\x00\x01", "damaged: config.json: not UTF-8 text"),
    "config-newer": ("config.json", None, "damaged: config.json: unknown setting(s) fancy_new_setting"),
    "metrics-not-json": ("metrics.json", b"[1, 2", "damaged: metrics.json: not valid JSON"),
    "metrics-binary": ("metrics.json", b"\xff\xfe\x00garbage", "damaged: metrics.json: not UTF-8 text"),
    "metrics-no-accuracy": ("metrics.json", b'{"model": "ann"}', "damaged: metrics.json: no 'epochs'"),
    "status-binary": ("status.json", b"\x00\x9f\x92", "damaged: status.json: not UTF-8 text"),
    "history-binary": ("history.csv", b"\xff\x00\xfe", None),  # a finished run's table row does not read it
}


@pytest.fixture
def runs_with_damage(tmp_path, fmnist, tiny_config):
    good = train(tiny_config(name="good", epochs=1, train_limit=500, test_limit=200, val_size=200, threads=1),
                 root=tmp_path, data=fmnist, show_progress=False)
    for name, (file, content, _) in DAMAGES.items():
        shutil.copytree(good.path, tmp_path / name)
        # each damaged copy would be the best run by validation accuracy, were it read
        open_run(tmp_path / name).write_history([{**row, "val_accuracy": 0.999} for row in good.history()])
        target = tmp_path / name / file
        if content is None:  # a setting this version does not know, as a newer fashionlab may write
            content = json.dumps({**json.loads(target.read_text()), "fancy_new_setting": 1}).encode()
        target.write_bytes(content)
    return tmp_path


def test_runs_lists_damaged_runs_and_goes_on(runs_with_damage, capsys):
    assert main(["runs", "--runs-dir", str(runs_with_damage)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "Traceback" not in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()[2:]}
    assert "finished" in rows["good"]
    for name, (_, _, shown) in DAMAGES.items():
        if shown:
            assert shown in rows[name], rows[name]


def test_best_run_skips_damaged_runs(runs_with_damage):
    assert best_run(runs_with_damage).name == "good"


def test_a_damaged_run_is_one_line_where_it_is_named(runs_with_damage, capsys):
    with pytest.raises(DamagedRun, match="config.json cannot be read: not valid JSON"):
        open_run("config-not-json", runs_with_damage).config()
    assert main(["evaluate", "metrics-binary", "--runs-dir", str(runs_with_damage)]) == 1
    err = capsys.readouterr().err
    assert "metrics.json cannot be read: not UTF-8 text" in err and err.count("\n") == 1


def test_damaged_cache_is_rebuilt_with_a_notice(fmnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_fashion_mnist(fmnist.source)
    (cached,) = (tmp_path / "fashionlab").glob("decoded-*.npz")
    whole = cached.read_bytes()
    capsys.readouterr()
    small = tmp_path / "small.npz"
    np.savez(small, train_images=np.zeros((2, 28, 28), np.uint8), train_labels=np.zeros(2, np.uint8),
             test_images=np.zeros((2, 28, 28), np.uint8), test_labels=np.zeros(2, np.uint8))
    for damaged in (b"PK\x03\x04" + b"\x00" * 100,  # a zip header and nothing behind it: BadZipFile
                    whole[: len(whole) // 2],        # cut off part-way
                    small.read_bytes()):             # arrays of the wrong shape
        cached.write_bytes(damaged)
        again = load_fashion_mnist(fmnist.source)
        err = capsys.readouterr().err
        assert f"the decoded-data cache {cached} is damaged" in err and "rebuilding it" in err
        assert err.count("\n") == 1
        assert (again.test_labels == first.test_labels).all() and (again.train_images == first.train_images).all()
        with np.load(cached) as npz:  # rebuilt in place, and read without a notice from now on
            assert (npz["test_labels"] == first.test_labels).all()
        load_fashion_mnist(fmnist.source)
        assert capsys.readouterr().err == ""


def linked_data(tmp_path, fmnist):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in FILES:
        source = dataset._file_in(fmnist.source, name)
        (folder / source.name).symlink_to(source)
    return folder


def test_permission_denied_data_file_is_one_line(fmnist, tmp_path, monkeypatch, capsys):
    """Tests run as root, whom permissions do not stop, so the refusal is simulated where the file is read."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = linked_data(tmp_path, fmnist)
    denied = folder / "train-labels-idx1-ubyte.gz"
    real_read = pathlib.Path.read_bytes

    def read_bytes(self):
        if self == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    code = main(["train", *TINY, "--name", "p", "--data-dir", str(folder), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot read {denied}: permission denied" in err
    assert not (tmp_path / "runs" / "p").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_data_file_is_one_line(fmnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = linked_data(tmp_path, fmnist)
    denied = folder / "t10k-labels-idx1-ubyte.gz"
    denied.unlink()
    denied.write_bytes(gzip.compress(b"x"))
    denied.chmod(0)
    with pytest.raises(DataError, match=f"cannot read {denied}: permission denied.*mode ----------"):
        load_fashion_mnist(folder)


def test_training_goes_on_when_the_reader_of_its_output_leaves(tmp_path):
    """`fashionlab train ... 2>&1 | head -1`: the log lines after the first meet a closed pipe."""
    cmd = [sys.executable, "-m", "fashionlab", "train", *TINY, "--epochs", "6", "--name", "piped",
           "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    assert proc.wait(timeout=300) == 0
    assert first.startswith(b"epoch=1 ")
    run = open_run("piped", tmp_path)
    assert run.finished and len(run.history()) == 6


def test_a_listing_stops_quietly_when_its_reader_leaves(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "fashionlab", "runs", "--runs-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command prints
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert err == b""
