"""The runner that reproduces the original study: every experiment of a preset is an ordinary run directory under
OUT/runs, so a study can be inspected, resumed and re-used: a finished run with the planned config is kept, an
unfinished one resumes from its checkpoint. Then it writes OUT/report.html.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import torch

from ..data import load_fashion_mnist
from ..errors import ConfigError, FashionlabError
from ..parsing import duration_text
from ..report import Entry, build_study_report, cpu_name
from ..runs import Run, open_run, write_atomic
from ..tables import duration
from ..training.loop import train
from ..training.precision import bf16_supported, resolve_device
from .estimate import Estimates, fit_to_budget
from .findings import check_findings
from .plan import PRESETS, Experiment, experiment_config, experiments
from .side_by_side import Job, train_side_by_side, width
from .table1 import table1


def run_experiment(exp: Experiment, seed: int, root: Path, data, data_dir=None, show_progress=None) -> Run:
    """Train one experiment unless a finished run with the same config exists; resume an unfinished one."""
    config = experiment_config(exp, seed, data_dir, root)
    action, existing = _decision(config, root)
    if action == "reuse":
        print(f"[study] {config.name}: finished earlier, reused", file=sys.stderr)
        return existing
    if action == "resume":
        print(f"[study] {config.name}: resuming from its checkpoint", file=sys.stderr)
        return train(config, root=root, resume=existing.path, data=data, show_progress=show_progress)
    print(f"[study] {config.name}: training {exp.label}", file=sys.stderr)
    return train(config, root=root, overwrite=existing is not None, data=data, show_progress=show_progress)


def _decision(config, root: Path) -> tuple[str, Run | None]:
    """("reuse", the finished run of these settings), ("resume", the unfinished one with a checkpoint), or
    ("train", the run of that name it replaces, or None)."""
    existing = _existing(config, root)
    if existing is not None and existing.config().to_dict() == config.to_dict():
        if existing.finished:
            return "reuse", existing
        if existing.last_checkpoint.is_file():
            return "resume", existing
    return "train", existing


def _finished_already(config, root: Path) -> bool:
    try:
        return _decision(config, root)[0] == "reuse"
    except FashionlabError:
        return False


def _existing(config, root: Path) -> Run | None:
    try:
        return open_run(config.name, root)
    except FashionlabError:
        return None


BUDGET_FILE = "budget.json"  # OUT/budget.json: the CNN rows' epochs fitted to a budget (_budget_epochs)


def default_budget(preset: str) -> float | None:
    """The preset's own time for the study's runs on this machine's class (seconds), or None for fixed epochs."""
    minutes = PRESETS.get(preset, {}).get("minutes")  # an unknown preset: plan_study says so
    if minutes is None:
        return None
    return 60 * minutes["bf16" if bf16_supported(resolve_device("auto")) else "fp32"]


def plan_study(preset: str, seeds: int, out: Path, data_dir=None, budget_seconds: float | None = None):
    """(experiments, wall seconds per key still to train, how many runs of each key train at once): the preset's
    plan, its CNN rows resized to `budget_seconds` when given, each run not yet finished timed on this machine."""
    root = out / "runs"
    exps = experiments(preset)
    unique = {x.key: x for x in exps}
    configs = {k: experiment_config(x, 0, data_dir, root) for k, x in unique.items()}
    at_once = {k: width(config) for k, config in configs.items()}
    estimates = Estimates()
    for key, config in configs.items():
        estimates.add(key, config, at_once[key])
    if budget_seconds is not None:
        epochs = _budget_epochs(out / BUDGET_FILE, budget_seconds, seeds, lambda: fit_to_budget(
            configs, PRESETS[preset].get("scaled", ()), estimates, budget_seconds, seeds))
        for x in exps:
            if x.key in epochs:
                x.settings = {**x.settings, "epochs": epochs[x.key]}
        for key in epochs:
            configs[key] = experiment_config(unique[key], 0, data_dir, root)
            estimates.add(key, configs[key], at_once[key])
    todo = {k: seeds * estimates.wall[k] for k, x in unique.items()
            if not all(_finished_already(experiment_config(x, s, data_dir, root), root) for s in range(seeds))}
    return exps, todo, at_once


