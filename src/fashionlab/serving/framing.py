"""Frame a garment as the data set frames it: upright, trimmed to its box, longest edge 28 pixels, sharpened,
centred on black.

Input: the garment's darkness as an 8-bit image (backdrop already black, backdrop.py) and the mask of where the
garment is. Xiao et al. 2017 (section 2) trimmed, subsampled the longest edge to 28, sharpened (unsharp mask,
radius and sigma 1.0) and centred; two steps differ here, both chosen on renders of validation images
(docs/EXPERIMENTS.md): a garment photographed a few degrees askew is turned upright first (the data set's
garments stand straight), and the garment is shrunk by averaging (Pillow's antialiased bilinear reduction)
rather than by skipping rows and columns, so that sensor noise and JPEG blocks average out instead of being
picked up pixel by pixel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

SIZE = 28
MAX_TILT = 12.0   # degrees: a garment turned further is taken as it is (it may be meant that way)
TILT_STEP = 0.5   # degrees between the angles tried
TILT_GAIN = 0.02  # turn only when the garment's box gets at least this much smaller: upright ones stay untouched


def _outline(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the leftmost and rightmost mask pixel of every row: every corner of the garment's hull is one."""
    rows = np.flatnonzero(mask.any(axis=1))
    left = mask[rows].argmax(axis=1)
    right = mask.shape[1] - 1 - mask[rows, ::-1].argmax(axis=1)
    return np.concatenate([left, right]).astype(np.float64), np.concatenate([rows, rows]).astype(np.float64)


def tilt(mask: np.ndarray) -> float:
    """Degrees to turn the garment by (counter-clockwise, as `Image.rotate` takes them) to stand it upright: the
    turn within ±MAX_TILT that makes its bounding box smallest, or 0 when that gains less than TILT_GAIN."""
    if mask.sum() < 2:
        return 0.0
    xs, ys = _outline(mask)
    steps = int(round(MAX_TILT / TILT_STEP))
    angles = np.radians(np.arange(-steps, steps + 1) * TILT_STEP)[:, None]
    across = xs * np.cos(angles) - ys * np.sin(angles)   # the outline turned by each angle
    down = xs * np.sin(angles) + ys * np.cos(angles)
    area = np.ptp(across, axis=1) * np.ptp(down, axis=1)
    best = int(area.argmin())
    if area[best] > area[steps] * (1 - TILT_GAIN):
        return 0.0
    return -float(np.degrees(angles[best, 0]))  # points turned by +a in image coordinates: Image.rotate(-a)


def straighten(garment: Image.Image, mask: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """The garment image and its mask turned upright (see `tilt`); unchanged when it already is."""
    angle = tilt(mask)
    if not angle:
        return garment, mask
    turned = Image.fromarray(mask.astype(np.uint8) * 255, "L").rotate(angle, Image.Resampling.NEAREST, expand=True)
    return garment.rotate(angle, Image.Resampling.BILINEAR, expand=True), np.asarray(turned) > 0


def box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom) of the mask, None when it is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def frame(garment: Image.Image, mask: np.ndarray) -> np.ndarray:
    """(28, 28) uint8: the garment (8-bit darkness, black backdrop) upright, trimmed, resized, sharpened, centred."""
    garment, mask = straighten(garment, mask)
    trim = box(mask)
    if trim is not None:
        garment = garment.crop(trim)
    width, height = garment.size
    scale = SIZE / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    garment = garment.resize(new_size, Image.Resampling.BILINEAR)
    garment = garment.filter(ImageFilter.UnsharpMask(radius=1.0, percent=100, threshold=0))
    canvas = Image.new("L", (SIZE, SIZE), 0)
    canvas.paste(garment, ((SIZE - new_size[0]) // 2, (SIZE - new_size[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8).copy()
