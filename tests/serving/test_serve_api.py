"""The JSON API: predictions, model description, and a clear 4xx for every bad upload, after which it still serves."""

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fashionlab.data import CLASSES
from fashionlab.serving.app import MAX_BYTES, MAX_FILES, create_app
from fashionlab.serving.preprocess import prepare_file


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor)) as client:
        yield client


def _bomb_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height pixels."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_health_model_and_docs(client, served_run):
    assert client.get("/health").json() == {"status": "ok"}
    model = client.get("/model").json()
    root, name = served_run
    import json
    metrics = json.loads((root / name / "metrics.json").read_text())
    assert model["run"] == name and model["model"] == "ann_bn" and model["classes"] == list(CLASSES)
    assert model["test_accuracy"] == metrics["accuracy"]
    assert 0.5 < model["val_accuracy"] < 1
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="files"' in page.text


def test_predict_several_photos(client, predictor, photos, fmnist):
    images = photos([0, 1, 2])
    files = [("files", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    response = client.post("/predict", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["file"] for r in results] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    expected = predictor.probabilities([prepare_file(d) for d in images])
    for r, probs in zip(results, expected):
        assert len(r["top"]) == 3 and r["top"][0]["label"] == CLASSES[probs.argmax()]
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-4
        assert r["top"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-6)
        assert (r["width"], r["height"]) == Image.open(io.BytesIO(images[results.index(r)])).size
        seen = Image.open(io.BytesIO(base64.b64decode(r["input_png"].split(",", 1)[1])))
        assert seen.size == (28, 28) and seen.mode == "L"
        np.testing.assert_array_equal(np.asarray(seen), prepare_file(images[results.index(r)]).pixels)
    # top_k is honoured and checked
    one = client.post("/predict?top_k=1", files=files[:1]).json()["results"][0]
    assert len(one["top"]) == 1
    assert client.post("/predict?top_k=11", files=files[:1]).status_code == 422


def _jpeg(photos):
    return photos([5])[0]


BAD = {
    "not an image": (lambda p: b"this is a text file, not a photo", 415, "not_an_image"),
    "zero bytes": (lambda p: b"", 400, "empty"),
    "truncated": (lambda p: _jpeg(p)[: len(_jpeg(p)) // 3], 400, "damaged"),
    "over 10 MB": (lambda p: _jpeg(p) + bytes(MAX_BYTES), 413, "too_large"),
    "decompression bomb": (lambda p: _bomb_png(10_001, 10_000), 413, "too_many_pixels"),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", list(BAD))
def test_bad_upload_is_a_clear_4xx_and_the_server_keeps_serving(client, photos, case):
    make, status, code = BAD[case]
    good = ("files", ("good.jpg", photos([0])[0], "image/jpeg"))
    response = client.post("/predict", files=[good, ("files", ("bad.jpg", make(photos), "image/jpeg"))])
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["file"] == "bad.jpg" and "bad.jpg" in body["detail"]
    assert client.post("/predict", files=[good]).status_code == 200


def test_too_many_files_and_no_files(client, photos):
    data = photos([0])[0]
    response = client.post("/predict", files=[("files", (f"{i}.jpg", data, "image/jpeg"))
                                              for i in range(MAX_FILES + 1)])
    assert response.status_code == 413 and response.json()["error"] == "too_many_files"
    assert str(MAX_FILES) in response.json()["detail"]
    assert client.post("/predict", files=[("files", (f"{i}.jpg", data, "image/jpeg"))
                                          for i in range(MAX_FILES)]).status_code == 200
    response = client.post("/predict", data={"other": "x"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "files"]


def test_announced_huge_body_is_refused_before_reading(client):
    response = client.post("/predict", content=b"x", headers={"content-length": str(10**10),
                                                             "content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and response.json()["error"] == "too_large"
