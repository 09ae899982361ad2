"""TensorBoard event files in the run directory (`--tensorboard`), so `tensorboard --logdir runs` shows
every run's curves, its confusion matrix and example test predictions.

Written with torch.utils.tensorboard's SummaryWriter; the figures are matplotlib figures, which
TensorBoard stores as images.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..data import CLASSES, MEAN, STD, Split

# history.csv column -> TensorBoard tag (grouped by what they measure, so train and val share a chart)
SCALARS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_accuracy": "accuracy/train",
           "val_accuracy": "accuracy/val", "lr": "learning_rate"}
EXAMPLES = 24


class TensorBoardLog:
    def __init__(self, run_path: Path, config: RunConfig):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_path))
        self.writer.add_text("config", "```\n" + json.dumps(config.to_dict(), indent=1) + "\n```")

    def log_epoch(self, row: dict) -> None:
        for column, tag in SCALARS.items():
            if column in row:
                self.writer.add_scalar(tag, row[column], row["epoch"])
        self.writer.flush()

    def log_result(self, run, test: Split) -> None:
        """The finished run's test metrics, confusion matrix and example predictions; then closes the file.

        The run is already finished: a failure here is reported and must not turn it into a failed run.
        """
        try:
            self._log_result(run, test)
        except Exception as err:  # a logging extra must never fail a finished run
            print(f"warning: TensorBoard figures not written ({type(err).__name__}: {err})", file=sys.stderr)
        finally:
            self.writer.close()

    def _log_result(self, run, test: Split) -> None:
        metrics = run.metrics()
        step = math.ceil(metrics["epochs"])  # a fractional last epoch is logged as a whole one
        for name in ("accuracy", "f1_mean"):
            self.writer.add_scalar(f"test/{name}", metrics[name], step)
        probs = np.load(run.predictions_path)["probs"].astype(np.float32)
        self.writer.add_figure("test/confusion_matrix", confusion_figure(np.array(metrics["confusion_matrix"])),
                               step)
        images = test.images[:EXAMPLES].cpu().numpy()[:, 0] * STD + MEAN
        self.writer.add_figure("test/examples", examples_figure(images, probs[:EXAMPLES],
                                                                test.labels[:EXAMPLES].cpu().numpy()), step)
        self.writer.flush()


def confusion_figure(matrix: np.ndarray):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                color="white" if n > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def examples_figure(images: np.ndarray, probs: np.ndarray, labels: np.ndarray):
    """Test images with predicted class and confidence; wrong predictions in red with the true class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 8
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.7), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, p, label in zip(axes.flat, images, probs, labels):
        pred = int(p.argmax())
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        title = f"{CLASSES[pred]} {p[pred]:.0%}"
        if pred != label:
            title += f"\n(true: {CLASSES[label]})"
        ax.set_title(title, fontsize=7, color="black" if pred == label else "red")
    fig.tight_layout()
    return fig
