"""The server against hostile or heavy requests: body limits while streaming, huge images, no file-system paths in
answers, security headers on every response, and safe defaults for --host and --port."""

import asyncio
import io
import json
import os
import select
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from fashionlab.cli import main
from fashionlab.data import CLASSES
from fashionlab.serving import app as app_module
from fashionlab.serving.app import create_app, is_loopback
from fashionlab.serving.predict import Predictor

HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor), raise_server_exceptions=False) as client:
        yield client


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _chunked_upload(limit: int, chunks: int, chunk_size: int = 64 * 1024):
    """ASGI messages of a multipart upload sent without Content-Length: `chunks` pieces, more_body throughout."""
    head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n\r\n'
    pieces = [head] + [b"x" * chunk_size] * chunks + [b"\r\n--b--\r\n"]
    return [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]


def test_chunked_body_over_the_limit_is_refused_as_it_arrives(predictor):
    limit = 1024 * 1024
    app = create_app(predictor, max_body_bytes=limit)
    messages = _chunked_upload(limit, chunks=400)  # 25 MB on offer
    received, sent = [], []

    async def receive():
        if len(received) < len(messages):
            received.append(messages[len(received)])
            return received[-1]
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"content-type", b"multipart/form-data; boundary=b"),
                         (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    with ThreadPoolExecutor(1) as pool:  # a loop of its own: Playwright's may be running in this thread
        pool.submit(asyncio.run, app(scope, receive, send)).result(timeout=60)
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"] == "too_large"
    assert sum(len(m["body"]) for m in received) <= limit + 64 * 1024 + 100  # stopped at the limit, not 25 MB


def test_chunked_body_over_the_limit_over_a_real_socket(predictor):
    """Through uvicorn: the 413 arrives while the client is still sending, long before the body ends."""
    limit = 1024 * 1024
    config = uvicorn.Config(create_app(predictor, max_body_bytes=limit), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        total, sent, answer = 64 * 1024 * 1024, 0, b""
        with socket.create_connection(listener.getsockname(), timeout=30) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
            part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n\r\n'
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            chunk = b"x" * 65536
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < total // 4, sent  # refused after the limit plus what the sockets buffer, not 64 MB
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_huge_png_is_decoded_on_the_heavy_lane_at_low_priority(client, monkeypatch, photos):
    lanes = []
    classify = app_module._classify

    def spy(*args):
        lanes.append((threading.current_thread().name.startswith("heavy-decode"),
                      os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return classify(*args)

    monkeypatch.setattr(app_module, "_classify", spy)
    image = Image.new("L", (5000, 4000), 255)  # 19 MB to decode: more than a light decode may take
    ImageDraw.Draw(image).rectangle([1000, 500, 4000, 3500], fill=30)
    response = client.post("/predict", files=[("files", ("big.png", _png(image), "image/png"))])
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert (result["width"], result["height"]) == (5000, 4000) and result["top"][0]["label"] in CLASSES
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert lanes[0] == (False, own) and lanes[1] == (True, min(own + 10, 19))  # tried light, then heavy
    lanes.clear()
    assert client.post("/predict", files=[("files", ("a.jpg", photos([0])[0], "image/jpeg"))]).status_code == 200
    assert lanes == [(False, own)]


def test_a_full_heavy_lane_answers_503(client, monkeypatch):
    monkeypatch.setattr(app_module, "MAX_HEAVY_WAITING", 0)
    image = Image.new("L", (5000, 4000), 255)
    response = client.post("/predict", files=[("files", ("big.png", _png(image), "image/png"))])
    assert response.status_code == 503 and response.json()["error"] == "busy"
    assert response.headers["retry-after"] == "1"


def test_too_many_pixels_for_the_memory_bound_is_413(client):
    rgb = bytearray(_png(Image.new("RGB", (1, 1))))  # a header claiming 6000x5000 RGB: 114 MB to decode
    rgb[16:24] = struct.pack(">II", 6000, 5000)
    rgb[29:33] = struct.pack(">I", zlib.crc32(bytes(rgb[12:29])))
    response = client.post("/predict", files=[("files", ("wide.png", bytes(rgb), "image/png"))])
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_pixels" and "wide.png" in response.json()["detail"]


def _no_paths(value, root: str):
    if isinstance(value, dict):
        return all(_no_paths(v, root) for v in value.values())
    if isinstance(value, list):
        return all(_no_paths(v, root) for v in value)
    return not (isinstance(value, str) and ("/" in value or root in value))


def test_model_description_shows_no_file_system_path(tmp_path):
    onnx_like = Predictor(lambda x: np.full((len(x), 10), 0.1, np.float32), list(CLASSES), 0.3, 0.35,
                          {"backend": "onnxruntime", "file": str(tmp_path / "models" / "served.onnx"), "run": "r"})
    with TestClient(create_app(onnx_like)) as client:
        model = client.get("/model").json()
    assert model["file"] == "served.onnx"
    assert _no_paths(model, str(tmp_path)), model


def test_security_headers_on_every_response(predictor, photos):
    def broken(x):
        raise RuntimeError("model failed")

    failing = Predictor(broken, predictor.classes, predictor.mean, predictor.std, predictor.info)
    with TestClient(create_app(predictor)) as client, \
            TestClient(create_app(failing), raise_server_exceptions=False) as failing_client:
        photo = [("files", ("a.jpg", photos([0])[0], "image/jpeg"))]
        responses = {
            "page": client.get("/"), "model": client.get("/model"), "health": client.get("/health"),
            "docs": client.get("/docs"), "predict": client.post("/predict", files=photo),
            "bad upload": client.post("/predict", files=[("files", ("a.txt", b"text", "text/plain"))]),
            "not found": client.get("/nope"), "validation": client.post("/predict?top_k=99", files=photo),
            "too large": client.post("/predict", content=b"x", headers={"content-length": str(10**10)}),
            "server error": failing_client.post("/predict", files=photo),
        }
    assert responses["server error"].status_code == 500
    for name, response in responses.items():
        for key, value in HEADERS.items():
            assert response.headers.get(key) == value, (name, key)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name
    page_csp = responses["page"].headers["content-security-policy"]
    assert "default-src 'none'" in page_csp and "'unsafe-inline'" not in page_csp
    assert "script-src 'sha256-" in page_csp and "connect-src 'self'" in page_csp
    assert "default-src 'none'" in responses["model"].headers["content-security-policy"]


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_one_line(port, capsys):
    assert main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err
    assert "--port" in err and "0 to 65535" in err and err.count("\n") == 1 and "Traceback" not in err


def test_only_loopback_is_the_quiet_default(capsys):
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "example.org"]))
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))  # so that serve stops at the port check, after its warning
        port = busy.getsockname()[1]
        assert main(["serve", "--host", "0.0.0.0", "--port", str(port)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "warning: listening on 0.0.0.0" in lines[0] and "cannot listen" in lines[1]
