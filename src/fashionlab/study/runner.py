"""The runner that reproduces the original study: every experiment of a preset is an ordinary run directory under
OUT/runs, so a study can be inspected, resumed and re-used: a finished run with the planned config is kept, an
unfinished one resumes from its checkpoint. Then it writes OUT/report.html.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import torch

from ..data import load_fashion_mnist
from ..errors import ConfigError, FashionlabError
from ..report import Entry, build_study_report, cpu_name
from ..runs import Run, open_run
from ..tables import duration
from ..training.loop import train
from .estimate import Estimates, fit_to_budget
from .findings import check_findings
from .plan import PRESETS, Experiment, experiment_config, experiments
from .table1 import table1


def run_experiment(exp: Experiment, seed: int, root: Path, data, data_dir=None, show_progress=None) -> Run:
    """Train one experiment unless a finished run with the same config exists; resume an unfinished one."""
    config = experiment_config(exp, seed, data_dir, root)
    existing = _existing(config, root)
    if existing is not None and existing.config().to_dict() == config.to_dict():
        if existing.finished:
            print(f"[study] {config.name}: finished earlier, reused", file=sys.stderr)
            return existing
        if existing.last_checkpoint.is_file():
            print(f"[study] {config.name}: resuming from its checkpoint", file=sys.stderr)
            return train(config, root=root, resume=existing.path, data=data, show_progress=show_progress)
    print(f"[study] {config.name}: training {exp.label}", file=sys.stderr)
    return train(config, root=root, overwrite=existing is not None, data=data, show_progress=show_progress)


def _existing(config, root: Path) -> Run | None:
    try:
        return open_run(config.name, root)
    except FashionlabError:
        return None


def _finished_already(config, root: Path) -> bool:
    run = _existing(config, root)
    try:
        return run is not None and run.finished and run.config().to_dict() == config.to_dict()
    except FashionlabError:
        return False


def plan_study(preset: str, seeds: int, root: Path, data_dir=None, budget_seconds: float | None = None):
    """(experiments, estimated seconds per key still to train): the preset's plan, its CNN rows resized to
    `budget_seconds` when given, each run not yet finished timed on this machine."""
    exps = experiments(preset)
    unique = {x.key: x for x in exps}
    configs = {k: experiment_config(x, 0, data_dir, root) for k, x in unique.items()}
    estimates = Estimates()
    for key, config in configs.items():
        estimates.add(key, config)
    if budget_seconds is not None:
        epochs = fit_to_budget(configs, PRESETS[preset].get("scaled", ()), estimates, budget_seconds, seeds)
        for x in exps:
            if x.key in epochs:
                x.settings = {**x.settings, "epochs": epochs[x.key]}
        for key in epochs:
            configs[key] = experiment_config(unique[key], 0, data_dir, root)
            estimates.add(key, configs[key])
    todo = {k: seeds * estimates.seconds[k] for k, x in unique.items()
            if not all(_finished_already(experiment_config(x, s, data_dir, root), root) for s in range(seeds))}
    return exps, todo


def run_study(preset: str = "quick", out: str | Path = "out/study", seeds: int = 1, data_dir=None,
              show_progress=None, command: str | None = None, extra_sections=(),
              budget_seconds: float | None = None) -> Path:
    """Train (or reuse) every experiment of the preset, then write OUT/report.html; returns its path.

    Before training, the study times each network here and prints how long it will take; after each run it prints
    how far it is and an estimate of the time left. `budget_seconds` sizes the CNN rows to the time given
    (`fashionlab study --budget 45m`: parsing.parse_duration).
    `extra_sections`: callables `f(report)` adding sections (e.g. report.add_runs_section)."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if budget_seconds is not None and not budget_seconds > 0:
        raise ConfigError(f"--budget must be longer than 0 s, got {budget_seconds} s")
    out = Path(out)
    root = out / "runs"
    data = load_fashion_mnist(data_dir)
    exps, todo = plan_study(preset, seeds, root, data_dir, budget_seconds)
    print(f"[study] {len(todo)} experiment(s) to train ({seeds} seed(s) each), estimated "
          f"{duration(sum(todo.values()))} on this CPU ({cpu_name()}, {torch.get_num_threads()} threads)",
          file=sys.stderr)
    start = time.perf_counter()
    trained: dict[str, list[Run]] = {}
    entries = []
    done_estimate = 0.0
    for exp in exps:
        if exp.key not in trained:
            trained[exp.key] = [run_experiment(exp, seed, root, data, data_dir, show_progress)
                                for seed in range(seeds)]
            if exp.key in todo:
                done_estimate += todo.pop(exp.key)
                _progress(time.perf_counter() - start, done_estimate, sum(todo.values()), len(todo))
        entries.append(Entry(exp.label, trained[exp.key], exp.group, exp.key))
    wall = time.perf_counter() - start
    print(f"[study] all runs ready after {duration(wall)}; writing the report", file=sys.stderr)
    runs = {key: runs for key, runs in trained.items()}
    report = build_study_report(entries, out, preset=preset, seeds=seeds, data=data, extra_sections=extra_sections,
                                findings=check_findings(runs),
                                budget_seconds=budget_seconds,
                                command=command or shlex.join(["fashionlab", "study", "--preset", preset,
                                                               "--seeds", str(seeds), "--out", str(out)]))
    table = [(e.label, [r.metrics() for r in e.runs]) for e in entries if e.group in ("table1", "early_stopping")]
    print("Table 1: Key metrics after training (test set)\n" + table1(table))
    return report


def _progress(elapsed: float, done_estimate: float, left_estimate: float, left: int) -> None:
    """One line after each experiment: time so far, and the time left at the pace measured so far."""
    # the pace measured here corrects the estimates once enough has run to measure it (short runs are mostly set-up)
    pace = elapsed / done_estimate if done_estimate > 60 else 1.0
    tail = f"; about {duration(left_estimate * pace)} to go ({left} experiment(s) left)" if left else ""
    print(f"[study] {duration(elapsed)} so far{tail}", file=sys.stderr)
