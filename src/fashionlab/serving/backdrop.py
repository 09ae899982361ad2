"""Take the backdrop out of a product photo: what is left is the garment's darkness, 0 wherever there is none.

Fashion-MNIST's photos were shot on clean white backdrops; real product photos rarely are. Backdrops are tinted or
grey, light falls off across the frame, the sensor adds noise, JPEG adds ringing, and the garment casts a soft
shadow. Each step below undoes one of these, on the small working image (a few hundred pixels a side):

1. `fit_backdrop`: per channel, a low-order polynomial in x and y fitted to a thin strip along the photo's edges:
   first to the half of it closest to its median colour, then again to the pixels close to the last fit, so that
   a garment or shadow that reaches the edge is left out. It models a tint, a grey backdrop and light that falls
   off smoothly across the frame (a gradient or a vignette).
2. `relative_brightness`: every pixel divided by the backdrop behind it (white balance and flat field in one step),
   then greyscale: the backdrop becomes 1 everywhere, and the garment what it would be on an evenly lit white.
3. `garment_mask`: the pixels whose brightness, smoothed over 3x3 pixels against noise, is farther from the
   backdrop than the noise allows, than 5% of white (the data set's own trimming fuzz), and than a share of the
   garment's own contrast, which keeps out a soft shadow, a faint darkening beside a far darker garment; then
   every pixel the garment encloses (a light patch inside it). The garment is trimmed to this mask's box.
4. `darkness`: 1 - brightness / white, where white is the backdrop or, when the garment has parts brighter than
   the backdrop (a white shirt on a grey backdrop), those parts; kept on the mask and a rim of a couple of pixels
   around it (the garment's soft edge), 0 elsewhere.

Only NumPy: `predict --onnx` runs without torch.
"""

from __future__ import annotations

import numpy as np

BORDER = 0.01         # the strip the backdrop is fitted to: this share of the longest edge, on every side
DEGREE = 2            # of the backdrop's polynomial: 2 follows a vignette as well as a linear falloff
START_SHARE = 0.5     # the first fit takes the half of the edge pixels closest to their median colour,
REFITS = 3            # ... each refit those within OUTLIER_SIGMAS (robust) standard deviations of the last fit
OUTLIER_SIGMAS = 3.0
MAX_SAMPLES = 1024    # edge pixels the fit uses at most (evenly spaced): plenty for 6 coefficients
FUZZ = 0.05           # a pixel within 5% of white of the backdrop is backdrop, as in the data set's trimming
NOISE_SIGMAS = 4.0    # ... and so is one within this many standard deviations of the backdrop's own noise
SHADOW_SHARE = 0.2    # ... and one darkened by less than this share of the garment's contrast (a soft shadow)
RIM = 2               # pixels around the garment kept with it: its soft edge, fainter than the thresholds
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as Pillow's convert("L")


