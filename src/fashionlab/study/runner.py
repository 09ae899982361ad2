"""The runner that reproduces the original study: every experiment of a preset is an ordinary run directory under
OUT/runs, so a study can be inspected, resumed and re-used: a finished run with the planned config is kept, an
unfinished one resumes from its checkpoint. Then it writes OUT/report.html.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from ..data import load_fashion_mnist
from ..errors import ConfigError
from ..report import Entry, build_study_report
from ..runs import Run, open_run
from ..tables import duration
from ..training.loop import train
from .plan import Experiment, experiment_config, experiments
from .table1 import table1


def run_experiment(exp: Experiment, seed: int, root: Path, data, data_dir=None, show_progress=None) -> Run:
    """Train one experiment unless a finished run with the same config exists; resume an unfinished one."""
    config = experiment_config(exp, seed, data_dir)
    try:
        existing = open_run(config.name, root)
    except Exception:
        existing = None
    if existing is not None and existing.config().to_dict() == config.to_dict():
        if existing.finished:
            print(f"[study] {config.name}: finished earlier, reused", file=sys.stderr)
            return existing
        if existing.last_checkpoint.is_file():
            print(f"[study] {config.name}: resuming from its checkpoint", file=sys.stderr)
            return train(config, root=root, resume=existing.path, data=data, show_progress=show_progress)
    print(f"[study] {config.name}: training {exp.label}", file=sys.stderr)
    return train(config, root=root, overwrite=existing is not None, data=data, show_progress=show_progress)


def run_study(preset: str = "quick", out: str | Path = "out/study", seeds: int = 1, data_dir=None,
              show_progress=None, command: str | None = None, extra_sections=()) -> Path:
    """Train (or reuse) every experiment of the preset, then write OUT/report.html; returns its path.

    `extra_sections`: callables `f(report)` adding sections (e.g. report.add_runs_section for "Beyond the paper")."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    exps = experiments(preset)
    out = Path(out)
    root = out / "runs"
    data = load_fashion_mnist(data_dir)
    start = time.perf_counter()
    trained: dict[str, list[Run]] = {}
    entries = []
    for exp in exps:
        if exp.key not in trained:
            trained[exp.key] = [run_experiment(exp, seed, root, data, data_dir, show_progress)
                                for seed in range(seeds)]
        entries.append(Entry(exp.label, trained[exp.key], exp.group, exp.key))
    wall = time.perf_counter() - start
    print(f"[study] all runs ready after {duration(wall)}; writing the report", file=sys.stderr)
    report = build_study_report(entries, out, preset=preset, seeds=seeds, data=data, extra_sections=extra_sections,
                                command=command or shlex.join(["fashionlab", "study", "--preset", preset,
                                                               "--seeds", str(seeds), "--out", str(out)]))
    table = [(e.label, [r.metrics() for r in e.runs]) for e in entries if e.group in ("table1", "early_stopping")]
    print("Table 1: Key metrics after training (test set)\n" + table1(table))
    return report
