"""`fashionlab export` never destroys a run: a run's own files are refused, an existing file needs --force."""

import shutil

import pytest

from fashionlab.cli import main


@pytest.fixture
def run_copy(served_run, tmp_path):
    """(runs root, run directory) of a private copy of the served run, free to be written into."""
    root, name = served_run
    shutil.copytree(root / name, tmp_path / "runs" / name)
    return tmp_path / "runs", tmp_path / "runs" / name


def _export(root, run_dir, *more):
    return main(["export", run_dir.name, "--runs-dir", str(root), *more])


@pytest.mark.parametrize("target", ["model.pt", "config.json", "metrics.json", "status.json", "history.csv",
                                    "checkpoints/last.pt", "other.onnx", "checkpoints/new/model.onnx"])
def test_a_runs_own_files_are_refused_even_with_force(run_copy, target, capsys):
    root, run_dir = run_copy
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert _export(root, run_dir, "--out", str(run_dir / target), "--force") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inside run" in err and "must not replace" in err, err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_link_to_a_runs_file_is_refused(run_copy, tmp_path, capsys):
    root, run_dir = run_copy
    link = tmp_path / "innocent.onnx"
    link.symlink_to(run_dir / "model.pt")
    assert _export(root, run_dir, "--out", str(link), "--force") == 2
    assert "inside run" in capsys.readouterr().err


def test_existing_files_need_force(run_copy, tmp_path, capsys):
    root, run_dir = run_copy
    assert _export(root, run_dir) == 0  # the default, RUN/model.onnx, is the one file of a run it may write
    default = run_dir / "model.onnx"
    assert default.is_file() and str(default) in capsys.readouterr().out
    assert _export(root, run_dir) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and err.count("\n") == 1
    other = tmp_path / "mine.onnx"
    other.write_bytes(b"keep me")
    assert _export(root, run_dir, "--out", str(other)) == 2
    assert "pass --force" in capsys.readouterr().err and other.read_bytes() == b"keep me"
    assert _export(root, run_dir, "--out", str(other), "--force") == 0
    assert other.read_bytes() == default.read_bytes()
    assert _export(root, run_dir, "--out", str(tmp_path)) == 2
    assert "is a directory" in capsys.readouterr().err
