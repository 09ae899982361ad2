"""One function per figure of the paper (Fig 1-9), plus time-to-accuracy for extra runs.

Each takes plain values (Entry objects, arrays, a model) and returns a matplotlib Figure; the report
saves it as PNG and embeds it. Colours come from each Entry, so a model has one colour throughout.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..data import CLASSES, MEAN, STD, apply_augment
from .architecture import layer_blocks, shape_text
from .style import Entry, plt

METRICS = (("accuracy", "Accuracy"), ("precision_mean", "Precision (mean)"), ("recall_mean", "Recall (mean)"),
           ("f1_mean", "F1 (mean)"))


def _grid(n: int, cols: int, size=(4.2, 3.2)):
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _epochs_axis(*axes) -> None:
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _series(entry: Entry, key: str) -> tuple[list, list]:
    rows = [r for r in entry.run.history() if r.get(key, "") != ""]
    epochs = [r["epoch"] for r in rows]
    # a fractional last epoch (epochs = 2.1) is drawn where it ended, not at a whole 3
    trained = entry.run.metrics().get("epochs")
    if rows and isinstance(trained, float) and epochs[-1] == math.ceil(trained):
        epochs[-1] = trained
    return epochs, [r[key] for r in rows]


def fig1_architectures(models: list[tuple[str, torch.nn.Module]]):
    """Fig 1: each network as a stack of layer blocks with output shape and parameter count."""
    blocks = [(label, layer_blocks(model)) for label, model in models]
    tallest = max(len(b) for _, b in blocks)
    fig, axes = plt.subplots(1, len(blocks), figsize=(4.3 * len(blocks), 0.62 * tallest + 1.0), squeeze=False)
    for ax, (label, layers) in zip(axes[0], blocks):
        total = sum(b["params"] for b in layers)
        ax.set_title(f"{label}\n{total:,} parameters", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(tallest - 0.3, -0.7)
        ax.axis("off")
        for i, b in enumerate(layers):
            kind = b["name"].split()[0]
            face = {"Conv": "#cfe2f3", "Linear": "#d9ead3", "Max": "#fce5cd", "Global": "#fce5cd",
                    "Input": "#eeeeee"}.get(kind, "#f3f3f3")
            ax.add_patch(FancyBboxPatch((0.04, i - 0.36), 0.92, 0.72, boxstyle="round,pad=0.0,rounding_size=0.05",
                                        facecolor=face, edgecolor="#555555", linewidth=0.8))
            title = b["name"] + (" + " + " + ".join(b["extras"]) if b["extras"] else "")
            ax.text(0.5, i - 0.1, title, ha="center", va="center", fontsize=7.5, fontweight="bold")
            detail = f"out {shape_text(b['shape'])}" + (f" · {b['params']:,} params" if b["params"] else "")
            ax.text(0.5, i + 0.18, detail, ha="center", va="center", fontsize=7)
            if i:
                ax.annotate("", (0.5, i - 0.36), (0.5, i - 0.64), arrowprops={"arrowstyle": "->", "color": "#555"})
    fig.suptitle("Fig 1: network architectures (layer blocks, output shape, parameters)", fontsize=11)
    fig.tight_layout()
    return fig


def fig2_loss_curves(entries: list[Entry], title: str = "Fig 2: loss history during training (train vs validation)"):
    """Fig 2: train vs validation loss per epoch, one panel per model: overfitting shows as a widening gap."""
    fig, axes = _grid(len(entries), 3)
    for ax, e in zip(axes, entries):
        ax.plot(*_series(e, "train_loss"), "--s", ms=3, mfc="none", color=e.color, label="train")
        epochs, val = _series(e, "val_loss")
        ax.plot(epochs, val, "-o", ms=3, color=e.color, label="validation")
        if val:
            best = int(np.argmin(val))
            ax.axvline(epochs[best], color="grey", lw=0.8, ls=":", label=f"lowest val. loss (epoch {epochs[best]})")
        ax.set(title=e.label, xlabel="epoch", ylabel="cross-entropy loss")
        _epochs_axis(ax)
        ax.legend()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def fig3_optimizers(entries: list[Entry], title: str = "Fig 3: optimizer comparison (same network, data and epochs)",
                    legend: str = "optimizer"):
    """Fig 3: validation loss and accuracy per epoch for each optimizer."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for e in entries:
        ax_loss.plot(*_series(e, "val_loss"), "-o", ms=3, color=e.color, label=e.label)
        ax_acc.plot(*_series(e, "val_accuracy"), "-o", ms=3, color=e.color, label=e.label)
    ax_loss.set(title="validation loss", xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(title="validation accuracy", xlabel="epoch", ylabel="accuracy")
    _epochs_axis(ax_loss, ax_acc)
    ax_loss.legend(title=legend)
    ax_acc.legend(title=legend)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _show(ax, image: torch.Tensor, title: str = "", color="black"):
    ax.imshow((image.squeeze(0) * STD + MEAN).clamp(0, 1).numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=7.5, color=color)


def fig4a_augmentation_grid(images: torch.Tensor, labels, augment: dict, versions: int = 3, seed: int = 0):
    """Fig 4a: original images (top row) and `versions` random augmentations of each below."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the augmentations draw from torch's global generator during training too
    n = len(images)
    fig, axes = plt.subplots(versions + 1, n, figsize=(1.25 * n, 1.35 * (versions + 1)), squeeze=False)
    rows = [images] + [apply_augment(images.clone(), augment, gen) for _ in range(versions)]
    for r, batch in enumerate(rows):
        for c in range(n):
            _show(axes[r][c], batch[c], CLASSES[int(labels[c])] if r == 0 else "")
        axes[r][0].set_ylabel("original" if r == 0 else f"augmented {r}", fontsize=8)
    spec = ", ".join(f"{k}({', '.join(f'{a}={v}' for a, v in p.items())})" for k, p in augment.items())
    fig.suptitle(f"Fig 4a: original vs randomly transformed images\n{spec}", fontsize=10)
    fig.tight_layout()
    return fig


def fig4b_augmentation_curves(pairs: list[tuple[Entry, Entry]]):
    """Fig 4b: train and validation loss without vs with augmentation, one panel per network."""
    fig, axes = _grid(len(pairs), 2, size=(5, 3.6))
    for ax, pair in zip(axes, pairs):
        for e in pair:
            ax.plot(*_series(e, "train_loss"), "--s", ms=3, mfc="none", color=e.color, label=f"{e.label}: train")
            ax.plot(*_series(e, "val_loss"), "-o", ms=3, color=e.color, label=f"{e.label}: validation")
        ax.set(title=f"{pair[0].label} vs {pair[1].label}", xlabel="epoch", ylabel="cross-entropy loss")
        _epochs_axis(ax)
        ax.legend()
    fig.suptitle("Fig 4b: training without vs with data augmentation", fontsize=11)
    fig.tight_layout()
    return fig


def fig5_metric_comparison(entries: list[Entry], paper_values: dict | None = None):
    """Fig 5: test-set metrics per model as grouped bars (± std over seeds); the paper's values as markers."""
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(entries) + 3), 4.2))
    width = 0.8 / len(entries)
    lows, paper_shown = [], False
    for i, e in enumerate(entries):
        values = np.array([[m[k] for k, _ in METRICS] for m in e.metrics()])
        x = np.arange(len(METRICS)) + (i - (len(entries) - 1) / 2) * width
        err = values.std(0, ddof=1) if len(values) > 1 else None
        ax.bar(x, values.mean(0), width, yerr=err, color=e.color, label=e.label, capsize=2)
        lows.append(values.min())
        paper = (paper_values or {}).get(e.label)
        if paper:
            ax.scatter(x, paper, marker="_", s=160, color="black", zorder=3,
                       label=None if paper_shown else "the paper")
            paper_shown = True
    ax.set_xticks(np.arange(len(METRICS)), [name for _, name in METRICS])
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.0)
    ax.grid(False, axis="x")
    ax.set(ylabel="score on the test set", title="Fig 5: metric comparison (black ticks: the paper's values)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def draw_confusion(ax, cm: np.ndarray, label: str, fontsize: float = 6.5) -> None:
    """A confusion matrix on `ax`: counts, coloured by the share of the true class."""
    share = cm / cm.sum(1, keepdims=True).clip(min=1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, v, ha="center", va="center", fontsize=fontsize, color="white" if share[r, c] > 0.5 else "black")
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=60, ha="right", fontsize=fontsize + 0.5)
    ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=fontsize + 0.5)
    ax.grid(False)
    ax.set(title=f"{label} (accuracy {np.trace(cm) / max(1, cm.sum()):.2%})", xlabel="predicted", ylabel="true")


