"""Test images and their attribution maps on matplotlib axes: the explain page's figures and the study report's
"What the CNN looks at" both draw them. Built on bare matplotlib Figures, not on the report package, which
imports this module's users and so must not be imported back; the report's style applies once it is loaded.
Images are drawn as the study report draws them: dark clothes on white."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data import CLASSES, MEAN, STD
from .attributions import METHOD_TITLES, Item
from .overlay import overlay_rgb

RIGHT, WRONG = "darkgreen", "firebrick"


def pixels(image: torch.Tensor) -> np.ndarray:
    """A normalised (1, 28, 28) image back to (28, 28) in [0, 1], white clothes on black."""
    return (image.squeeze(0) * STD + MEAN).clamp(0, 1).numpy()


def show(ax, image: torch.Tensor, title: str = "", color="black", size: float = 7.5) -> None:
    ax.imshow(pixels(image), cmap="gray_r", vmin=0, vmax=1)
    bare(ax)
    if title:
        ax.set_title(title, fontsize=size, color=color)


def bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def fig_attributions(items: list[Item], methods: tuple[str, ...], title: str, per_row: int | None = None) -> Figure:
    """Per image: the image, then each method's map for the predicted class and, when it differs, the true
    class; `per_row` images side by side (default: 1 when any has two classes to explain, else 2).
    Red: the pixels raise that class's logit; blue: they lower it (Grad-CAM, clipped at zero: red only)."""
    two = any(len(i.targets) > 1 for i in items)
    per_row = per_row or (1 if two else 2)
    per = len(methods) * (2 if two else 1)  # map columns per image
    rows = max(1, -(-len(items) // per_row))
    ratios = []
    for k in range(per_row):
        ratios += ([0.3] if k else []) + [1] * (per + 1)
    fig = Figure(figsize=(1.45 * sum(ratios), 1.95 * rows + 0.5))
    axes = fig.subplots(rows, len(ratios), squeeze=False, gridspec_kw={"width_ratios": ratios})
    for ax in axes.flat:
        ax.axis("off")
    for n, item in enumerate(items):
        r, k = divmod(n, per_row)
        first = k * (per + 2)
        ok = item.label is None or item.label == item.predicted
        truth = f"true {CLASSES[item.label]}\n" if item.label is not None else ""
        axes[r][first].axis("on")
        show(axes[r][first], item.image, f"{item.source}\n{truth}pred {CLASSES[item.predicted]} "
             f"{item.probs[item.predicted]:.0%}", RIGHT if ok else WRONG, 7)
        for m, method in enumerate(methods):
            for t, target in enumerate(item.targets[:2]):
                ax = axes[r][first + 1 + m * (2 if two else 1) + t]
                ax.axis("on")
                ax.imshow(overlay_rgb(pixels(item.image), item.maps[(method, target)], signed=method != "gradcam"))
                bare(ax)
                which = "pred" if t == 0 else "true"
                ax.set_title(f"{METHOD_TITLES[method]}\n{which}: {CLASSES[target]}", fontsize=7,
                             color=WRONG if t == 1 else "black")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the title above 3-line labels
    return fig
