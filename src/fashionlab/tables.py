"""Plain-text tables for the terminal: runs, models, per-class metrics, the paper's Table 1."""

from __future__ import annotations

from pathlib import Path

from .errors import DamagedRun
from .runs import list_runs


def format_table(header: list[str], rows: list[list], align: str | None = None) -> str:
    """A Markdown table (readable as plain text too); `align` is one 'l'/'r' per column."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or "l" + "r" * (len(header) - 1)
    fmt = lambda row: "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w)  # noqa: E731
                                         for c, w, a in zip(row, widths, align)) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(widths, align)) + "|"
    return "\n".join([fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]])


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def runs_table(root=None) -> str:
    """One row per run; a run with a file that cannot be read is listed as damaged, with the file and why."""
    rows = [_run_row(run) for run in list_runs(root)]
    if not rows:
        return "no runs yet; train one with 'fashionlab train --model ann'"
    return format_table(["run", "model", "epochs", "accuracy", "F1 (mean)", "training time", "state"], rows,
                        "llrrrrl")


def _run_row(run) -> list:
    status = run.status()
    if "damage" in status:
        return [run.name, "?", "-", "-", "-", "-", f"damaged: {status['damage']}"]
    try:
        config = run.config()
        if run.finished:
            m = run.metrics()
            try:
                return [run.name, m["model"], m["epochs"], f"{m['accuracy']:.2%}", f"{m['f1_mean']:.3f}",
                        duration(m["train_seconds"]), "finished"]
            except KeyError as err:
                raise DamagedRun(run.metrics_path, f"no {err.args[0]!r}") from None
            except (TypeError, ValueError) as err:
                raise DamagedRun(run.metrics_path, f"a value of the wrong kind ({err})") from None
        state = run.state
        if state == "running":
            holder = run.lock_holder()
            state = f"running (PID {holder})" if holder else state
        return [run.name, config.model, len(run.history()), "-", "-", "-", state]
    except DamagedRun as err:
        return [run.name, "?", "-", "-", "-", "-", f"damaged: {Path(err.path).name}: {err.reason}"]


def models_table() -> str:
    from .models import MODELS, count_parameters, flops_per_image

    rows = []
    for name, (factory, description) in MODELS.items():
        model = factory()
        rows.append([name, f"{count_parameters(model):,}", f"{flops_per_image(model) / 1e6:,.1f}", description])
    return format_table(["model", "parameters", "MFLOPs/image", "description"], rows, "lrrl")


def per_class_table(metrics: dict) -> str:
    rows = [[name, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", v["support"]]
            for name, v in metrics["per_class"].items()]
    rows.append(["mean", f"{metrics['precision_mean']:.3f}", f"{metrics['recall_mean']:.3f}",
                 f"{metrics['f1_mean']:.3f}", metrics["n"]])
    return format_table(["class", "precision", "recall", "F1", "images"], rows)

