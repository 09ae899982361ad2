"""The web page and JSON API (FastAPI): `create_app(predictor)` builds it, `serve(...)` runs it with uvicorn."""

from .app import MAX_BYTES, MAX_FILES, create_app, serve

__all__ = ["MAX_BYTES", "MAX_FILES", "create_app", "serve"]
