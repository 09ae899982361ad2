"""Run directories: `runs/<name>/` with config.json, history.csv, checkpoints/, and metrics.json.

A run is finished only when its status says so, and that is written last, after metrics.json and
model.pt: an interrupted or crashed run can never be mistaken for a finished one.

A run is owned by the process that trains it: that process holds an OS lock (flock) on RUN/.lock and
writes its PID there. The kernel drops the lock when the process ends in any way, Ctrl-C, crash or
SIGKILL, so a lock is never stale, and a run whose status still says "running" while nobody holds its
lock was interrupted and can be resumed.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

from .config import RunConfig
from .errors import ConfigError, DamagedRun, RunBusy, RunError
from .parsing import number_or_text

STATES = ("running", "interrupted", "failed", "finished")
LOCK_WAIT = 0.5  # seconds to retry a lock that another process only probes (`Run.lock_holder`)


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


def _read_json(path: Path) -> dict:
    """A run file's JSON object; DamagedRun naming the file and what is wrong with it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DamagedRun(path, f"not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise DamagedRun(path, f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except IsADirectoryError:
        raise DamagedRun(path, "a folder, not a file") from None
    except PermissionError:
        raise DamagedRun(path, "permission denied") from None
    if not isinstance(value, dict):
        raise DamagedRun(path, f"holds a JSON {type(value).__name__}, not an object")
    return value


