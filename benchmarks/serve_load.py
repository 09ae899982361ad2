"""Load test of `fashionlab serve`: concurrent clients uploading photos, with malformed and huge uploads mixed in.

Starts the server as a separate process on 127.0.0.1 (a free port) for each phase:

- plain: REQUESTS good uploads (one "product photo" rendered from a test image each) from CLIENTS threads with
  keep-alive connections, and every MALFORMED_EVERY-th request also a malformed upload (text, zero bytes,
  truncated JPEG). Prints throughput, p50/p99 latency of the good requests, and the status codes of the
  malformed ones.
- mixed: the same photos from CLIENTS - HUGE_CLIENTS clients while HUGE_CLIENTS others keep sending a
  10,000x10,000 greyscale PNG (the largest image the server still decodes: ~95 MB in memory). Prints the
  photo clients' p99 against the plain run's, and the server's peak memory (VmHWM).

Every phase prints the server's CPU time per request, read from /proc, which stays meaningful when other
processes share the CPU; throughput and latency do not. The CPU, its features and the load average are
printed before the figures.

Exits 1 when any good request failed, any malformed one was not refused with a 4xx, or (mixed) any huge upload
got an answer other than 200 or a 503 (busy).

    python benchmarks/serve_load.py [--run RUN | --onnx FILE] [--runs-dir DIR] [--requests 2000] [--clients 8]
                                    [--phase plain|mixed|both] [--huge-clients 2]
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
from machine import cpu_features, cpu_name
from PIL import Image, ImageDraw

from fashionlab.data import CLASSES, load_fashion_mnist

HUGE = 10_000  # pixels per side of the huge PNG


def product_photo(pixels: np.ndarray, scale: int = 8, margin: int = 40) -> bytes:
    item = Image.fromarray(255 - pixels, "L").resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (28 * scale + 2 * margin, 28 * scale + 2 * margin), (255, 255, 255))
    canvas.paste(item.convert("RGB"), (margin, margin))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def huge_png() -> bytes:
    """A 10,000x10,000 greyscale PNG of a dark box on white: ~120 KB to send, 95 MB to decode."""
    image = Image.new("L", (HUGE, HUGE), 255)
    ImageDraw.Draw(image).rectangle([HUGE // 4, HUGE // 5, 3 * HUGE // 4, 4 * HUGE // 5], fill=40)
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=6)
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
    cmd += args.serve_args.split()
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


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (a server with --workers runs several)."""
    pids = [pid]
    for p in pids:
        for task in os.listdir(f"/proc/{p}/task"):
            try:
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    pids += [int(c) for c in fh.read().split()]
            except OSError:
                pass
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants so far (/proc/PID/stat fields 14 and 15)."""
    total = 0
    for p in process_tree(pid):
        with open(f"/proc/{p}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, added up over its descendants: an upper bound of the total."""
    total = 0
    for p in process_tree(pid):
        with open(f"/proc/{p}/status") as fh:
            total += next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
    return total / 1024


