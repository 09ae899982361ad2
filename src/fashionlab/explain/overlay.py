"""An attribution map drawn over the image it explains: as pixels (the explain page's figures), as a small PNG (the
served page, `POST /explain`) and as a captioned card (`fashionlab predict --explain DIR`).

Drawn the explain page's way: the image faint (dark clothes on white, its darkest pixel 30% grey) under the map
at 70% opacity, red where a pixel raises the class's logit and blue where it lowers it (a one-sided map such as
Grad-CAM: red only), the colour scale set by the map's 99th percentile of magnitude. NumPy, Pillow and
matplotlib only, no torch: a server pays nothing for it until it draws.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

FAINT = 0.3     # the image's darkest pixel under the map: 30% grey
OPACITY = 0.7   # of the map's colours over the image


def colour_scale(attribution: np.ndarray) -> float:
    """The magnitude drawn at full colour: the map's 99th percentile, so that a few extreme pixels do not wash
    out the rest."""
    return float(np.percentile(np.abs(attribution), 99)) or 1e-12


def overlay_rgb(image: np.ndarray, attribution: np.ndarray, signed: bool = True) -> np.ndarray:
    """(H, W, 3) uint8: `image` (H, W; 0 black to 1 white, white clothes on black as the model sees them) drawn
    faint under `attribution` (H, W). `signed`: red raises, blue lowers; otherwise red only (Grad-CAM)."""
    scaled = np.asarray(attribution, dtype=np.float64) / colour_scale(attribution)
    colours = (colormaps["bwr"]((np.clip(scaled, -1, 1) + 1) / 2) if signed
               else colormaps["Reds"](np.clip(scaled, 0, 1)))[..., :3]
    base = 1 - FAINT * np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    return np.round(255 * (OPACITY * colours + (1 - OPACITY) * base[..., None])).astype(np.uint8)


def overlay_png(pixels: np.ndarray, attribution: np.ndarray) -> bytes:
    """The 28x28 overlay of a prepared image (uint8, as `Prepared.pixels`) as PNG bytes; browsers enlarge it."""
    buf = io.BytesIO()
    Image.fromarray(overlay_rgb(pixels / 255.0, attribution), "RGB").save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def overlay_card(pixels: np.ndarray, attribution: np.ndarray, title: str, caption: str) -> bytes:
    """A PNG of the model input beside its overlay, `title` above (the file and the prediction) and `caption`
    below (what the colours mean)."""
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state, safe to draw from any thread

    fig = Figure(figsize=(4.4, 2.75), dpi=120)
    seen, over = fig.subplots(1, 2)
    seen.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    over.imshow(overlay_rgb(pixels / 255.0, attribution), interpolation="nearest")
    for ax, name in ((seen, "model input"), (over, "attribution")):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.text(0.5, 0.02, caption, ha="center", va="bottom", fontsize=7, color="#444")
    fig.subplots_adjust(left=0.03, right=0.97, top=0.84, bottom=0.2, wspace=0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
