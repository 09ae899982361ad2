"""A run with a temperature saved by `fashionlab explain` predicts, serves and exports softmax(logits / T), and says
so; --no-calibration gives the model's own probabilities; a run without a temperature is unchanged."""

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from fastapi.testclient import TestClient

from fashionlab.artifacts import load_run_model
from fashionlab.cli import main
from fashionlab.data import CLASSES
from fashionlab.explain.calibration import calibrate_run, load_temperature
from fashionlab.serving.app import create_app
from fashionlab.serving.predict import load_torch_predictor
from fashionlab.serving.preprocess import normalise, prepare_file


@pytest.fixture(scope="module")
def calibrated_run(served_run, tmp_path_factory, fmnist):
    """(runs root, name, T) of a copy of the served run whose temperature `fashionlab explain` fitted and saved."""
    root, name = served_run
    copy = tmp_path_factory.mktemp("calibrated")
    shutil.copytree(root / name, copy / name)
    calibrate_run(name, root=copy, data=fmnist)
    temperature = load_temperature(copy / name, default=None)
    assert temperature is not None and abs(temperature - 1) > 0.02  # far enough from 1 to tell the two apart
    return copy, name, temperature


@pytest.fixture
def photo_files(tmp_path, photos):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, data in enumerate(photos(range(5), seed=4)):
        (folder / f"p{i}.jpg").write_bytes(data)
    return folder


def _logits(root, name, folder) -> dict:
    """The run's logits for each photo of `folder`, prepared as predict prepares them."""
    model, record = load_run_model(name, root)
    files = sorted(folder.glob("*.jpg"))
    x = normalise(np.stack([prepare_file(f).pixels for f in files]), record["mean"], record["std"])
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).double().numpy()
    return {str(f): row for f, row in zip(files, logits)}


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _predict_json(capsys, *args) -> list[dict]:
    assert main(["predict", *args, "--format", "json", "--top-k", "10"]) == 0
    return json.loads(capsys.readouterr().out)


def _probabilities(result) -> np.ndarray:
    return np.array([next(t["probability"] for t in result["top"] if t["label"] == c) for c in CLASSES])


