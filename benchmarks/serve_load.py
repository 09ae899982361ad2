"""Load test of `fashionlab serve`: many photo uploads from concurrent clients, with malformed ones mixed in.

Starts the server as a separate process on 127.0.0.1 (a free port), then sends REQUESTS good uploads (one
"product photo" rendered from a test image each) from CLIENTS threads with keep-alive connections, and every
MALFORMED_EVERY-th request also a malformed upload (text, zero bytes, truncated JPEG). Prints throughput and
p50/p99 latency of the good requests, and the status codes of the malformed ones. Exits 1 when any good
request failed or any malformed one was not refused with a 4xx.

    python benchmarks/serve_load.py [--run RUN | --onnx FILE] [--runs-dir DIR] [--requests 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from machine import cpu_name
from PIL import Image

from fashionlab.data import CLASSES, load_fashion_mnist


def product_photo(pixels: np.ndarray, scale: int = 8, margin: int = 40) -> bytes:
    item = Image.fromarray(255 - pixels, "L").resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (28 * scale + 2 * margin, 28 * scale + 2 * margin), (255, 255, 255))
    canvas.paste(item.convert("RGB"), (margin, margin))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fashionlab", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--run", args.run] if args.run else []
    cmd += ["--runs-dir", args.runs_dir] if args.runs_dir else []
    cmd += ["--onnx", args.onnx] if args.onnx else []
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                sys.exit(f"server did not start:\n{log.read()}")
            time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run to serve (default: the best finished run by validation accuracy)")
    parser.add_argument("--runs-dir")
    parser.add_argument("--onnx", metavar="FILE", help="serve this exported ONNX model (onnxruntime) instead")
    parser.add_argument("--requests", type=int, default=2000, help="good requests to send (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--malformed-every", type=int, default=20, help="one malformed upload per N good ones")
    args = parser.parse_args()

    data = load_fashion_mnist()
    photos = [(product_photo(data.test_images[i]), CLASSES[data.test_labels[i]]) for i in range(200)]
    bad = [("notes.txt", b"not an image at all"), ("empty.jpg", b""), ("cut.jpg", photos[0][0][:2000])]
    jobs = []
    for i in range(args.requests):
        jobs.append(("good", i))
        if (i + 1) % args.malformed_every == 0:  # malformed uploads interleaved with the good ones
            jobs.append(("bad", i // args.malformed_every))

    load_before = os.getloadavg()[0]  # the CPU may be shared: say how busy it was
    port = free_port()
    server = start_server(args, port)
    local = threading.local()

    def send(job):
        kind, i = job
        name, payload = (f"photo{i}.jpg", photos[i % len(photos)][0]) if kind == "good" else bad[i % len(bad)]
        body, ctype = multipart(name, payload)
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start = time.perf_counter()
        try:
            local.conn.request("POST", "/predict", body, {"Content-Type": ctype})
            response = local.conn.getresponse()
            text = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as err:
            local.conn.close()
            del local.conn
            return kind, i, 0, time.perf_counter() - start, str(err)
        seconds = time.perf_counter() - start
        label = json.loads(text)["results"][0]["top"][0]["label"] if status == 200 and kind == "good" else None
        return kind, i, status, seconds, label

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/model") as response:
            model = json.load(response)
        send(("good", 0))  # warm-up outside the timing
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(send, jobs))
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)

    good = [r for r in results if r[0] == "good"]
    malformed = [r for r in results if r[0] == "bad"]
    failed = [r for r in good if r[2] != 200]
    latency = np.array([r[3] for r in good if r[2] == 200]) * 1000
    right = sum(r[4] == photos[r[1] % len(photos)][1] for r in good if r[2] == 200)
    bad_ok = [r for r in malformed if 400 <= r[2] < 500]
    codes = sorted({r[2] for r in malformed})

    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{cpu_name()}, Python {platform.python_version()}, load average {load_before:.1f} before the run")
    print(f"command: python benchmarks/serve_load.py {' '.join(sys.argv[1:])}")
    print(f"model: {model['model']} (run {model['run']}, {model['backend']}), "
          f"test accuracy {model['test_accuracy']:.4f}")
    print(f"good requests: {len(good)} from {args.clients} concurrent clients, {len(failed)} failed, "
          f"{right / max(1, len(good)):.1%} labelled as their true class")
    print(f"throughput: {len(results) / wall:.1f} requests/s ({wall:.1f} s for {len(results)} requests)")
    if len(latency):
        print(f"latency (good requests): p50 {np.percentile(latency, 50):.1f} ms, "
              f"p99 {np.percentile(latency, 99):.1f} ms, max {latency.max():.1f} ms")
    print(f"malformed uploads: {len(malformed)}, refused with 4xx: {len(bad_ok)} (status codes {codes})")
    return 0 if not failed and len(bad_ok) == len(malformed) else 1


if __name__ == "__main__":
    sys.exit(main())
