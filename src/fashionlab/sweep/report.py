"""`fashionlab sweep-report NAME`: one self-contained HTML page about a sweep.

The best trials (by validation accuracy), Optuna's plots (optimization history, parameter importances,
parallel coordinates; plotly, with plotly.js embedded once so the page works offline) and, when the best
trial has been re-trained on all training images, its test-set result.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from ..errors import FashionlabError
from ..runs import open_run
from .search import best_trials, sweeps_dir

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 3px 8px; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 0.9em; } .plot { margin: 1em 0 2em; }
"""


def _plots(study) -> list[tuple[str, str]]:
    """(title, figure or an explanation) for each of Optuna's plots the study can make."""
    from optuna import visualization as vis

    out = []
    for title, make in (("Optimization history", vis.plot_optimization_history),
                        ("Parameter importances (fANOVA)", vis.plot_param_importances),
                        ("Parallel coordinates", vis.plot_parallel_coordinate)):
        try:
            out.append((title, make(study)))
        except (ValueError, RuntimeError, ZeroDivisionError) as err:  # e.g. importances need 2+ complete trials
            out.append((title, f"not available yet: {err}"))
    return out


def _table(trials) -> str:
    if not trials:
        return "<p>No completed trial yet.</p>"
    names = sorted({k for t in trials for k in t.params})
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["trial", "val accuracy", *names, "epochs run", "train s",
                                                           "run"])
    rows = []
    for t in trials:
        cells = [f'<td class="num">{t.number}</td>', f'<td class="num">{t.value:.4f}</td>']
        for n in names:
            v = t.params.get(n, "")
            cells.append(f"<td>{html.escape(f'{v:.3g}' if isinstance(v, float) else str(v) or 'none')}</td>")
        cells.append(f'<td class="num">{t.user_attrs.get("epochs_run", "")}</td>')
        cells.append(f'<td class="num">{t.user_attrs.get("train_seconds", "")}</td>')
        cells.append(f"<td>{html.escape(Path(t.user_attrs.get('run', '')).name)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _retrained(study, root) -> str:
    name = f"{study.study_name}-best"
    try:
        run = open_run(name, root)
        metrics = run.metrics()
    except FashionlabError:
        return (f"<p class='note'>Not re-trained yet: <code>fashionlab sweep-report {html.escape(study.study_name)} "
                "--retrain-best</code> trains the best trial on all 60,000 training images and tests it.</p>")
    return (f"<p>Run <code>{html.escape(str(run.path))}</code> ({metrics['model']}, {metrics['epochs']} epochs, "
            f"all training images): <b>test accuracy {metrics['accuracy']:.4f}</b>, mean F1 {metrics['f1_mean']:.4f} "
            f"on {metrics['n']} test images.</p><p class='note'>The test set was used only here, after the sweep "
            "had chosen on validation accuracy.</p>")


def write_report(study, out: str | Path | None = None, root=None, top: int = 10) -> Path:
    from optuna.trial import TrialState

    out = Path(out) if out else sweeps_dir(root) / f"{study.study_name}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    best = best_trials(study, top)
    parts = [f"<h1>Sweep {html.escape(study.study_name)}</h1>",
             f"<p>{len(trials)} trials ({summary}); objective: validation accuracy (maximised). "
             f"Written {time.strftime('%Y-%m-%d %H:%M')}.</p>"]
    if best:
        parts.append(f"<p>Best: trial {best[0].number}, val accuracy {best[0].value:.4f}, "
                     f"<code>{html.escape(json.dumps(best[0].params))}</code></p>")
    parts += ["<h2>Best trials</h2>", _table(best), "<h2>Best trial re-trained and tested</h2>",
              _retrained(study, root)]
    first = True
    for title, fig in _plots(study):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(fig, str):
            parts.append(f"<p class='note'>{html.escape(fig)}</p>")
            continue
        # plotly.js (about 4 MB) goes inline once, so the page needs no network
        parts.append(f"<div class='plot'>{fig.to_html(full_html=False, include_plotlyjs=first)}</div>")
        first = False
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {html.escape(study.study_name)}"
            f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    out.write_text(page)
    return out
