"""Assemble reports: the original study's (build_study_report) and one for any runs (build_runs_report).

Each `add_*` function adds one section from a list of Entry objects, so a new section ("Beyond the
paper", say) is a few lines: `add_runs_section(report, "Beyond the paper", entries)` before `report.write()`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..artifacts import load_run_model
from ..config import train_command
from ..data import CLASSES, load_fashion_mnist, to_tensor
from ..errors import RunError
from ..models import create_model, is_convolutional
from ..runs import open_run
from ..study.table1 import PAPER_TABLE1, TABLE1_HEADER, table1_rows
from ..tables import duration
from . import figures
from .html import Report
from .style import Entry, assign_colors


def _paper_values() -> dict:
    return {label: list(v[1:5]) for label, v in PAPER_TABLE1.items()}


def _unique(entries: list[Entry]) -> list[Entry]:
    seen, out = set(), []
    for e in entries:
        if e.run.path not in seen:
            seen.add(e.run.path)
            out.append(e)
    return out


def add_table1(section, entries: list[Entry], name: str = "table1", paper_columns: bool = True) -> None:
    """Table 1 of `entries`; `paper_columns=False` drops the paper's columns (runs the paper never had)."""
    rows = table1_rows([(e.label, e.metrics()) for e in entries])
    caption = "Table 1: key metrics after training (test set); mean ± std over seeds where more than one"
    keep = len(TABLE1_HEADER) if paper_columns else TABLE1_HEADER.index("Paper: accuracy")
    if paper_columns:
        caption += "; the paper's own values in the last three columns"
    section.table(caption, TABLE1_HEADER[:keep], [row[:keep] for row in rows], name=name)