class RunLock:
    """The exclusive lock of one run directory, taken with flock on its .lock file."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, run_path: Path) -> RunLock:
        """Take the lock and write this process's PID into it; RunBusy (with the holder's PID) when it is held."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise RunError(f"cannot lock run {run_path}: {self.path}: {err.strerror}") from None
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                held = err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
                if held and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                pid = _pid_in(fd)
                os.close(fd)
                if not held:
                    raise RunError(f"cannot lock run {run_path}: {err.strerror}") from None
                raise RunBusy(busy_message(run_path, pid)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _pid_in(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def busy_message(run_path: Path, pid: int) -> str:
    holder = f"process {pid}" if pid else "another process"
    stop = f"stop it (Ctrl-C there, or 'kill {pid}')" if pid else "stop it"
    return (f"run {run_path} is being trained by {holder} (it holds {run_path}/.lock); wait for it to finish, or "
            f"{stop} and continue with 'fashionlab train --resume {run_path}'")


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
    lock_path = property(lambda self: self.path / ".lock")
    model_path = property(lambda self: self.path / "model.pt")
    predictions_path = property(lambda self: self.path / "test_predictions.npz")
    budget_path = property(lambda self: self.path / "budget.json")  # a budget run's plan (training/budget.py)
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")

    def config_values(self) -> dict:
        """config.json as saved, unchecked; DamagedRun when it is not a JSON object."""
        try:
            return _read_json(self.config_path)
        except FileNotFoundError:
            raise RunError(f"{self.path} is not a run directory (no config.json)") from None

    def config(self) -> RunConfig:
        values = self.config_values()
        known = {f.name for f in fields(RunConfig)} | set(_retired_settings())
        unknown = sorted(set(values) - known)
        if unknown:
            raise DamagedRun(self.config_path, f"unknown setting(s) {', '.join(unknown)} (written by a newer "
                                               "fashionlab?)")
        try:
            return RunConfig.from_dict(values)
        except ConfigError as err:
            problem = str(err)
        # threads is checked against this machine's cores: a run trained on a larger machine is not damaged
        threads = values.get("threads")
        if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
            try:
                config = RunConfig.from_dict({**values, "threads": 0})
            except ConfigError:
                pass
            else:
                config.threads = threads
                return config
        raise DamagedRun(self.config_path, problem)

    def budget_plan(self) -> dict:
        """budget.json as saved: the plan a budget run fixed when it started."""
        try:
            return _read_json(self.budget_path)
        except FileNotFoundError:
            raise DamagedRun(self.budget_path, "missing; a run with a budget keeps its fitted plan there") from None

    def status(self) -> dict:
        """status.json; state "unknown" when it is missing, with `damage` saying why when it cannot be read."""
        try:
            status = _read_json(self.status_path)
        except FileNotFoundError:
            return {"state": "unknown"}
        except DamagedRun as err:
            return {"state": "unknown", "damage": f"{self.status_path.name}: {err.reason}"}
        return status if status.get("state") in STATES else {**status, "state": "unknown"}

    @property
    def state(self) -> str:
        """The saved state, except that a "running" run nobody holds the lock of is "interrupted"."""
        state = self.status()["state"]
        if state == "running" and self.lock_holder() is None:
            return "interrupted"
        return state

    def lock_holder(self) -> int | None:
        """The PID of the process that holds this run's lock (0 if it has not written it yet); None when free."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError:
            return 0  # cannot tell: taken as held, so a live run is never called interrupted
        try:
            # a shared lock conflicts only with the trainer's exclusive one; LOCK_WAIT lets a trainer retry past it
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except OSError:
            return _pid_in(fd)
        finally:
            os.close(fd)  # also drops the probe's shared lock

    def lock(self) -> RunLock:
        """Take this run's lock for the caller's process (RunBusy while another process trains it)."""
        return RunLock(self.lock_path).acquire(self.path)

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
        return _read_json(self.metrics_path)

    def history(self) -> list[dict]:
        if not self.history_path.is_file():
            return []
        try:
            with open(self.history_path, newline="", encoding="utf-8") as fh:
                return [{k: number_or_text(v) for k, v in row.items()} for row in csv.DictReader(fh)]
        except UnicodeDecodeError as err:
            raise DamagedRun(self.history_path, f"not UTF-8 text (byte {err.start})") from None
        except csv.Error as err:
            raise DamagedRun(self.history_path, f"not a CSV table ({err})") from None

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


def _retired_settings() -> dict:
    from . import config
    return getattr(config, "RETIRED", {})  # settings older runs may hold that RunConfig drops when it loads them


def run_name(config: RunConfig) -> str:
    return config.name or f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"


class NewRun:
    """The claim of runs/NAME for a new run, in two steps, so that nothing is replaced before the caller's checks.

    Making it checks the name: a run there that another process trains is refused (RunBusy), any other run is
    refused unless `overwrite`, and is then locked so that nobody resumes it meanwhile. `create()` builds the new
    run beside it, as runs/.NAME.new-PID (run names never start with a dot), and renames it into place: the old
    run stays whole until then. `close()` releases the old run's lock; the new run's lock is held until the
    claim closes, so use it as a context manager around the training.
    """

    def __init__(self, config: RunConfig, root: str | Path | None = None, overwrite: bool = False):
        self.config, self.name = config, run_name(config)
        self.path = runs_root(root) / self.name
        self.run: Run | None = None
        self._old_lock: RunLock | None = None
        self._lock: RunLock | None = None
        self._replace = self.path.exists() or self.path.is_symlink()
        if self._replace:
            old = Run(self.path)
            state, finished = old.state, old.finished  # read before this process's own lock would make it "running"
            self._old_lock = old.lock() if self.path.is_dir() else None
            if not overwrite:
                self.close()
                hint = ("choose another --name or pass --overwrite" if finished
                        else f"continue it with 'fashionlab train --resume {old.path}' or pass --overwrite")
                raise RunError(f"run {old.path} already exists (state: {state}); {hint}")

    def create(self, config: RunConfig | None = None, files: dict | None = None) -> Run:
        """The new run, locked by this process, with its config.json and status "running", at runs/NAME.
        `config`: the settings to save where they changed since the claim (a budget fixes `epochs`); `files`:
        more JSON files to write with it, {file name: value}."""
        staging = self.path.with_name(f".{self.name}.new-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)  # left by an earlier process that had this PID
        staging.mkdir(parents=True)
        try:
            self._lock = RunLock(staging / ".lock").acquire(staging)  # the lock goes with the folder's renames
            new = Run(staging)
            new.write_json(new.config_path, {**(config or self.config).to_dict(), "name": self.name})
            for name, value in (files or {}).items():
                new.write_json(new.path / name, value)
            new.set_status("running")
            if self._replace:
                old = self.path.with_name(f".{self.name}.old-{os.getpid()}")
                os.rename(self.path, old)
                os.rename(staging, self.path)
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
            else:
                try:
                    os.rename(staging, self.path)
                except OSError:  # another process made a run of this name after the check: never rename over it
                    raise RunBusy(f"run {self.path} was just created by another process; choose another "
                                  "--name") from None
        except BaseException:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if self._old_lock is not None:
            self._old_lock.release()
            self._old_lock = None
        self.run = Run(self.path)
        return self.run

    def close(self) -> None:
        for lock in (self._old_lock, self._lock):
            if lock is not None:
                lock.release()
        self._old_lock = self._lock = None

    def __enter__(self) -> NewRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_run(config: RunConfig, root: str | Path | None = None, overwrite: bool = False) -> Run:
    """A new run directory for `config`, not locked; refuses to clobber an existing run unless `overwrite`.
    Training uses `NewRun`, which keeps the lock while it trains."""
    with NewRun(config, root, overwrite) as claim:
        return claim.create()


# the settings `train --resume` may change: where and how fast the run trains, not what it computes, and its
# length where nothing was laid out over that length (see resume_config)
RESUMABLE = ("epochs", "threads", "device", "data_dir")
_MAY_CHANGE = (f"--resume may change only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} (--epochs: only "
               "more, only with --scheduler none and no --prune, and not for a run with a --budget)")


def resume_config(run: Run, changes: dict | None = None) -> RunConfig:
    """The settings to resume `run` with: its config.json with `changes` (settings given again on the command
    line) applied. A change to a setting outside RESUMABLE is a ConfigError that lists them all; a value equal to
    the saved one is no change. `epochs` may only grow, and only where the learning-rate schedule and pruning do
    not depend on the run's length (scheduler none, prune 0): both are laid out over the steps at the start."""
    saved = run.config_values()
    changes = {k: v for k, v in (changes or {}).items() if v is not None}
    allowed = {k: v for k, v in changes.items() if k in RESUMABLE}
    try:
        base = RunConfig.from_dict({**saved, **allowed})
    except ConfigError as err:
        unknown = sorted(set(saved) - {f.name for f in fields(RunConfig)} - set(_retired_settings()))
        if unknown:
            raise DamagedRun(run.config_path, f"unknown setting(s) {', '.join(unknown)} (written by a newer "
                                              "fashionlab?)") from None
        raise ConfigError(f"run {run.path} cannot resume with its saved settings: {err}; {_MAY_CHANGE}") from None
    wanted = RunConfig.from_dict({**base.to_dict(), **changes})
    refused = [f"--{k.replace('_', '-')} (run: {getattr(base, k)!r}, given: {getattr(wanted, k)!r})"
               for k in changes if k not in RESUMABLE and getattr(wanted, k) != getattr(base, k)]
    if refused:
        raise ConfigError(f"--resume continues a run with its own settings; it cannot change {', '.join(refused)}; "
                          f"{_MAY_CHANGE}; start a new run for other settings")
    original = saved.get("epochs")
    if "epochs" in changes and original is not None and base.epochs != original:
        if base.budget:
            raise ConfigError(f"--epochs cannot change on resume: run {run.name} trains the {original} epochs its "
                              f"budget of {base.budget} bought when it started")
        if base.epochs < original:
            raise ConfigError(f"--epochs {base.epochs} on resume would shorten run {run.name} ({original} epochs); "
                              "resume may only train longer")
        if base.scheduler != "none":
            raise ConfigError(f"--epochs cannot change on resume: run {run.name}'s {base.scheduler} learning-rate "
                              f"schedule was laid out over its {original} epochs when it started")
        if base.prune:
            raise ConfigError(f"--epochs cannot change on resume: run {run.name}'s pruning keeps its full-data "
                              f"tail in the last part of its {original} epochs, fixed when it started")
    return base


def record_resumed_settings(run: Run, config: RunConfig) -> None:
    """Save the RESUMABLE settings a resume changed into config.json, so that the run's listing and its next resume
    see them; every other saved value stays as it was written."""
    saved = run.config_values()
    updated = {**saved, **{k: getattr(config, k) for k in RESUMABLE if k in saved or getattr(config, k)}}
    if updated != saved:
        run.write_json(run.config_path, updated)


def open_run(name_or_path: str | Path, root: str | Path | None = None) -> Run:
    """A run by its directory path or by its name under the runs root."""
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        path = runs_root(root) / name_or_path
    if not (path / "config.json").is_file():
        raise RunError(f"no run '{name_or_path}' (looked for {path}/config.json); 'fashionlab runs' lists them")
    return Run(path)


def list_runs(root: str | Path | None = None) -> list[Run]:
    """The runs under `root`, oldest first. Folders whose names start with a dot are runs being built or replaced
    (NewRun), not runs."""
    base = runs_root(root)
    if not base.is_dir():
        return []
    found = []
    for config in base.glob("*/config.json"):
        if config.parent.name.startswith("."):
            continue
        try:
            found.append((config.parent.stat().st_mtime, Run(config.parent)))
        except FileNotFoundError:  # renamed away since the listing
            continue
    return [run for _, run in sorted(found, key=lambda pair: pair[0])]
