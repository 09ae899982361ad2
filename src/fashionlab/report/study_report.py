"""The study's report: Table 1 beside the paper's numbers, Fig 1-9 in the paper's order, what the CNN looks at, the
early-stopping row, per-class tables, how the preset differs from `paper`, and the environment."""

from __future__ import annotations

from pathlib import Path

from ..parsing import duration_text
from ..study.plan import PRESETS, preset_differences
from ..tables import duration
from . import figures
from .attributions import add_attributions
from .build import (
    _paper_values,
    add_architectures,
    add_augmentation_grid,
    add_environment,
    add_filters,
    add_per_class,
    add_predictions,
    add_runs_section,
    add_table1,
    curve_summary,
)
from .calibration import add_calibration
from .html import Report
from .style import Entry, assign_colors


def _group(entries: list[Entry], group: str) -> list[Entry]:
    return [e for e in entries if e.group == group]


def _by_key(entries: list[Entry], key: str) -> Entry:
    return next(e for e in entries if e.key == key and e.group == "table1")


def build_study_report(entries: list[Entry], out: str | Path, preset: str, seeds: int, data, command: str,
                       extra_sections=(), findings=(), budget_seconds: float | None = None) -> Path:
    """Write OUT/report.html (+ figures/*.png, table1.csv/.md) for the study's entries; returns the path.

    `extra_sections`: callables `f(report)` run before the environment section, to add sections such as
    "Beyond the paper" (see build.add_runs_section)."""
    assign_colors(entries)
    table1, early = _group(entries, "table1"), _group(entries, "early_stopping")
    report = Report(out, "fashionlab: the original study, reproduced",
                    f"preset '{preset}' ({PRESETS[preset]['about']}), {seeds} seed(s) per experiment; "
                    "test-set numbers on the real Fashion-MNIST data set")

    add_findings(report, findings, table1, preset, budget_seconds)
    summary = report.section("Table 1: Key metrics")
    add_table1(summary, table1 + early)
    if preset != "paper":
        rows = preset_differences(preset, "paper", {e.key: e.run.config().epochs for e in entries})
        summary.text(f"How preset '{preset}' differs from 'paper' (everything else is identical): "
                     f"{PRESETS[preset]['about']}.")
        summary.table(f"Settings of '{preset}' that differ from 'paper'", ["Run", preset, "paper"], rows)
    runs = {r.path: r for e in entries for r in e.runs}.values()
    total = sum(r.metrics()["train_seconds"] for r in runs)
    summary.text(f"{len(runs)} runs ({len(entries)} rows of the paper's comparisons: a run shared by several is "
                 f"trained once); their training took {duration(total)} in all. Test set: "
                 f"{table1[0].run.metrics()['n']:,} images.")
    add_per_class(report, table1 + early)
    add_calibration(report, table1 + early)
    add_architectures(report, table1)

    overfit = _group(entries, "overfitting") + [_by_key(entries, "cnn")]
    s = report.section("Fig 2: Overfitting")
    s.figure("fig2_loss_curves", figures.fig2_loss_curves(overfit),
             "Train (dashed) vs validation (solid) loss per epoch: the ANN alone, with dropout, with batch norm, "
             "with both (the paper's modified ANN), and the CNN. A validation loss that rises while the train "
             "loss falls is overfitting.")
    curve_summary(s, "What the loss curves show", overfit)

    opt = _group(entries, "optimizers")
    s = report.section("Fig 3: Optimizers")
    s.figure("fig3_optimizers", figures.fig3_optimizers(opt),
             "The ANN trained with each optimizer for the same epochs: Adam lr 1e-3, RMSprop lr 1e-3, "
             "SGD lr 1e-2 (no momentum), Adagrad lr 1e-2.")
    curve_summary(s, "Optimizer comparison", opt)

    s = report.section("Fig 4: Data augmentation")
    add_augmentation_grid(s, table1, data)
    pairs = [(_by_key(entries, a), _by_key(entries, b)) for a, b in (("ann_bn", "ann_bn_aug"), ("cnn", "cnn_aug"))]
    s.figure("fig4b_augmentation_curves", figures.fig4b_augmentation_curves(pairs),
             "Train (dashed) and validation (solid) loss without and with augmentation.")
    curve_summary(s, "Without vs with augmentation", [e for p in pairs for e in p])

    report.section("Fig 5: Metric comparison").figure(
        "fig5_metric_comparison", figures.fig5_metric_comparison(table1 + early, _paper_values()),
        "Test-set accuracy and mean precision, recall and F1 of each model (± std over seeds when several); "
        "black ticks: the paper's Table 1.")
    report.section("Fig 6: Confusion matrices").figure(
        "fig6_confusion_matrices", figures.fig6_confusion_matrices(table1 + early),
        "Rows: true class, columns: predicted class; counts, coloured by the share of the true class.")
    add_predictions(report, table1, data)
    report.section("Fig 8: Rolling validation accuracy").figure(
        "fig8_rolling_val_accuracy", figures.fig8_rolling_val_accuracy(table1 + early),
        "Validation accuracy per epoch (thin) and its rolling mean over 3 epochs (thick).")
    add_filters(report, table1, data)
    add_attributions(report, _by_key(entries, "cnn"), data)

    s = report.section("Early stopping")
    for e in early:
        m, config = e.run.metrics(), e.run.config()
        s.text(f"{e.label}: up to {config.epochs} epochs with patience {config.patience} on {config.monitor}; "
               f"trained {m['epochs']} epochs, {'stopped early' if m['stopped_early'] else 'never stopped'}, "
               f"kept the weights of epoch {m['best_epoch']}: test accuracy {m['accuracy']:.2%}.")
    curve_summary(s, "Early stopping vs the plain ANN", early + [_by_key(entries, "ann")])
    beyond = _group(entries, "beyond")
    if beyond:
        add_runs_section(report, "Beyond the paper", beyond, recolor=False, text=(
            "The paper's Evaluation asks for early stopping, ResNet / GoogLeNet / ViT-style networks and faster "
            "training. Rows: fashionlab's named recipes (fashionlab train --recipe NAME) and the Evaluation's "
            "architectures trained with the fast recipe's settings. Here every run keeps the 10,000-image "
            "validation split so its curve can be drawn; the recipes themselves train on all 60,000 images "
            "(docs/RESULTS.md has their test accuracy over seeds). Time to accuracy: validation accuracy "
            "against cumulative training seconds, the star is the test accuracy."))
    for add in extra_sections:
        add(report)
    add_environment(report, entries, command)
    return report.write()


def add_findings(report: Report, findings, table1: list[Entry], preset: str, budget_seconds: float | None) -> None:
    """The paper's claims first, each with the evidence measured and a verdict computed from the runs
    (the rules: study/findings.py)."""
    if not findings:
        return
    section = report.section("Findings")
    counts = {v: sum(f.verdict == v for f in findings) for v in dict.fromkeys(f.verdict for f in findings)}
    cnn = {e.key: e.run.metrics()["epochs"] for e in table1 if e.key in ("cnn", "cnn_aug")}
    budget = f"a budget of {duration_text(budget_seconds)}" if budget_seconds else f"preset '{preset}'"
    section.text(f"Each claim of the paper, checked against this study's runs ({budget}; the CNN rows trained "
                 + " and ".join(f"{v} epochs" for v in cnn.values()) + " here, 30 and 60 in the paper): "
                 + ", ".join(f"{n} {v}" for v, n in counts.items()) + ". The rule behind each verdict is in "
                 "src/fashionlab/study/findings.py.")
    section.table("The paper's findings, reproduced or not", ["", "The paper says", "Where", "Verdict", "Evidence",
                                                               "Why"],
                  [[f.claim, f.statement, f.source, f.verdict, f.evidence, f.note] for f in findings], name="findings")