def add_per_class(report: Report, entries: list[Entry]) -> None:
    section = report.section("Per-class metrics")
    section.text("Precision, recall and F1 of each class on the test set (the first seed's run).")
    for e in _unique(entries):
        m = e.run.metrics()
        rows = [[c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", v["support"]]
                for c, v in m["per_class"].items()]
        rows.append(["mean", f"{m['precision_mean']:.3f}", f"{m['recall_mean']:.3f}", f"{m['f1_mean']:.3f}", m["n"]])
        section.table(f"{e.label} ({e.run.name})", ["Class", "Precision", "Recall", "F1", "Images"], rows)


def curve_summary(section, caption: str, entries: list[Entry]) -> None:
    """A table of what the loss curves show: lowest validation loss, final losses, test accuracy."""
    rows = []
    for e in entries:
        hist = e.run.history()
        val = [r["val_loss"] for r in hist if r.get("val_loss", "") != ""]
        best = int(np.argmin(val)) if val else None
        m = e.run.metrics()
        rows.append([e.label, len(hist), f"{val[best]:.4f} (epoch {best + 1})" if val else "-",
                     f"{hist[-1]['train_loss']:.4f}", f"{val[-1]:.4f}" if val else "-",
                     f"{hist[-1].get('val_accuracy', 0):.2%}" if val else "-", f"{m['accuracy']:.2%}",
                     duration(m["train_seconds"])])
    section.table(caption, ["Model", "Epochs", "Lowest val. loss", "Final train loss", "Final val. loss",
                            "Final val. accuracy", "Test accuracy", "Training time"], rows)


def add_architectures(report: Report, entries: list[Entry]) -> None:
    names = list(dict.fromkeys(e.run.config().model for e in entries))
    labels = {e.run.config().model: e.label for e in reversed(entries)}
    report.section("Fig 1: Architectures").figure(
        "fig1_architectures", figures.fig1_architectures([(f"{labels[n]} ({n})", create_model(n)) for n in names]),
        "Each network as layer blocks: a main layer with the activation, batch norm and dropout after it, "
        "its output shape (HxWxC) and parameter count.")


def test_images(run, data) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """A run's saved test predictions with the images they belong to."""
    saved = np.load(run.predictions_path)
    probs, labels = saved["probs"].astype(np.float32), saved["labels"].astype(np.int64)
    if not np.array_equal(labels, data.test_labels[:len(labels)]):
        raise RunError(f"{run.path}: test_predictions.npz does not match this data set's test labels")
    return to_tensor(data.test_images[:len(labels)]), labels, probs


def add_predictions(report: Report, entries: list[Entry], data) -> None:
    best = max(_unique(entries), key=lambda e: e.run.metrics()["accuracy"])
    images, labels, probs = test_images(best.run, data)
    report.section("Fig 7: Example predictions").figure(
        "fig7_example_predictions", figures.fig7_example_predictions(images, labels, probs, best.label),
        f"Predictions of the most accurate model ({best.label}) on test images: eight drawn at random, then its "
        "eight most confident mistakes, each with its top-3 class probabilities.")


def add_filters(report: Report, entries: list[Entry], data) -> None:
    conv = [e for e in entries if is_convolutional(create_model(e.run.config().model))]
    if not conv:
        return
    model, _ = load_run_model(conv[0].run.path, device="cpu")
    images, labels, _ = test_images(conv[0].run, data)
    report.section("Fig 9: Filters and feature maps").figure(
        "fig9_filters_and_feature_maps", figures.fig9_filters_and_feature_maps(model, images[0], int(labels[0])),
        f"{conv[0].label}: the first convolution's filters and the first test image's feature maps after each "
        "convolution.")


def add_augmentation_grid(section, entries: list[Entry], data) -> None:
    augmented = [e for e in entries if e.run.config().augment]
    if not augmented:
        return
    first = [int(np.flatnonzero(data.train_labels == c)[0]) for c in range(len(CLASSES))]
    augment = augmented[0].run.config().augment
    section.figure("fig4a_augmentation_grid",
                   figures.fig4a_augmentation_grid(to_tensor(data.train_images[first]), data.train_labels[first],
                                                   augment),
                   "One training image of each class (top) and three random transforms of each, as training saw them.")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def add_environment(report: Report, entries: list[Entry], command: str) -> None:
    section = report.section("Environment and runs")
    section.text(f"Report written {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by: {command}")
    threads_env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    section.text(f"Python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}; "
                 f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; {torch.get_num_threads()} torch threads"
                 + (f" ({', '.join(f'{k}={v}' for k, v in threads_env.items())})" if threads_env else "") + ".")
    rows = []
    for e in _unique(entries):
        for run in e.runs:
            m = run.metrics()
            rows.append([run.name, m["model"], m["torch"], m["device"], m["threads"], m["precision"],
                         run.status().get("time", "-"), duration(m["train_seconds"]), f"{m['eval_seconds']:.1f} s"])
    section.table("Where and how each run trained", ["Run", "Model", "torch", "Device", "Threads", "Precision",
                                                       "Finished", "Training time", "Test evaluation"], rows)
    for e in _unique(entries):
        for run in e.runs:
            config = run.config()
            section.code(train_command(config), summary=f"{run.name}: command")
            section.code(json.dumps(config.to_dict(), indent=1), summary=f"{run.name}: config.json")


def add_time_to_accuracy(section, entries: list[Entry], name: str = "fig_time_to_accuracy") -> None:
    section.figure(name, figures.fig_time_to_accuracy(entries),
                   "Validation accuracy against cumulative training seconds (history.csv); stars: test accuracy.")


def add_runs_section(report: Report, title: str, entries: list[Entry], text: str = "",
                     recolor: bool = True) -> None:
    """A group of extra runs: a summary table, time to accuracy and loss curves (e.g. "Beyond the paper").

    Writes OUT/<slug>_table.csv/.md and figures/<slug>_*.png, slug made from the title."""
    if recolor:
        assign_colors(entries)
    section = report.section(title)
    if text:
        section.text(text)
    slug = section.id.replace("-", "_")
    add_table1(section, entries, name=f"{slug}_table", paper_columns=False)
    add_time_to_accuracy(section, entries, f"{slug}_time_to_accuracy")
    section.figure(f"{slug}_loss_curves",
                   figures.fig2_loss_curves(entries, f"{title}: train vs validation loss per epoch"),
                   "Train vs validation loss per epoch.")


def build_runs_report(names: list[str], out: str | Path, root=None, command: str | None = None,
                      data_dir=None) -> Path:
    """The report for any finished runs: every figure that applies to them."""
    runs = [open_run(n, root) for n in names]
    for run in runs:
        run.metrics()  # a clear error for an unfinished run
    entries = [Entry(r.name, [r], key=r.name) for r in runs]
    assign_colors(entries)
    data = load_fashion_mnist(data_dir or runs[0].config().data_dir)
    report = Report(out, "fashionlab report", f"{len(runs)} run(s): {', '.join(names)}")
    add_table1(report.section("Summary"), entries)
    add_per_class(report, entries)
    add_architectures(report, entries)
    report.section("Fig 2: Loss curves").figure("fig2_loss_curves", figures.fig2_loss_curves(entries),
                                                "Train (dashed) vs validation (solid) loss per epoch.")
    report.section("Fig 3: Validation curves").figure(
        "fig3_validation_curves",
        figures.fig3_optimizers(entries, "Fig 3: validation loss and accuracy per run", "run"),
        "Validation loss and accuracy per epoch of every run.")
    aug = report.section("Fig 4: Data augmentation")
    add_augmentation_grid(aug, entries, data)
    if not aug.blocks:
        report.sections.remove(aug)
    report.section("Fig 5: Metric comparison").figure(
        "fig5_metric_comparison", figures.fig5_metric_comparison(entries), "Test-set metrics of each run.")
    report.section("Fig 6: Confusion matrices").figure(
        "fig6_confusion_matrices", figures.fig6_confusion_matrices(entries), "Rows: true class; columns: predicted.")
    add_predictions(report, entries, data)
    report.section("Fig 8: Rolling validation accuracy").figure(
        "fig8_rolling_val_accuracy", figures.fig8_rolling_val_accuracy(entries),
        "Validation accuracy per epoch and its 3-epoch rolling mean.")
    add_filters(report, entries, data)
    add_time_to_accuracy(report.section("Time to accuracy"), entries)
    add_environment(report, entries, command or " ".join(["fashionlab", "report", *names]))
    return report.write()
