"""The study's small experiments trained side by side, each a `fashionlab train` process of its own.

The paper's MLPs are too small to keep two cores busy: one of them trains only ~1.3x faster on two threads than on
one, so two single-thread runs at once finish ~1.6x sooner than the same runs one after another on two threads.
Experiments whose settings ask for a fixed number of threads on a CPU run this way, as many at once as the
machine's cores allow; the rest (the CNN rows) train one at a time in the study's own process, on every core.

Each process runs the experiment's own `fashionlab train` command (config.train_command), so a run trained here is
the run that command makes, its output goes to OUT/logs/NAME.log, and it dies with the study (a killed study leaves
its runs resumable, as a killed `fashionlab train` does). Ctrl-C stops every run after its current step, with its
progress saved: the study passes it on to each process once (they run in sessions of their own, so the terminal's
Ctrl-C does not reach them twice). A run that starts from another's weights (`init_from = "@KEY"`) waits for that run.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig, train_command, usable_cores
from ..errors import RunError
from ..runs import Run, open_run
from ..training.loop import Interrupted
from ..training.precision import resolve_device

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 30  # a run stops after its current step; a slow evaluation can hold it this long


def width(config: RunConfig) -> int:
    """How many runs like `config` train at once: 1 unless it fixes its threads on a CPU with cores to spare."""
    if not config.threads or resolve_device(config.device).type != "cpu":
        return 1
    return max(1, usable_cores() // config.threads)


@dataclass
class Job:
    key: str                       # the experiment's key
    label: str
    config: RunConfig
    after: str | None = None       # the run name this one starts from, trained first
    resume: Path | None = None     # an unfinished run to continue
    overwrite: bool = False        # a run of that name exists with other settings, or cannot be continued
    estimate: float = 0.0          # seconds, for the order: longest first
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    def command(self, root: Path) -> list[str]:
        base = [sys.executable, "-m", "fashionlab", "train"]
        if self.resume is not None:
            return base + ["--resume", str(self.resume), "--runs-dir", str(root), "--no-progress"]
        flags = shlex.split(train_command(self.config))[2:]
        return base + flags + ["--runs-dir", str(root), "--no-progress"] + (["--overwrite"] if self.overwrite else [])


def _die_with_parent() -> None:
    """In the child, before it runs: the kernel kills it when the study's process dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def train_side_by_side(jobs: list[Job], root: Path, logs: Path, at_once: int, on_done) -> dict[str, Run]:
    """Train `jobs`, `at_once` at a time, longest estimate first; `on_done(job, run)` after each. Returns the runs
    by name. A failed run stops the rest (each saves its progress) and raises RunError naming its log."""
    logs.mkdir(parents=True, exist_ok=True)
    waiting = sorted(jobs, key=lambda j: -j.estimate)
    running: list[Job] = []
    done: dict[str, Run] = {}
    try:
        while waiting or running:
            for job in [j for j in waiting if j.after is None or j.after in done][:at_once - len(running)]:
                waiting.remove(job)
                _start(job, root, logs)
                running.append(job)
            if waiting and not running:
                raise RunError(f"{waiting[0].name} starts from {waiting[0].after}, which is not among the runs "
                               "trained side by side")
            time.sleep(POLL_SECONDS)
            for job in [j for j in running if j.process.poll() is not None]:
                running.remove(job)
                if job.process.returncode != 0:
                    _stop(running)
                    raise RunError(f"{job.name} failed (exit {job.process.returncode}): "
                                   f"{_last_line(logs / f'{job.name}.log')}; its log: {logs / f'{job.name}.log'}")
                done[job.name] = open_run(job.name, root)
                _echo_result(job, logs)
                on_done(job, done[job.name])
    except KeyboardInterrupt:
        _stop(running)
        raise Interrupted("interrupted; finished runs are kept and the others saved their progress. Run the same "
                          "command again to continue") from None
    return done


def _start(job: Job, root: Path, logs: Path) -> None:
    how = "resuming" if job.resume is not None else "training"
    print(f"[study] {job.name}: {how} {job.label} (beside others; log: {logs / f'{job.name}.log'})", file=sys.stderr)
    with open(logs / f"{job.name}.log", "a" if job.resume is not None else "w") as log:  # a resumed run's log goes on
        job.process = subprocess.Popen(job.command(root), stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                                       start_new_session=True,  # a Ctrl-C reaches it once, from _stop
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stop(running: list[Job]) -> None:
    """Ask each run to stop after its current step (saving its progress); kill what has not stopped in time."""
    for job in running:
        if job.process.poll() is None:
            job.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for job in running:
        try:
            job.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            job.process.kill()
            job.process.wait()


def _echo_result(job: Job, logs: Path) -> None:
    """The run's own one-line result (`NAME: test accuracy ...`), from its log."""
    lines = (logs / f"{job.name}.log").read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith(f"{job.name}: "):
            print(line, file=sys.stderr)
            return


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
    return lines[-1].strip() if lines else "no output"
