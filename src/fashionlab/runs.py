"""Run directories: `runs/<name>/` with config.json, history.csv, checkpoints/, and metrics.json.

A run is finished only when its status says so, and that is written last, after metrics.json and
model.pt: an interrupted or crashed run can never be mistaken for a finished one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig
from .errors import RunError
from .parsing import number_or_text

STATES = ("running", "interrupted", "failed", "finished")


def runs_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("FASHIONLAB_RUNS", "runs"))


def is_writer() -> bool:
    """Under torchrun every process runs the same code; only rank 0 writes run files (see training/distributed.py)."""
    return os.environ.get("RANK", "0") == "0"


def write_atomic(path: Path, text: str) -> None:
    if not is_writer():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@dataclass
class Run:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    # files
    config_path = property(lambda self: self.path / "config.json")
    history_path = property(lambda self: self.path / "history.csv")
    metrics_path = property(lambda self: self.path / "metrics.json")
    status_path = property(lambda self: self.path / "status.json")
    model_path = property(lambda self: self.path / "model.pt")
    predictions_path = property(lambda self: self.path / "test_predictions.npz")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")

    def config(self) -> RunConfig:
        try:
            return RunConfig.from_dict(json.loads(self.config_path.read_text()))
        except FileNotFoundError:
            raise RunError(f"{self.path} is not a run directory (no config.json)") from None

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"state": "unknown"}

    @property
    def state(self) -> str:
        return self.status().get("state", "unknown")

    @property
    def finished(self) -> bool:
        return self.state == "finished" and self.metrics_path.is_file()

    def set_status(self, state: str, **info) -> None:
        assert state in STATES
        write_atomic(self.status_path, json.dumps({"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                   **info}, indent=1))

    def metrics(self) -> dict:
        if not self.finished:
            raise RunError(f"run {self.name} is not finished (state: {self.state}); "
                           f"resume it with 'fashionlab train --resume {self.path}'")
        return json.loads(self.metrics_path.read_text())

    def history(self) -> list[dict]:
        if not self.history_path.is_file():
            return []
        with open(self.history_path, newline="") as fh:
            return [{k: number_or_text(v) for k, v in row.items()} for row in csv.DictReader(fh)]

    def write_history(self, rows: list[dict]) -> None:
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.history_path, buf.getvalue())

    def write_json(self, path: Path, value) -> None:
        write_atomic(path, json.dumps(value, indent=1))


def create_run(config: RunConfig, root: str | Path | None = None, overwrite: bool = False) -> Run:
    """A new run directory for `config`; refuses to clobber an existing run unless `overwrite`."""
    name = config.name or f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = Run(runs_root(root) / name)
    if run.path.exists():
        if not overwrite:
            hint = ("choose another --name or pass --overwrite" if run.finished
                    else f"continue it with 'fashionlab train --resume {run.path}' or pass --overwrite")
            raise RunError(f"run {run.path} already exists (state: {run.state}); {hint}")
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True)
    run.write_json(run.config_path, {**config.to_dict(), "name": name})
    run.set_status("running")
    return run


def open_run(name_or_path: str | Path, root: str | Path | None = None) -> Run:
    """A run by its directory path or by its name under the runs root."""
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        path = runs_root(root) / name_or_path
    if not (path / "config.json").is_file():
        raise RunError(f"no run '{name_or_path}' (looked for {path}/config.json); 'fashionlab runs' lists them")
    return Run(path)


def list_runs(root: str | Path | None = None) -> list[Run]:
    base = runs_root(root)
    if not base.is_dir():
        return []
    return sorted((Run(p.parent) for p in base.glob("*/config.json")), key=lambda r: r.path.stat().st_mtime)
