"""The paper's Table 1 (key metrics after training) and ours beside it, mean ± std over seeds."""

from __future__ import annotations

from ..tables import duration, format_table

# The paper's Table 1, for comparison beside ours.
PAPER_TABLE1 = {
    "ANN": ("4.5 minutes", 0.8843, 0.891, 0.890, 0.888, 30),
    "ANN (modified)": ("5 minutes", 0.8994, 0.901, 0.901, 0.901, 30),
    "ANN (modified+data aug)": ("14 minutes", 0.8705, 0.872, 0.871, 0.870, 60),
    "CNN": ("9 minutes", 0.9239, 0.926, 0.926, 0.926, 30),
    "CNN (data aug)": ("20 minutes", 0.9142, 0.917, 0.916, 0.916, 60),
}

def mean_std(values: list[float], fmt) -> str:
    """"mean" for one value, "mean ± sample std" for several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return fmt(mean)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{fmt(mean)} ± {fmt(std)}"


TABLE1_HEADER = ["Model", "Training time", "Accuracy", "Precision (mean)", "Recall (mean)", "F1 Score (mean)",
                 "Epochs", "Paper: accuracy", "Paper: F1", "Paper: time (epochs)"]


def table1_rows(rows: list[tuple[str, list[dict]]]) -> list[list[str]]:
    """Table 1 cells for our runs (mean ± std over seeds), with the paper's figures in the last columns."""
    out = []
    for label, metrics in rows:
        stat = lambda key, fmt, metrics=metrics: mean_std([m[key] for m in metrics], fmt)
        epochs = sorted({m["epochs"] for m in metrics})
        paper = PAPER_TABLE1.get(label)
        out.append([label, duration(sum(m["train_seconds"] for m in metrics) / len(metrics)),
                    stat("accuracy", lambda v: f"{v:.2%}"), stat("precision_mean", lambda v: f"{v:.3f}"),
                    stat("recall_mean", lambda v: f"{v:.3f}"), stat("f1_mean", lambda v: f"{v:.3f}"),
                    "/".join(map(str, epochs)),
                    *([f"{paper[1]:.2%}", f"{paper[4]:.3f}", f"{paper[0]} ({paper[5]})"] if paper else ["-"] * 3)])
    return out


def table1(rows: list[tuple[str, list[dict]]]) -> str:
    return format_table(TABLE1_HEADER, table1_rows(rows), "lrrrrrrrrr")