def fig6_confusion_matrices(entries: list[Entry]):
    """Fig 6: confusion matrix (test set, counts; colour = share of the true class) per model."""
    fig, axes = _grid(len(entries), 3, size=(5.2, 4.8))
    for ax, e in zip(axes, entries):
        cm = np.array(e.run.metrics()["confusion_matrix"])
        draw_confusion(ax, cm, e.label)
    fig.suptitle("Fig 6: confusion matrices on the test set", fontsize=11)
    fig.tight_layout()
    return fig


def fig7_example_predictions(images: torch.Tensor, labels: np.ndarray, probs: np.ndarray, model_label: str,
                             k: int = 3, n_random: int = 8, n_mistakes: int = 8, seed: int = 0):
    """Fig 7: test images with true/predicted label and top-k probability bars: random examples first,
    then the most confident mistakes."""
    pred, conf = probs.argmax(1), probs.max(1)
    rng = np.random.default_rng(seed)
    chosen = list(rng.choice(len(labels), size=min(n_random, len(labels)), replace=False))
    wrong = np.flatnonzero(pred != labels)
    chosen += list(wrong[np.argsort(-conf[wrong])][:n_mistakes])
    cols = 4
    rows = -(-len(chosen) // cols)
    fig = plt.figure(figsize=(3.4 * cols, 1.55 * rows + 0.6))
    grid = fig.add_gridspec(rows, cols * 2, width_ratios=[1, 1.4] * cols, hspace=0.7, wspace=0.25)
    for n, i in enumerate(chosen):
        r, c = divmod(n, cols)
        ok = pred[i] == labels[i]
        kind = "mistake" if n >= n_random else "random"
        _show(fig.add_subplot(grid[r, 2 * c]), images[i], f"{kind}: true {CLASSES[labels[i]]}\npred {CLASSES[pred[i]]}",
              "darkgreen" if ok else "firebrick")
        ax = fig.add_subplot(grid[r, 2 * c + 1])
        top = list(np.argsort(-probs[i])[:k])
        if labels[i] not in top:  # always show the true class: the last bar is it, however small
            top[-1] = labels[i]
        top = top[::-1]
        colors = ["darkgreen" if t == labels[i] else "firebrick" if t == pred[i] else "grey" for t in top]
        ax.barh(range(k), probs[i][top], color=colors)
        for y, t in enumerate(top):  # class names on the bars: tick labels would run into the image
            p = probs[i][t]
            ax.text(p - 0.02 if p > 0.55 else p + 0.02, y, f"{CLASSES[t]} {p:.0%}", va="center", fontsize=7,
                    ha="right" if p > 0.55 else "left", color="white" if p > 0.55 else "black")
        ax.set_yticks([])
        ax.set_xlim(0, 1)
        ax.tick_params(axis="x", labelsize=6.5)
        ax.set_xlabel("probability", fontsize=7)
    fig.suptitle(f"Fig 7: example predictions of {model_label}: top-{k} probabilities (the true class always shown; "
                 f"green = true class, red = wrong prediction);\nfirst {min(n_random, len(labels))} drawn at random, "
                 f"last {min(n_mistakes, len(wrong))}: its most confident mistakes", fontsize=10)
    return fig


def fig8_rolling_val_accuracy(entries: list[Entry], window: int = 3):
    """Fig 8: validation accuracy per epoch (thin) and its rolling mean over `window` epochs (thick)."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for e in entries:
        epochs, acc = _series(e, "val_accuracy")
        if not acc:
            continue
        roll = [np.mean(acc[max(0, i - window + 1):i + 1]) for i in range(len(acc))]
        ax.plot(epochs, acc, color=e.color, alpha=0.3, lw=0.8)
        ax.plot(epochs, roll, color=e.color, lw=2, label=e.label)
    ax.set(xlabel="epoch", ylabel="validation accuracy",
           title=f"Fig 8: rolling average (window {window} epochs) of validation accuracy; thin: per epoch")
    _epochs_axis(ax)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def fig9_filters_and_feature_maps(model: torch.nn.Module, image: torch.Tensor, label: int, channels: int = 8):
    """Fig 9: the first convolution's filters, and feature maps of one image after each convolution."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    maps = []
    hooks = [c.register_forward_hook(lambda m, i, o: maps.append(o.detach().float()[0])) for c in convs]
    model.eval()
    with torch.no_grad():
        model(image[None].to(next(model.parameters()).device))
    for h in hooks:
        h.remove()
    weights = convs[0].weight.detach().float().cpu()[:, 0]
    n_show, per_row = min(64, len(weights)), 16
    top_h = 0.62 * -(-n_show // per_row) + 0.8
    fig = plt.figure(figsize=(12, top_h + 1.3 * len(maps) + 0.6))
    top, bottom = fig.subfigures(2, 1, height_ratios=[top_h, 1.3 * len(maps) + 0.6])
    for a, w in zip(top.subplots(-(-n_show // per_row), per_row).flat, weights[:n_show]):
        a.imshow(w.numpy(), cmap="RdBu_r", vmin=-abs(w).max(), vmax=abs(w).max())
        a.axis("off")
    top.suptitle(f"Fig 9: CNN filters and feature maps\n(a) the first convolution: {n_show} of its {len(weights)} "
                 "3x3 filters (red positive, blue negative weights)", fontsize=10)
    axes = bottom.subplots(len(maps), channels + 1, squeeze=False)
    for r, fmap in enumerate(maps):
        _show(axes[r][0], image.cpu(), CLASSES[label] if r == 0 else "")
        axes[r][0].set_ylabel(f"conv {r + 1}\n{fmap.shape[1]}x{fmap.shape[2]}x{fmap.shape[0]}", fontsize=8)
        for c in range(channels):
            axes[r][c + 1].imshow(fmap[c].cpu().numpy(), cmap="viridis")
            axes[r][c + 1].axis("off")
    top.subplots_adjust(top=1 - 0.75 / top_h, bottom=0.02)
    bottom.subplots_adjust(top=0.93, bottom=0.02)
    bottom.suptitle(f"(b) feature maps of one test image: the first {channels} channels after each convolution",
                    fontsize=10)
    return fig


def fig_time_to_accuracy(entries: list[Entry]):
    """Validation accuracy against cumulative training seconds (history.csv); a star marks test accuracy."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for e in entries:
        rows = [r for r in e.run.history() if r.get("val_accuracy", "") != ""]
        ax.plot([r["seconds"] for r in rows], [r["val_accuracy"] for r in rows], "-o", ms=3, color=e.color,
                label=e.label)
        if e.run.finished:
            m = e.run.metrics()
            ax.scatter([m["train_seconds"]], [m["accuracy"]], marker="*", s=120, color=e.color, edgecolor="black",
                       zorder=3)
    ax.set_xscale("log")
    seconds = FuncFormatter(lambda value, _: f"{value:g}")  # 3, 20, 100 rather than 3x10^0, 2x10^1, 10^2
    ax.xaxis.set_major_formatter(seconds)
    ax.xaxis.set_minor_formatter(seconds)
    ax.set(xlabel="cumulative training time (s, log scale)", ylabel="accuracy",
           title="Time to accuracy: validation accuracy per epoch (lines), test accuracy at the end (stars)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # outside: inside it hid a slow model's end
    fig.tight_layout()
    return fig
