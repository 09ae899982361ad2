"""ONNX export: same probabilities as PyTorch, dynamic batch, metadata; `predict --onnx` agrees with `predict`."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fashionlab.artifacts import load_run_model
from fashionlab.cli import main
from fashionlab.data import MEAN, STD, make_splits


@pytest.fixture(scope="module")
def onnx_file(served_run, tmp_path_factory):
    root, name = served_run
    out = tmp_path_factory.mktemp("onnx") / "served.onnx"
    assert main(["export", name, "--format", "onnx", "--out", str(out), "--runs-dir", str(root)]) == 0
    return out


def test_onnx_matches_pytorch_on_real_test_images(served_run, onnx_file, fmnist):
    root, name = served_run
    model, _ = load_run_model(name, root, "cpu")
    x = make_splits(fmnist, 0, 0, train_limit=1, test_limit=2000).test.images
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {"image": x[i:i + 500].numpy()})[0] for i in range(0, 2000, 500)])
    assert got.shape == (2000, 10)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()
    one = session.run(None, {"image": x[:1].numpy()})[0]  # the batch dimension is dynamic
    np.testing.assert_allclose(one, got[:1], atol=1e-5)


def test_metadata_holds_the_preprocessing(served_run, onnx_file):
    root, name = served_run
    proto = onnx.load(str(onnx_file))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"])[9] == "Ankle Boot"
    assert (float(meta["mean"]), float(meta["std"]), meta["input_size"]) == (MEAN, STD, "28,28")
    assert meta["run"] == name and meta["model"] == "ann_bn"
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_predict_with_onnx_gives_the_same_labels(served_run, onnx_file, tmp_path, photos, capsys):
    root, name = served_run
    for i, data in enumerate(photos(range(40), seed=3)):
        (tmp_path / f"p{i:02d}.jpg").write_bytes(data)
    assert main(["predict", str(tmp_path), "--run", name, "--runs-dir", str(root), "--format", "json"]) == 0
    torch_results = json.loads(capsys.readouterr().out)
    assert main(["predict", str(tmp_path), "--onnx", str(onnx_file), "--format", "json"]) == 0
    onnx_results = json.loads(capsys.readouterr().out)
    assert [r["top"][0]["label"] for r in torch_results] == [r["top"][0]["label"] for r in onnx_results]
    for a, b in zip(torch_results, onnx_results):
        assert abs(a["top"][0]["probability"] - b["top"][0]["probability"]) < 1e-4


def test_predict_onnx_does_not_need_torch(onnx_file, tmp_path, photos):
    (tmp_path / "a.jpg").write_bytes(photos([0])[0])
    code = ("import sys; from fashionlab.cli import main; "
            f"rc = main(['predict', {str(tmp_path)!r}, '--onnx', {str(onnx_file)!r}]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "a.jpg" in done.stdout


def test_export_refuses_unfinished_runs(served_run, tmp_path, capsys):
    root, name = served_run
    assert main(["export", "nope", "--runs-dir", str(root)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