def _edge_strip(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of at most about MAX_SAMPLES evenly spaced pixels in a strip of BORDER of the longest edge
    along all four sides."""
    band = min(max(1, round(BORDER * max(height, width))), (height + 1) // 2, (width + 1) // 2)
    step = max(1, int(np.ceil(np.sqrt(2 * band * (height + width) / MAX_SAMPLES))))
    across, along_x, along_y = np.arange(0, band, step), np.arange(0, width, step), np.arange(band, height - band, step)
    rows = np.concatenate([np.repeat(across, len(along_x)), np.repeat(height - 1 - across, len(along_x)),
                           np.tile(along_y, len(across)), np.tile(along_y, len(across))])
    cols = np.concatenate([np.tile(along_x, len(across)), np.tile(along_x, len(across)),
                           np.repeat(across, len(along_y)), np.repeat(width - 1 - across, len(along_y))])
    return rows, cols


def _coordinates(n: int) -> np.ndarray:
    return np.linspace(-1, 1, n, dtype=np.float64) if n > 1 else np.zeros(1, np.float64)


POWERS = [(total - j, j) for total in range(DEGREE + 1) for j in range(total + 1)]  # (i, j) of each x^i y^j


def _solve(design: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least squares through the normal equations (a few terms: a 6x6 solve beats LAPACK's setup)."""
    gram = design.T @ design + 1e-9 * np.eye(design.shape[1])  # a tiny ridge: flat or 1-pixel-wide photos
    return np.linalg.solve(gram, design.T @ values)


def fit_backdrop(pixels: np.ndarray) -> np.ndarray:
    """The backdrop behind every pixel of (H, W, C) float32 pixels, fitted to the photo's edges (step 1)."""
    height, width, _ = pixels.shape
    rows, cols = _edge_strip(height, width)
    xs, ys = _coordinates(width), _coordinates(height)
    design = np.stack([xs[cols] ** i * ys[rows] ** j for i, j in POWERS], axis=1)
    values = pixels[rows, cols].astype(np.float64)
    off_median = np.abs(values - np.median(values, axis=0)).max(axis=1)
    keep = off_median <= np.quantile(off_median, START_SHARE)  # a start that no garment on the edge can sway
    for _ in range(REFITS):
        coef = _solve(design[keep], values[keep])
        miss = np.abs(design @ coef - values).max(axis=1)
        spread = 1.4826 * np.median(miss[keep]) + 1.0  # a grey level of slack: a flat edge has no spread
        keep = miss <= OUTLIER_SIGMAS * spread
        if keep.sum() < design.shape[1]:  # the edge is the garment itself: fall back to its median colour
            return np.broadcast_to(np.median(values, axis=0).astype(np.float32), pixels.shape)
    # Per channel, sum of c_ij y^j x^i = Y @ C @ X: two small matrix products instead of a pass per term.
    y_powers = np.stack([ys**j for j in range(DEGREE + 1)], axis=1).astype(np.float32)  # (H, D+1)
    x_powers = np.stack([xs**i for i in range(DEGREE + 1)], axis=0).astype(np.float32)  # (D+1, W)
    field = np.empty(pixels.shape, np.float32)
    for channel in range(pixels.shape[2]):
        grid = np.zeros((DEGREE + 1, DEGREE + 1), np.float32)
        for (i, j), c in zip(POWERS, coef[:, channel]):
            grid[j, i] = c
        field[..., channel] = y_powers @ grid @ x_powers
    return np.clip(field, 1.0, 255.0, out=field)


def relative_brightness(pixels: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """(H, W) brightness relative to the backdrop behind each pixel: 1 on the backdrop (step 2)."""
    ratio = pixels / backdrop
    return ratio[..., 0] if ratio.shape[2] == 1 else ratio @ LUMA


def smooth(values: np.ndarray) -> np.ndarray:
    """The mean over each pixel's 3x3 neighbourhood (edges repeated): a third of the noise, the shape kept."""
    padded = np.pad(values, 1, mode="edge")
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) * np.float32(1 / 9)


def _noise(distance: np.ndarray) -> float:
    """Robust standard deviation of the (smoothed) distance from the backdrop along the photo's edges."""
    rows, cols = _edge_strip(*distance.shape)
    edge = distance[rows, cols]
    return float(1.4826 * np.median(np.abs(edge - np.median(edge)))) if edge.size else 0.0


def _between(mask: np.ndarray) -> np.ndarray:
    """The pixels with a mask pixel at or before them and at or after them in their row."""
    any_row = mask.any(axis=1)
    first = np.where(any_row, mask.argmax(axis=1), mask.shape[1])
    last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
    cols = np.arange(mask.shape[1])
    return (cols >= first[:, None]) & (cols <= last[:, None])


def _enclosed(mask: np.ndarray) -> np.ndarray:
    """The mask and the pixels with mask pixels on all four sides in their row and column: holes and light patches
    inside the garment."""
    return mask | (_between(mask) & _between(mask.T).T)


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask widened by `pixels` in every direction (a square neighbourhood)."""
    for axis in (0, 1):
        grown = mask.copy()
        for shift in range(1, pixels + 1):
            ahead, behind = [slice(None)] * 2, [slice(None)] * 2
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(ahead)] |= mask[tuple(behind)]
            grown[tuple(behind)] |= mask[tuple(ahead)]
        mask = grown
    return mask


def garment_mask(smoothed: np.ndarray) -> np.ndarray:
    """(H, W) bool: where the garment is, including what it encloses (step 3), from the smoothed brightness; the
    garment is trimmed to this mask's box."""
    distance = np.abs(smoothed - 1.0)
    floor = max(FUZZ, NOISE_SIGMAS * _noise(distance))
    candidates = distance > floor
    if not candidates.any():
        return candidates
    contrast = float(np.percentile(distance[candidates], 95))
    return _enclosed(distance > max(floor, SHADOW_SHARE * contrast))


def darkness(brightness: np.ndarray, smoothed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 0..1: how dark the garment is against white, on the mask and a rim of RIM pixels around it
    (the garment's soft edge, fainter than the thresholds), 0 elsewhere (step 4)."""
    if not mask.any():
        return np.zeros_like(brightness)
    white = max(1.0, float(np.percentile(smoothed[mask], 99)))
    return np.where(_grow(mask, RIM), np.clip(1.0 - brightness / white, 0.0, 1.0), 0.0).astype(np.float32)


def remove(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(darkness 0..1, garment mask, negated) of a (H, W, C) float32 photo: steps 1 to 4.

    A garment is dark on a light backdrop in a photo; on a dark backdrop it is light, as in the data set, and the
    photo is negated first so that the same steps apply (`negated` is then False: the darkness is the photo's
    own brightness).
    """
    field = fit_backdrop(pixels)
    weights = LUMA if pixels.shape[2] == 3 else np.full(pixels.shape[2], 1 / pixels.shape[2], np.float32)
    negated = float(field[::8, ::8].mean(axis=(0, 1)) @ weights) >= 128  # a smooth field: every 8th pixel will do
    if not negated:
        pixels, field = 255.0 - pixels, np.maximum(255.0 - field, 1.0)
    brightness = relative_brightness(pixels, field)
    smoothed = smooth(brightness)
    mask = garment_mask(smoothed)
    return darkness(brightness, smoothed, mask), mask, negated
