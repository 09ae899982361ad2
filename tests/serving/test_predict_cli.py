"""`fashionlab predict`: formats, --show-input, the default run (chosen by validation accuracy), bad files."""

import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from fashionlab.artifacts import best_run
from fashionlab.cli import main
from fashionlab.data import CLASSES
from fashionlab.runs import open_run


@pytest.fixture
def photo_dir(tmp_path, photos, fmnist):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for i, data in enumerate(photos(range(6))):
        (folder / ("more" if i % 2 else ".") / f"item{i}.jpg").write_bytes(data)
    (folder / "readme.txt").write_text("not an image, and not picked up from a folder")
    return folder


def test_predict_formats_and_show_input(served_run, photo_dir, tmp_path, capsys):
    root, name = served_run
    args = ["predict", str(photo_dir), "--run", name, "--runs-dir", str(root)]
    assert main([*args, "--format", "json", "--top-k", "4", "--show-input", str(tmp_path / "seen")]) == 0
    results = json.loads(capsys.readouterr().out)
    assert sorted(r["file"].rsplit("/", 1)[1] for r in results) == [f"item{i}.jpg" for i in range(6)]
    for r in results:
        probs = [t["probability"] for t in r["top"]]
        assert len(probs) == 4 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(t["label"] in CLASSES for t in r["top"]) and r["negated"]
    seen = sorted(p.name for p in (tmp_path / "seen").iterdir())
    assert seen == [f"item{i}.png" for i in range(6)]
    assert Image.open(tmp_path / "seen" / "item0.png").size == (28, 28)

    assert main([*args, "--format", "csv", "--top-k", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {(r["file"], r["label"]) for r in rows} == {(r["file"], r["top"][0]["label"]) for r in results}

    assert main([*args]) == 0
    table = capsys.readouterr().out
    assert all(r["top"][0]["label"] in table for r in results) and table.count("item") == 6


def test_predict_labels_match_the_true_classes(served_run, photo_dir, fmnist, capsys):
    root, name = served_run
    assert main(["predict", str(photo_dir), "--run", name, "--runs-dir", str(root), "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    truth = {f"item{i}.jpg": CLASSES[fmnist.test_labels[i]] for i in range(6)}
    right = sum(r["top"][0]["label"] == truth[r["file"].rsplit("/", 1)[1]] for r in results)
    assert right >= 4  # a ~80% model on six photos


def _copy_run(src, root, name, val_accuracy, test_accuracy, val_size=None):
    """A copy of a finished run with chosen validation and test accuracies written into its files."""
    dst = root / name
    shutil.copytree(src.path, dst)
    run = open_run(dst)
    history = run.history()
    for row in history:
        row["val_accuracy"] = val_accuracy
    run.write_history(history)
    run.write_json(run.metrics_path, {**run.metrics(), "accuracy": test_accuracy})
    if val_size is not None:
        config = json.loads(run.config_path.read_text())
        run.write_json(run.config_path, {**config, "val_size": val_size})
    return run


def test_default_run_is_chosen_by_validation_never_test_accuracy(served_run, tmp_path, capsys):
    root, name = served_run
    src = open_run(name, root)
    _copy_run(src, tmp_path, "good-val", val_accuracy=0.90, test_accuracy=0.70)
    _copy_run(src, tmp_path, "good-test", val_accuracy=0.80, test_accuracy=0.95)
    _copy_run(src, tmp_path, "no-val", val_accuracy=0.99, test_accuracy=0.99, val_size=0)
    assert best_run(tmp_path).name == "good-val"
    assert main(["predict", str(tmp_path / "good-val" / "config.json"), "--runs-dir", str(tmp_path)]) == 1
    assert "not a PNG, JPEG" in capsys.readouterr().err


def test_no_run_to_choose_and_bad_inputs_are_one_line(served_run, tmp_path, photo_dir, capsys):
    root, name = served_run
    cases = [
        (["predict", str(photo_dir), "--runs-dir", str(tmp_path / "empty")], 2, "no finished run with a validation"),
        (["predict", str(photo_dir / "nope.jpg"), "--run", name, "--runs-dir", str(root)], 1, "does not exist"),
        (["predict", str(photo_dir / "readme.txt"), "--run", name, "--runs-dir", str(root)], 1, "not a PNG"),
        (["predict", str(photo_dir), "--run", "missing", "--runs-dir", str(root)], 2, "no run 'missing'"),
        (["predict", str(photo_dir), "--onnx", str(photo_dir / "readme.txt")], 2, "cannot load ONNX model"),
        (["predict", str(photo_dir), "--top-k", "0"], 2, "--top-k must be at least 1"),
        (["predict", str(photo_dir), "--run", name, "--runs-dir", str(root), "--show-input",
          str(photo_dir / "readme.txt")], 2, "is a file, not a folder"),
        (["export", name, "--runs-dir", str(root), "--out", str(photo_dir / "readme.txt" / "m.onnx")], 2,
         "choose another --out"),
    ]
    for args, code, message in cases:
        assert main(args) == code, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_prepared_inputs_are_what_the_model_classifies(served_run, photo_dir, tmp_path, capsys):
    """--show-input saves exactly the model's input: classifying the saved PNGs gives the same answers."""
    root, name = served_run
    args = ["--run", name, "--runs-dir", str(root), "--format", "json"]
    assert main(["predict", str(photo_dir), "--show-input", str(tmp_path / "seen"), *args]) == 0
    first = {r["file"].rsplit("/", 1)[1][:-4]: r["top"] for r in json.loads(capsys.readouterr().out)}
    assert main(["predict", str(tmp_path / "seen"), *args]) == 0
    again = {r["file"].rsplit("/", 1)[1][:-4]: r["top"] for r in json.loads(capsys.readouterr().out)}
    assert first.keys() == again.keys()
    for key in first:
        assert not np.isnan(first[key][0]["probability"])
        assert [t["label"] for t in first[key]] == [t["label"] for t in again[key]]
