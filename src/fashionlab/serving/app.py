"""FastAPI app: `GET /` page, `POST /predict` (multipart photos -> JSON), `GET /model`, `GET /health`, `/docs`.

The model is loaded once, before the app is built. Decoding, preprocessing and inference run in the
threadpool so a slow upload or a big photo never blocks the event loop. Every bad upload is a 4xx JSON
error `{"error": code, "detail": message, "file": name}` and the server keeps serving.
"""

import base64
import socket
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from ..errors import FashionlabError
from .predict import Predictor, load_onnx_predictor, load_torch_predictor
from .preprocess import MAX_PIXELS, ImageError, prepare_file

MAX_BYTES = 10 * 1024 * 1024  # per file
MAX_FILES = 16  # per request
STATUS = {"empty": 400, "damaged": 400, "not_an_image": 415, "too_large": 413, "too_many_pixels": 413,
          "too_many_files": 413, "no_files": 400}


def _error(code: str, detail: str, file: str | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, "file": file}, status_code=STATUS[code])


def create_app(predictor: Predictor) -> FastAPI:
    app = FastAPI(title="fashionlab", summary="Classify clothing photos with a Fashion-MNIST model.",
                  version="1")
    page = resources.files(__package__).joinpath("page.html").read_text()
    model_info = {**predictor.info, "classes": predictor.classes, "input_size": [28, 28],
                  "mean": predictor.mean, "std": predictor.std,
                  "limits": {"max_files": MAX_FILES, "max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS}}

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next):
        # Refuse before the body is read when the client announces more than the limits could ever allow.
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FILES * MAX_BYTES + 1024 * 1024:
            return _error("too_large", f"request body of {int(length):,} bytes is larger than "
                                       f"{MAX_FILES} files of {MAX_BYTES // 2**20} MB")
        return await call_next(request)

    @app.exception_handler(ImageError)
    async def image_error(request: Request, err: ImageError):
        return _error(err.code, str(err), err.file)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    async def model() -> dict:
        """The loaded model: run, network, accuracies, class names, input size and upload limits."""
        return model_info

    n_classes = len(predictor.classes)  # (no `from __future__ import annotations` here: FastAPI reads these)

    @app.post("/predict")
    async def predict(files: Annotated[list[UploadFile], File(description="one or more photos")],
                      top_k: Annotated[int, Query(ge=1, le=n_classes)] = 3) -> dict:
        """Classify photos: for each, the 28x28 image the model saw (PNG, base64) and the top-k classes."""
        if not files:
            return _error("no_files", "send one or more photos as multipart field 'files'")
        if len(files) > MAX_FILES:
            return _error("too_many_files", f"{len(files)} files sent; at most {MAX_FILES} per request")
        blobs = []
        for upload in files:
            if upload.size is not None and upload.size > MAX_BYTES:
                return _error("too_large", f"{upload.filename} is {upload.size:,} bytes; at most "
                                           f"{MAX_BYTES // 2**20} MB per file", upload.filename)
            blobs.append((upload.filename or "upload", await upload.read(MAX_BYTES + 1)))
            if len(blobs[-1][1]) > MAX_BYTES:
                return _error("too_large", f"{upload.filename} is larger than {MAX_BYTES // 2**20} MB",
                              upload.filename)
        return await run_in_threadpool(_classify, predictor, blobs, top_k)

    return app


def _classify(predictor: Predictor, blobs: list[tuple[str, bytes]], top_k: int) -> dict:
    prepared = []
    for name, data in blobs:
        try:
            prepared.append(prepare_file(data, name))
        except ImageError as err:
            err.file = name
            raise
    results = []
    for (name, _), p, probs in zip(blobs, prepared, predictor.probabilities(prepared)):
        results.append({
            "file": name, "width": p.original_size[0], "height": p.original_size[1], "negated": p.negated,
            "input_png": "data:image/png;base64," + base64.b64encode(p.png()).decode("ascii"),
            "top": predictor.top(probs, top_k),
            "probabilities": {c: float(v) for c, v in zip(predictor.classes, probs)},
        })
    return {"model": {k: predictor.info.get(k) for k in ("run", "model", "backend")}, "results": results}


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise FashionlabError(f"cannot listen on {host}:{port} ({err.strerror}); "
                                  "choose another --port or stop what uses it") from None


def serve(run=None, root=None, host: str = "127.0.0.1", port: int = 8000, onnx=None, threads: int = 1) -> None:
    """Load the model once, then serve until interrupted.

    One inference thread per request (threads=1): with several requests in flight that uses the cores
    better than every request fighting for all of them.
    """
    import uvicorn

    _check_port_free(host, port)
    predictor = load_onnx_predictor(onnx, threads) if onnx else load_torch_predictor(run, root, threads)
    info = predictor.info
    print(f"serving {info.get('model')} (run {info.get('run')}, {info.get('backend')}) "
          f"on http://{host}:{port}/  (API docs: /docs)", flush=True)
    uvicorn.run(create_app(predictor), host=host, port=port, log_level="warning")