def _budget_epochs(saved: Path, budget_seconds: float, seeds: int, fit) -> dict[str, float]:
    """The CNN rows' epochs for this budget: fitted (`fit()`) the first time and kept in OUT/budget.json, so that the
    same study run again (resumed after an interruption) plans the same runs and reuses or resumes them, whatever
    this machine's speed does meanwhile. Another budget or seed count fits again."""
    try:
        plan = json.loads(saved.read_text())
        if plan["budget_seconds"] == budget_seconds and plan["seeds"] == seeds:
            return {key: float(value) for key, value in plan["epochs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # none yet, or unreadable: fit anew
    epochs = fit()
    saved.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(saved, json.dumps({"budget_seconds": budget_seconds, "seeds": seeds, "epochs": epochs}, indent=1))
    return epochs


def run_study(preset: str = "quick", out: str | Path = "out/study", seeds: int = 1, data_dir=None,
              show_progress=None, command: str | None = None, extra_sections=(),
              budget_seconds: float | None = None) -> Path:
    """Train (or reuse) every experiment of the preset, then write OUT/report.html; returns its path.

    Before training, the study times each network here and prints how long it will take; after each run it prints
    how far it is and an estimate of the time left. The experiments that fix their threads (the paper's MLPs, one
    thread each) train side by side first (side_by_side.py), then the others one at a time on every core.
    `budget_seconds` sizes the CNN rows to the time given (`fashionlab study --budget 45m`: parsing.parse_duration);
    without it a preset with `minutes` sizes them to its own time for this CPU class (default_budget).
    `extra_sections`: callables `f(report)` adding sections (e.g. report.add_runs_section)."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if budget_seconds is not None and not budget_seconds > 0:
        raise ConfigError(f"--budget must be longer than 0 s, got {budget_seconds} s")
    out = Path(out)
    root = out / "runs"
    data = load_fashion_mnist(data_dir)
    command = command or shlex.join(["fashionlab", "study", "--preset", preset, "--seeds", str(seeds),
                                     "--out", str(out)])
    if budget_seconds is None:
        budget_seconds = default_budget(preset)
    exps, todo, at_once = plan_study(preset, seeds, out, data_dir, budget_seconds)
    unique = list({x.key: x for x in exps}.values())
    beside = [x for x in unique if at_once[x.key] > 1]
    beside_width = min((at_once[x.key] for x in beside), default=1)
    together = f"; {len(beside)} of them {beside_width} at a time" if beside else ""
    print(f"[study] {len(todo)} experiment(s) to train ({seeds} seed(s) each{together}), estimated "
          f"{duration(sum(todo.values()))} on this CPU ({cpu_name()}, {torch.get_num_threads()} threads)",
          file=sys.stderr)
    if budget_seconds is not None:
        sized = [f"{x.key} {x.settings['epochs']:g}" for x in unique if x.key in PRESETS[preset].get("scaled", ())]
        print(f"[study] a budget of {duration_text(budget_seconds)} for the runs: epochs sized to it here: "
              f"{', '.join(sized)} (another time: --budget)", file=sys.stderr)
    progress = _Progress(todo, seeds)
    trained: dict[str, list[Run]] = {}
    if beside:
        trained.update(_train_beside(beside, seeds, root, out / "logs", data_dir, beside_width, progress))
    entries = []
    for exp in exps:
        if exp.key not in trained:
            trained[exp.key] = []
            for seed in range(seeds):
                trained[exp.key].append(run_experiment(exp, seed, root, data, data_dir, show_progress))
                progress.finished(exp.key)
        entries.append(Entry(exp.label, trained[exp.key], exp.group, exp.key))
    print(f"[study] all runs ready after {duration(progress.elapsed())}; writing the report", file=sys.stderr)
    report = build_study_report(entries, out, preset=preset, seeds=seeds, data=data, extra_sections=extra_sections,
                                findings=check_findings(trained), budget_seconds=budget_seconds, command=command)
    table = [(e.label, [r.metrics() for r in e.runs]) for e in entries if e.group in ("table1", "early_stopping")]
    print("Table 1: Key metrics after training (test set)\n" + table1(table))
    return report


def _train_beside(exps: list[Experiment], seeds: int, root: Path, logs: Path, data_dir, at_once: int,
                  progress: _Progress) -> dict[str, list[Run]]:
    """Every seed's run of `exps`, `at_once` of them training at a time; finished ones reused."""
    runs, jobs, names = {}, [], {}
    for exp in exps:
        for seed in range(seeds):
            config = experiment_config(exp, seed, data_dir, root)
            names.setdefault(exp.key, []).append(config.name)
            action, existing = _decision(config, root)
            if action == "reuse":
                print(f"[study] {config.name}: finished earlier, reused", file=sys.stderr)
                runs[config.name] = existing
                continue
            source = exp.settings.get("init_from")
            after = f"{source[1:]}-s{seed}" if isinstance(source, str) and source.startswith("@") else None
            jobs.append(Job(exp.key, exp.label, config, after=None if after in runs else after,
                            resume=existing.path if action == "resume" else None,
                            overwrite=action == "train" and existing is not None,
                            estimate=progress.share(exp.key)))
    progress.beside = True
    try:
        runs.update(train_side_by_side(jobs, root, logs, at_once, lambda job, run: progress.finished(job.key)))
    finally:
        progress.beside = False
    return {key: [runs[name] for name in run_names] for key, run_names in names.items()}


class _Progress:
    """The study's progress lines: after each run, the time so far and the time left at the pace measured so far.

    Runs side by side finish out of step with their estimates (a short one ends while a long one is half done), so
    the pace is measured only from the end of that phase on (`beside` is True during it)."""

    def __init__(self, todo: dict[str, float], seeds: int):
        self.start = time.perf_counter()
        self.per_run = {key: seconds / seeds for key, seconds in todo.items()}  # wall seconds of one seed's run
        self.runs_left = {key: seeds for key in todo}
        self.done_estimate = 0.0
        self.beside = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def share(self, key: str) -> float:
        return self.per_run.get(key, 0.0)

    def finished(self, key: str) -> None:
        if not self.runs_left.get(key):
            return  # reused, or not timed
        self.runs_left[key] -= 1
        self.done_estimate += self.per_run[key]
        left = sum(self.per_run[k] * n for k, n in self.runs_left.items())
        experiments = sum(1 for n in self.runs_left.values() if n)
        # the pace corrects the estimates once enough has run to measure it (short runs are mostly set-up)
        measured = self.done_estimate > 60 and not self.beside
        pace = self.elapsed() / self.done_estimate if measured else 1.0
        tail = f"; about {duration(left * pace)} to go ({experiments} experiment(s) left)" if experiments else ""
        print(f"[study] {duration(self.elapsed())} so far{tail}", file=sys.stderr)
