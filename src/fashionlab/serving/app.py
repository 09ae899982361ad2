"""FastAPI app: `GET /` page, `POST /predict` (multipart photos -> JSON), `POST /explain` (the same, with an
attribution map of the predicted class), `GET /model`, `GET /health`, `/docs`.

The model is loaded once, before the app is built. Every bad upload is a 4xx JSON error
`{"error": code, "detail": message, "file": name}` and the server keeps serving.

What keeps it standing under hostile or heavy uploads:
- the request body is counted as it arrives (chunked bodies too) and refused with 413 once it passes
  MAX_BODY_BYTES, before anything more is read or spooled (FastAPI's `max_body_size`);
- each image is checked from its header and decoded within a memory bound (preprocess.MAX_DECODE_BYTES);
- decoding runs in threads on two lanes: images that need little memory to decode share one slot per core,
  and the few that need more (up to MAX_DECODE_BYTES) take turns on one thread of their own, at a lower CPU
  priority, so a burst of huge images neither exhausts memory nor slows everyone else's photos much; a long
  queue there answers 503;
- responses carry no file-system path, and every response carries basic security headers.
"""

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import socket
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import usable_cores
from ..errors import ConfigError, FashionlabError
from .predict import Predictor, load_onnx_predictor, load_torch_predictor
from .preprocess import MAX_DECODE_BYTES, MAX_PIXELS, ImageError, open_image, prepare

MAX_BYTES = 10 * 1024 * 1024  # per file
MAX_FILES = 16  # per request
MAX_BODY_BYTES = MAX_FILES * MAX_BYTES + 1024 * 1024  # the whole request, multipart framing included
HEAVY_DECODE_BYTES = 16 * 2**20  # decodes needing more memory (over 4 Mpx of RGBA) take the heavy lane
MAX_HEAVY_WAITING = 8  # requests queued for the heavy lane before more are answered 503
STATUS = {"empty": 400, "damaged": 400, "not_an_image": 415, "too_large": 413, "too_many_pixels": 413,
          "too_many_files": 413, "no_files": 400, "busy": 503, "no_attributions": 501}

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's /docs and /redoc pages load their scripts from a CDN and run an inline one: only framing is forbidden.
DOCS_CSP = "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def page_csp(page: str) -> str:
    """The page's policy: its own inline script and style (by hash), fetches to this server, photos as blobs."""
    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
                        for b in blocks)
    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


class SecurityHeaders:
    """ASGI middleware: the security headers, and a Content-Security-Policy chosen by path, on every response."""

    def __init__(self, app, policies: dict[str, str]):
        self.app = app
        self.policies = policies

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = self.policies.get(scope["path"], API_CSP)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
                headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AnnouncedBodyLimit:
    """ASGI middleware: a request whose Content-Length passes the limit gets the JSON 413 before anything is read.

    Bodies without a Content-Length (chunked) are counted as they arrive by FastAPI's `max_body_size`, whose
    413 for them reaches `create_app`'s handler; an announced length it would answer in plain text.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length", "")
            if length.isdigit() and int(length) > self.limit:
                response = _error("too_large", f"request body of {int(length):,} bytes is larger than "
                                               f"{self.limit:,} bytes ({MAX_FILES} files of at most "
                                               f"{MAX_BYTES // 2**20} MB)")
                response.headers["Connection"] = "close"
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class _App(FastAPI):
    def build_middleware_stack(self):
        # Outside FastAPI's own stack, so that its plain-text 500 answers carry the headers too.
        stack = AnnouncedBodyLimit(super().build_middleware_stack(), self.max_body_size)
        return SecurityHeaders(stack, self.state.csp)


def _lower_priority() -> None:
    """Run this thread at a lower CPU priority (Linux: a thread id is a process id to setpriority)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class _NeedsHeavyLane(Exception):
    """Raised on the light lane for an image that needs more than HEAVY_DECODE_BYTES to decode."""