def test_predict_reports_softmax_of_logits_over_t(calibrated_run, photo_files, capsys):
    root, name, t = calibrated_run
    logits = _logits(root, name, photo_files)
    run = ["--run", name, "--runs-dir", str(root)]
    for result in _predict_json(capsys, str(photo_files), *run):
        assert result["calibrated"] is True and result["temperature"] == pytest.approx(t)
        np.testing.assert_allclose(_probabilities(result), _softmax(logits[result["file"]] / t), atol=1e-5)
    for result in _predict_json(capsys, str(photo_files), *run, "--no-calibration"):
        assert result["calibrated"] is False and result["temperature"] is None
        np.testing.assert_allclose(_probabilities(result), _softmax(logits[result["file"]]), atol=1e-5)
    assert main(["predict", str(photo_files), *run]) == 0
    assert f"calibrated probability, T = {t:.3f}" in capsys.readouterr().out
    assert main(["predict", str(photo_files), *run, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].endswith(",temperature") and all(r.endswith(f",{t:.4f}") for r in rows[1:])


def test_a_run_without_temperature_is_unchanged(served_run, photo_files, capsys):
    root, name = served_run
    assert not (root / name / "calibration.json").exists()
    logits = _logits(root, name, photo_files)
    for result in _predict_json(capsys, str(photo_files), "--run", name, "--runs-dir", str(root)):
        assert result["calibrated"] is False and result["temperature"] is None
        np.testing.assert_allclose(_probabilities(result), _softmax(logits[result["file"]]), atol=1e-5)
    assert main(["predict", str(photo_files), "--run", name, "--runs-dir", str(root)]) == 0
    assert "prediction (probability)" in capsys.readouterr().out


def test_serve_reports_calibrated_probabilities(calibrated_run, photo_files):
    root, name, t = calibrated_run
    logits = _logits(root, name, photo_files)
    photo = photo_files / "p0.jpg"
    for calibration, temperature in ((True, t), (False, 1.0)):
        with TestClient(create_app(load_torch_predictor(name, root, calibration=calibration))) as client:
            model = client.get("/model").json()
            assert model["calibrated"] is calibration
            assert model["temperature"] == (pytest.approx(t) if calibration else None)
            body = client.post("/predict", files=[("files", ("p0.jpg", photo.read_bytes(), "image/jpeg"))]).json()
        assert body["model"]["calibrated"] is calibration
        got = np.array([body["results"][0]["probabilities"][c] for c in CLASSES])
        np.testing.assert_allclose(got, _softmax(logits[str(photo)] / temperature), atol=1e-5)


def test_a_broken_calibration_file_is_one_line(calibrated_run, photo_files, tmp_path, capsys):
    root, name, _ = calibrated_run
    shutil.copytree(root / name, tmp_path / name)
    (tmp_path / name / "calibration.json").write_text("{not json")
    assert main(["predict", str(photo_files), "--run", name, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a calibration file" in err and err.count("\n") == 1
    # turning calibration off does not read the file at all
    assert main(["predict", str(photo_files), "--run", name, "--runs-dir", str(tmp_path), "--no-calibration"]) == 0


@pytest.fixture(scope="module")
def exports(calibrated_run, tmp_path_factory):
    """The calibrated run exported with its temperature, and with --no-calibration."""
    root, name, _ = calibrated_run
    out = tmp_path_factory.mktemp("exports")
    assert main(["export", name, "--runs-dir", str(root), "--out", str(out / "calibrated.onnx")]) == 0
    assert main(["export", name, "--runs-dir", str(root), "--out", str(out / "raw.onnx"), "--no-calibration"]) == 0
    return out / "calibrated.onnx", out / "raw.onnx"


def test_export_bakes_the_temperature_into_the_graph(calibrated_run, exports, fmnist):
    root, name, t = calibrated_run
    calibrated, raw = exports
    meta = {p.key: p.value for p in onnx.load(str(calibrated)).metadata_props}
    assert float(meta["temperature"]) == pytest.approx(t, rel=1e-12) and "logits / temperature" in meta["output"]
    assert "temperature" not in {p.key for p in onnx.load(str(raw)).metadata_props}
    model, record = load_run_model(name, root)
    x = normalise(fmnist.test_images[:500], record["mean"], record["std"])
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    for path, temperature in ((calibrated, t), (raw, 1.0)):
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
        assert np.abs(got - torch.softmax(logits / temperature, 1).numpy()).max() < 1e-5


def test_export_says_it_is_calibrated(calibrated_run, tmp_path, capsys):
    root, name, t = calibrated_run
    assert main(["export", name, "--runs-dir", str(root), "--out", str(tmp_path / "m.onnx")]) == 0
    assert f"temperature {t:.3f} in the graph" in capsys.readouterr().out


def test_predict_onnx_agrees_with_the_run_with_and_without_calibration(calibrated_run, exports, photo_files, capsys):
    root, name, t = calibrated_run
    calibrated, raw = exports
    run = ["--run", name, "--runs-dir", str(root)]
    for flags in ([], ["--no-calibration"]):
        by_run = _predict_json(capsys, str(photo_files), *run, *flags)
        for onnx_file in (calibrated, raw):
            by_onnx = _predict_json(capsys, str(photo_files), "--onnx", str(onnx_file), *flags)
            if onnx_file == raw and not flags:  # a file without a temperature: the model's own probabilities
                assert all(r["calibrated"] is False for r in by_onnx)
                continue
            for a, b in zip(by_run, by_onnx):
                assert (a["calibrated"], a["temperature"]) == (b["calibrated"], pytest.approx(b["temperature"]))
                np.testing.assert_allclose(_probabilities(a), _probabilities(b), atol=1e-4)


def test_predict_onnx_without_calibration_does_not_need_torch(exports, photo_files):
    code = ("import json, sys; from fashionlab.cli import main; "
            f"rc = main(['predict', {str(photo_files)!r}, '--onnx', {str(exports[0])!r}, '--no-calibration', "
            "'--format', 'json']); assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(r["calibrated"] is False for r in json.loads(done.stdout))
