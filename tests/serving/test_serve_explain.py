"""`POST /explain`: the prediction plus an attribution map of the predicted class (28x28 values and an overlay PNG);
bad uploads get the same clear 4xx as /predict; a server without the PyTorch model says it cannot draw maps."""

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fashionlab.serving.app import create_app
from fashionlab.serving.predict import OVERLAY_METHOD, Predictor
from fashionlab.serving.preprocess import prepare_file


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor)) as client:
        yield client


def _png(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_explain_returns_the_prediction_and_a_map_of_the_predicted_class(client, predictor, photos):
    images = photos([0, 1])
    files = [("files", (f"p{i}.jpg", d, "image/jpeg")) for i, d in enumerate(images)]
    response = client.post("/explain", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    predicted = client.post("/predict", files=files).json()["results"]
    assert all("attribution" not in r for r in predicted)
    assert [{k: v for k, v in r.items() if k != "attribution"} for r in results] == predicted  # /predict's, and more
    for r, data in zip(results, images):
        why = r["attribution"]
        assert why["method"] == OVERLAY_METHOD and why["label"] == r["top"][0]["label"]
        values = np.array(why["map"])
        assert values.shape == (28, 28) and np.isfinite(values).all() and np.abs(values).max() > 0
        prepared = prepare_file(data)
        expected = predictor.attributions([prepared], [why["index"]])[0]
        np.testing.assert_allclose(values, expected, rtol=1e-3, atol=1e-6 * np.abs(expected).max())
        overlay = _png(why["overlay_png"])
        assert overlay.size == (28, 28) and overlay.mode == "RGB"


@pytest.mark.parametrize("data, status, code", [(b"plain text", 415, "not_an_image"), (b"", 400, "empty")])
def test_a_bad_upload_is_a_clear_4xx(client, photos, data, status, code):
    response = client.post("/explain", files=[("files", ("bad.jpg", data, "image/jpeg"))])
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code and body["file"] == "bad.jpg" and "bad.jpg" in body["detail"]
    assert "\n" not in body["detail"]
    good = client.post("/explain", files=[("files", ("good.jpg", photos([0])[0], "image/jpeg"))])
    assert good.status_code == 200


def test_without_the_pytorch_model_explain_says_why(predictor, photos):
    onnx_like = Predictor(predictor.classify, predictor.classes, predictor.mean, predictor.std,
                          {**predictor.info, "backend": "onnxruntime", "attribution": None})
    with TestClient(create_app(onnx_like)) as client:
        assert client.get("/model").json()["attribution"] is None
        response = client.post("/explain", files=[("files", ("a.jpg", photos([0])[0], "image/jpeg"))])
        assert response.status_code == 501
        assert response.json()["error"] == "no_attributions" and "--run" in response.json()["detail"]
        assert client.post("/predict", files=[("files", ("a.jpg", photos([0])[0], "image/jpeg"))]).status_code == 200


def test_the_model_names_the_attribution_method(client):
    assert client.get("/model").json()["attribution"] == OVERLAY_METHOD
    assert "/explain" in client.get("/openapi.json").json()["paths"]