def _admit_light(needed: int) -> None:
    if needed > HEAVY_DECODE_BYTES:
        raise _NeedsHeavyLane


def _error(code: str, detail: str, file: str | None = None) -> JSONResponse:
    headers = {"Retry-After": "1"} if code == "busy" else None
    return JSONResponse({"error": code, "detail": detail, "file": file}, status_code=STATUS[code], headers=headers)


def create_app(predictor: Predictor, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    light = anyio.CapacityLimiter(usable_cores())
    heavy = concurrent.futures.ThreadPoolExecutor(1, "heavy-decode", initializer=_lower_priority)
    heavy_waiting = 0  # requests on the heavy lane, decoding or queued

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        heavy.shutdown(wait=False, cancel_futures=True)

    app = _App(title="fashionlab", summary="Classify clothing photos with a Fashion-MNIST model.", version="1",
               max_body_size=max_body_bytes, lifespan=lifespan)
    page = resources.files(__package__).joinpath("page.html").read_text()
    app.state.csp = {"/": page_csp(page), "/docs": DOCS_CSP, "/redoc": DOCS_CSP,
                     "/docs/oauth2-redirect": DOCS_CSP}
    info = dict(predictor.info)
    if info.get("file"):
        info["file"] = Path(info["file"]).name  # where the model lies on this machine is nobody else's business
    model_info = {**info, "classes": predictor.classes, "input_size": [28, 28],
                  "mean": predictor.mean, "std": predictor.std,
                  "limits": {"max_files": MAX_FILES, "max_bytes": MAX_BYTES, "max_body_bytes": max_body_bytes,
                             "max_pixels": MAX_PIXELS, "max_decode_bytes": MAX_DECODE_BYTES}}
    @app.exception_handler(ImageError)
    async def image_error(request: Request, err: ImageError):
        return _error(err.code, str(err), err.file)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        if err.status_code == 413:  # FastAPI's body limit
            return _error("too_large", f"request body is larger than {max_body_bytes:,} bytes ({MAX_FILES} files "
                                       f"of at most {MAX_BYTES // 2**20} MB)")
        return await http_exception_handler(request, err)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    async def model() -> dict:
        """The loaded model: run, network, accuracies, class names, input size and upload limits."""
        return model_info

    n_classes = len(predictor.classes)  # (no `from __future__ import annotations` here: FastAPI reads these)

    async def answer(files: list[UploadFile], top_k: int, explain: bool) -> Response:
        """Check the uploads, then decode and classify them on a lane (module docstring)."""
        nonlocal heavy_waiting
        if not files:
            return _error("no_files", "send one or more photos as multipart field 'files'")
        if len(files) > MAX_FILES:
            return _error("too_many_files", f"{len(files)} files sent; at most {MAX_FILES} per request")
        uploads = []
        for upload in files:
            name = upload.filename or "upload"
            size = upload.size
            if size is None:
                size = len(await upload.read(MAX_BYTES + 1))
            if size > MAX_BYTES:
                return _error("too_large", f"{name} is {size:,} bytes; at most {MAX_BYTES // 2**20} MB per file",
                              name)
            uploads.append((name, upload.file))
        try:
            result = await anyio.to_thread.run_sync(_classify, predictor, uploads, top_k, _admit_light, explain,
                                                    limiter=light)
        except _NeedsHeavyLane:
            if heavy_waiting >= MAX_HEAVY_WAITING:
                return _error("busy", "too many large images are waiting to be decoded; try again shortly")
            heavy_waiting += 1
            try:
                result = await asyncio.wrap_future(heavy.submit(_classify, predictor, uploads, top_k, None, explain))
            finally:
                heavy_waiting -= 1
        return Response(result, media_type="application/json")

    @app.post("/predict")
    async def predict(files: Annotated[list[UploadFile], File(description="one or more photos")],
                      top_k: Annotated[int, Query(ge=1, le=n_classes)] = 3) -> dict:
        """Classify photos: for each, the 28x28 image the model saw (PNG, base64) and the top-k classes."""
        return await answer(files, top_k, explain=False)

    @app.post("/explain")
    async def explain(files: Annotated[list[UploadFile], File(description="one or more photos")],
                      top_k: Annotated[int, Query(ge=1, le=n_classes)] = 3) -> dict:
        """Classify photos as /predict does, and add for each an attribution map of the predicted class
        (Integrated Gradients): a 28x28 array and its overlay on the model input (PNG, base64)."""
        if predictor.attribute is None:
            return _error("no_attributions", "attribution maps need the run's PyTorch model; this server runs an "
                                             "ONNX file: serve the run with --run RUN for /explain")
        return await answer(files, top_k, explain=True)

    return app


def _classify(predictor: Predictor, uploads: list, top_k: int, admit, explain: bool = False) -> bytes:
    """The JSON answer for a request's uploads, with attribution maps when `explain`; runs in a worker thread."""
    prepared = []
    for name, data in uploads:
        try:
            prepared.append(prepare(open_image(data, name, admit)))
        except ImageError as err:
            err.file = name
            raise
    probabilities = predictor.probabilities(prepared)
    maps = predictor.attributions(prepared, probabilities.argmax(1)) if explain else [None] * len(prepared)
    results = []
    for (name, _), p, probs, attribution in zip(uploads, prepared, probabilities, maps):
        result = {
            "file": name, "width": p.original_size[0], "height": p.original_size[1], "negated": p.negated,
            "input_png": _data_url(p.png()),
            "top": predictor.top(probs, top_k),
            "probabilities": dict(zip(predictor.classes, probs.tolist())),
        }
        if explain:
            result["attribution"] = _attribution(predictor, p, int(probs.argmax()), attribution)
        results.append(result)
    model = {k: predictor.info.get(k) for k in ("run", "model", "backend", "calibrated", "temperature")}
    return json.dumps({"model": model, "results": results}, separators=(",", ":")).encode()


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _attribution(predictor: Predictor, prepared, target: int, attribution) -> dict:
    """The map of one image as JSON: what it explains, its overlay on the model input, its values (4 digits)."""
    from ..explain.overlay import overlay_png

    return {"method": predictor.info["attribution"], "label": predictor.classes[target], "index": target,
            "overlay_png": _data_url(overlay_png(prepared.pixels, attribution)),
            "map": [[float(f"{v:.4g}") for v in row] for row in attribution.tolist()]}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port; choose one from 0 to 65535")


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise FashionlabError(f"cannot listen on {host}:{port} ({err.strerror}); "
                                  "choose another --port or stop what uses it") from None


def serve(run=None, root=None, host: str = "127.0.0.1", port: int = 8000, onnx=None, threads: int = 1,
          calibration: bool = True) -> None:
    """Load the model once, then serve until interrupted; `calibration`: serve the calibrated probabilities when
    the run (or the ONNX file) has a temperature.

    One inference thread per request (threads=1): with several requests in flight that uses the cores
    better than every request fighting for all of them.
    """
    import uvicorn

    check_port(port)
    if not is_loopback(host):
        print(f"fashionlab: warning: listening on {host}, not only this machine: anyone who can reach it may use "
              "the server, which has no authentication", file=sys.stderr, flush=True)
    _check_port_free(host, port)
    predictor = (load_onnx_predictor(onnx, threads, calibration) if onnx
                 else load_torch_predictor(run, root, threads, calibration))
    info = predictor.info
    calibrated = f", calibrated with T = {info['temperature']:.3f}" if info.get("calibrated") else ""
    print(f"serving {info.get('model')} (run {info.get('run')}, {info.get('backend')}{calibrated}) "
          f"on http://{host}:{port}/  (API docs: /docs)", flush=True)
    # uvicorn takes httptools and uvloop where they are installed (uvicorn[standard]): less CPU per request than
    # h11 and asyncio's own loop
    uvicorn.run(create_app(predictor), host=host, port=port, log_level="warning", access_log=False)