class Clients:
    """Keep-alive HTTP connections, one per client thread, sending multipart uploads to one server."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def post(self, body: bytes, ctype: str) -> tuple[int, float, bytes | str]:
        if not hasattr(self.local, "conn"):
            self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        start = time.perf_counter()
        try:
            self.local.conn.request("POST", "/predict", body, {"Content-Type": ctype})
            response = self.local.conn.getresponse()
            text = response.read()
        except (OSError, http.client.HTTPException) as err:
            self.local.conn.close()
            del self.local.conn
            return 0, time.perf_counter() - start, str(err)
        return response.status, time.perf_counter() - start, text


def run_phase(args, photos, bad, huge: bytes | None) -> dict:
    """One server, one load: the photo jobs (with malformed ones), and `huge` sent meanwhile when given."""
    jobs = []
    for i in range(args.requests):
        jobs.append(("good", i))
        if (i + 1) % args.malformed_every == 0:  # malformed uploads interleaved with the good ones
            jobs.append(("bad", i // args.malformed_every))
    good_bodies = [multipart(f"photo{i}.jpg", data) for i, (data, _) in enumerate(photos)]
    bad_bodies = [multipart(name, data) for name, data in bad]
    huge_body = multipart("huge.png", huge) if huge else None
    n_huge = args.huge_clients if huge else 0

    port = free_port()
    server = start_server(args, port)
    clients = Clients(port)
    done = threading.Event()
    huge_results = []

    def send(job):
        kind, i = job
        body, ctype = good_bodies[i % len(photos)] if kind == "good" else bad_bodies[i % len(bad)]
        status, seconds, text = clients.post(body, ctype)
        label = json.loads(text)["results"][0]["top"][0]["label"] if status == 200 and kind == "good" else None
        return kind, i, status, seconds, label

    def send_huge():
        while not done.is_set():
            status, seconds, _ = clients.post(*huge_body)
            huge_results.append((status, seconds))

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/model") as response:
            model = json.load(response)
        send(("good", 0))  # warm-up outside the timing
        cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
        start = time.perf_counter()
        huge_pool = ThreadPoolExecutor(max(1, n_huge))
        huge_futures = [huge_pool.submit(send_huge) for _ in range(n_huge)]
        with ThreadPoolExecutor(args.clients - n_huge) as pool:
            results = list(pool.map(send, jobs))
        wall = time.perf_counter() - start
        done.set()
        for future in huge_futures:
            future.result()
        huge_pool.shutdown()
        cpu, client_cpu = cpu_seconds(server.pid) - cpu_before, time.process_time() - client_before
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    good = [r for r in results if r[0] == "good"]
    malformed = [r for r in results if r[0] == "bad"]
    latency = np.array([r[3] for r in good if r[2] == 200]) * 1000
    return {"model": model, "results": results, "good": good, "malformed": malformed, "wall": wall, "cpu": cpu,
            "client_cpu": client_cpu,
            "latency": latency, "peak_mb": peak, "huge": huge_results,
            "failed": [r for r in good if r[2] != 200],
            "right": sum(r[4] == photos[r[1] % len(photos)][1] for r in good if r[2] == 200),
            "bad_ok": [r for r in malformed if 400 <= r[2] < 500]}


def report(name: str, phase: dict, clients: int) -> None:
    good, latency = phase["good"], phase["latency"]
    n = len(phase["results"])
    print(f"[{name}] good requests: {len(good)} from {clients} concurrent clients, {len(phase['failed'])} failed, "
          f"{phase['right'] / max(1, len(good)):.1%} labelled as their true class")
    print(f"[{name}] throughput: {n / phase['wall']:.1f} requests/s ({phase['wall']:.1f} s for {n} requests); "
          f"CPU per request: server {1000 * phase['cpu'] / n:.2f} ms, "
          f"load generator {1000 * phase['client_cpu'] / n:.2f} ms")
    if len(latency):
        print(f"[{name}] latency (good requests): p50 {np.percentile(latency, 50):.1f} ms, "
              f"p99 {np.percentile(latency, 99):.1f} ms, max {latency.max():.1f} ms")
    codes = sorted({r[2] for r in phase["malformed"]})
    print(f"[{name}] malformed uploads: {len(phase['malformed'])}, refused with 4xx: {len(phase['bad_ok'])} "
          f"(status codes {codes})")
    print(f"[{name}] server peak memory (VmHWM): {phase['peak_mb']:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="run to serve (default: the best finished run by validation accuracy)")
    parser.add_argument("--runs-dir")
    parser.add_argument("--onnx", metavar="FILE", help="serve this exported ONNX model (onnxruntime) instead")
    parser.add_argument("--requests", type=int, default=2000, help="good requests to send (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--malformed-every", type=int, default=20, help="one malformed upload per N good ones")
    parser.add_argument("--serve-args", default="", help="more arguments for 'fashionlab serve', e.g. '--workers 2'")
    parser.add_argument("--phase", choices=("plain", "mixed", "both"), default="both")
    parser.add_argument("--huge-clients", type=int, default=2,
                        help="mixed phase: clients sending 10,000x10,000 PNGs (default 2)")
    args = parser.parse_args()
    if not 0 < args.huge_clients < args.clients:
        parser.error("--huge-clients must be at least 1 and fewer than --clients")

    data = load_fashion_mnist()
    photos = [(product_photo(data.test_images[i]), CLASSES[data.test_labels[i]]) for i in range(200)]
    bad = [("notes.txt", b"not an image at all"), ("empty.jpg", b""), ("cut.jpg", photos[0][0][:2000])]
    huge = huge_png() if args.phase != "plain" else None

    load_before = os.getloadavg()
    phases = {}
    if args.phase in ("plain", "both"):
        phases["plain"] = run_phase(args, photos, bad, None)
    if args.phase in ("mixed", "both"):
        phases["mixed"] = run_phase(args, photos, bad, huge)
    load_after = os.getloadavg()

    model = next(iter(phases.values()))["model"]
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine: {os.cpu_count()} cores, {cpu_name()}, features: {cpu_features()}; "
          f"Python {platform.python_version()}")
    print(f"load average (1/5/15 min): {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f} before, "
          f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} after; the load generator shares these "
          f"cores with the server{', and other processes do too: figures are noisy' if load_before[0] > 1 else ''}")
    print(f"command: python benchmarks/serve_load.py {' '.join(sys.argv[1:])}")
    print(f"model: {model['model']} (run {model['run']}, {model['backend']}), "
          f"test accuracy {model['test_accuracy']:.4f}")
    ok = True
    for name, phase in phases.items():
        clients = args.clients - (args.huge_clients if name == "mixed" else 0)
        report(name, phase, clients)
        ok &= not phase["failed"] and len(phase["bad_ok"]) == len(phase["malformed"])
    if "mixed" in phases:
        mixed = phases["mixed"]
        statuses = sorted({s for s, _ in mixed["huge"]})
        seconds = [t for s, t in mixed["huge"] if s == 200]
        print(f"[mixed] huge uploads ({HUGE}x{HUGE} PNG, {len(huge):,} bytes) from {args.huge_clients} clients: "
              f"{len(mixed['huge'])} answered, status codes {statuses}"
              + (f", {np.median(seconds):.2f} s median" if seconds else ""))
        ok &= all(s in (200, 503) for s, _ in mixed["huge"])
        if "plain" in phases and len(mixed["latency"]) and len(phases["plain"]["latency"]):
            plain_p99 = np.percentile(phases["plain"]["latency"], 99)
            mixed_p99 = np.percentile(mixed["latency"], 99)
            print(f"[mixed] photo p99 with huge uploads alongside: {mixed_p99:.1f} ms, "
                  f"{mixed_p99 / plain_p99:.2f}x the plain run's {plain_p99:.1f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
