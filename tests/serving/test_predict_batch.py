"""`fashionlab predict` on a folder where some files are bad: every good file is predicted, every bad one gets its
own error, and the exit status says something failed. Special files are refused without hanging."""

import csv
import io
import json
import os
import threading

import pytest

from fashionlab.cli import main
from fashionlab.serving.preprocess import ImageError, prepare_file

BAD = {"cut.jpg": "truncated or damaged", "notes.png": "not a PNG, JPEG", "empty.gif": "is empty"}


@pytest.fixture
def mixed_folder(tmp_path, photos):
    folder = tmp_path / "shop"
    folder.mkdir()
    good = photos(range(12))
    for i, data in enumerate(good):
        (folder / f"good{i:02d}.jpg").write_bytes(data)
    (folder / "cut.jpg").write_bytes(good[0][: len(good[0]) // 3])
    (folder / "notes.png").write_text("not an image")
    (folder / "empty.gif").write_bytes(b"")
    return folder


def _args(served_run, *more):
    root, name = served_run
    return ["--run", name, "--runs-dir", str(root), *more]


def test_bad_files_get_their_own_errors_and_good_files_their_predictions(served_run, mixed_folder, capsys):
    assert main(["predict", str(mixed_folder), *_args(served_run, "--format", "json")]) == 1
    captured = capsys.readouterr()
    results = {r["file"].rsplit("/", 1)[1]: r for r in json.loads(captured.out)}
    assert len(results) == 15
    for name, reason in BAD.items():
        assert results[name]["top"] == [] and name in results[name]["error"] and reason in results[name]["error"]
    good = [r for n, r in results.items() if n.startswith("good")]
    assert len(good) == 12 and all(r["error"] is None and len(r["top"]) == 3 for r in good)
    lines = captured.err.splitlines()
    assert len(lines) == 3 and all(line.startswith("fashionlab: error: ") for line in lines)
    for name, reason in BAD.items():
        assert sum(name in line and reason in line for line in lines) == 1, (name, lines)


def test_csv_and_table_show_the_errors(served_run, mixed_folder, capsys):
    assert main(["predict", str(mixed_folder), *_args(served_run, "--format", "csv", "--top-k", "1")]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    errors = {r["file"].rsplit("/", 1)[1]: r["error"] for r in rows if r["error"]}
    assert errors.keys() == BAD.keys()
    assert sum(1 for r in rows if r["label"] and not r["error"]) == 12
    assert main(["predict", str(mixed_folder), *_args(served_run)]) == 1
    table = capsys.readouterr().out
    assert table.count("error: ") == 3 and table.count("good") == 12


def test_a_fifo_is_refused_without_hanging(served_run, tmp_path, photos, capsys):
    (tmp_path / "ok.jpg").write_bytes(photos([0])[0])
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(ImageError) as err:
        prepare_file(fifo, str(fifo))
    assert err.value.code == "not_a_file" and "FIFO" in str(err.value)
    codes = []
    worker = threading.Thread(target=lambda: codes.append(
        main(["predict", str(fifo), str(tmp_path / "ok.jpg"), *_args(served_run, "--format", "json")])), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "predict hung on a FIFO"
    captured = capsys.readouterr()
    assert codes == [1]
    assert captured.err.count("\n") == 1 and "pipe.jpg is a FIFO" in captured.err
    results = json.loads(captured.out)
    assert results[0]["error"] and results[1]["error"] is None and results[1]["top"]


def test_unreadable_and_missing_files_name_the_file_and_the_problem(served_run, tmp_path, photos, capsys,
                                                                     monkeypatch):
    (tmp_path / "ok.jpg").write_bytes(photos([0])[0])
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(photos([1])[0])
    real_open = os.open

    def no_permission(path, *args, **kwargs):  # chmod 000 does not stop root, so the kernel's answer is faked
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_permission)
    paths = [str(tmp_path / "ok.jpg"), str(locked), str(tmp_path / "gone.jpg")]
    assert main(["predict", *paths, *_args(served_run, "--format", "json")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert "locked.jpg" in lines[0] and "permission denied" in lines[0]
    assert "gone.jpg does not exist" in lines[1]
    results = json.loads(captured.out)
    assert [bool(r["error"]) for r in results] == [False, True, True] and results[0]["top"]
