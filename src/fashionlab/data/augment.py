"""Data augmentation on whole batches of normalised images (B, C, H, W), with tensor ops only.

Each augmentation is a function `(x, gen, **params) -> x` registered by name; a pipeline is an ordered
dict {name: params}, written on the command line as `flip,crop:padding=2,affine:degrees=10:scale=0.1`.
Randomness comes from the generator passed in, so a batch's augmentation is reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..parsing import number_or_text
from .dataset import MEAN, STD

BACKGROUND = (0.0 - MEAN) / STD  # a black pixel after normalisation: what padding should look like


def _uniform(n: int, low: float, high: float, gen, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def random_crop(x: torch.Tensor, gen: torch.Generator, padding: int = 2) -> torch.Tensor:
    """Pad with background and crop back to size at a random offset per image (a random shift).

    One gather over the flattened padded images: an offset is a constant added to every pixel index.
    """
    b, c, h, w = x.shape
    wp = w + 2 * padding
    padded = F.pad(x, (padding,) * 4, value=BACKGROUND).reshape(b, c, -1)
    dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=gen, device=x.device)
    rows = torch.arange(h, device=x.device)[:, None] * wp
    base = (rows + torch.arange(w, device=x.device)).reshape(1, -1)  # top-left crop, as flat indices
    index = (base + dy * wp + dx)[:, None, :].expand(b, c, h * w)
    return padded.gather(2, index).reshape(b, c, h, w)


def horizontal_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_affine(x: torch.Tensor, gen: torch.Generator, degrees: float = 10.0, scale: float = 0.1,
                  translate: float = 0.1, p: float = 1.0) -> torch.Tensor:
    """Rotate by ±degrees, scale by 1±scale, shift by ±translate of the image size; bilinear. Only a share `p`
    of the images is transformed: bilinear resampling blurs every image it touches, so the rest keep their
    exact pixels, as the test images have them."""
    b = x.shape[0]
    angle = _uniform(b, -degrees, degrees, gen, x.device) * (math.pi / 180)
    s = _uniform(b, 1 - scale, 1 + scale, gen, x.device)
    tx = _uniform(b, -2 * translate, 2 * translate, gen, x.device)  # grid coordinates span 2 units
    ty = _uniform(b, -2 * translate, 2 * translate, gen, x.device)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s  # the grid maps output to input: inverse scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    # sample (x - background) so the area moved in from outside is background, not zero
    moved = F.grid_sample(x - BACKGROUND, grid, padding_mode="zeros", align_corners=False) + BACKGROUND
    if p >= 1:
        return moved
    chosen = torch.rand(b, generator=gen, device=x.device) < p
    return torch.where(chosen[:, None, None, None], moved, x)


def random_erasing(x: torch.Tensor, gen: torch.Generator, p: float = 0.5, area: tuple = (0.02, 0.25),
                   ratio: tuple = (0.3, 3.3)) -> torch.Tensor:
    """Replace a random rectangle of each chosen image with noise (Zhong et al. 2017)."""
    b, _, h, w = x.shape
    dev = x.device
    target = _uniform(b, area[0], area[1], gen, dev) * h * w
    aspect = torch.exp(_uniform(b, math.log(ratio[0]), math.log(ratio[1]), gen, dev))
    eh = torch.sqrt(target * aspect).round().clamp(1, h)
    ew = torch.sqrt(target / aspect).round().clamp(1, w)
    box = rectangles(eh, ew, h, w, gen)
    chosen = torch.rand(b, generator=gen, device=dev) < p
    mask = (box & chosen[:, None, None])[:, None]
    noise = torch.randn(x.shape, generator=gen, device=dev, dtype=x.dtype)
    return torch.where(mask, noise, x)


def rectangles(eh: torch.Tensor, ew: torch.Tensor, h: int, w: int, gen) -> torch.Tensor:
    """(B, h, w) masks, each an eh x ew rectangle (whole pixels, >= 1) at a random place inside the image."""
    dev = eh.device
    top = (torch.rand(len(eh), generator=gen, device=dev) * (h - eh + 1)).floor()
    left = (torch.rand(len(eh), generator=gen, device=dev) * (w - ew + 1)).floor()
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    inside_r = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    inside_c = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    return inside_r[:, :, None] & inside_c[:, None, :]


AUGMENTATIONS = {
    "crop": random_crop,
    "flip": horizontal_flip,
    "affine": random_affine,
    "erase": random_erasing,
}


# (augmentation, parameter) -> (type, lowest, highest): every value is checked before a run starts
PARAMETERS = {
    ("crop", "padding"): (int, 0, 14),
    ("flip", "p"): (float, 0, 1),
    ("affine", "degrees"): (float, 0, 180),
    ("affine", "scale"): (float, 0, 0.9),
    ("affine", "translate"): (float, 0, 0.5),
    ("affine", "p"): (float, 0, 1),
    ("erase", "p"): (float, 0, 1),
    ("erase", "area"): (tuple, 0, 1),
    ("erase", "ratio"): (tuple, 0.01, 100),
}


def parse_augment(spec: str | dict | None) -> dict[str, dict]:
    """`"flip,crop:padding=2"` (or a dict from TOML) -> {"flip": {}, "crop": {"padding": 2}}, validated."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        if not all(isinstance(params, dict | None) for params in spec.values()):
            raise ConfigError("augment's entries must be tables of parameters, e.g. {flip = {}, crop = {padding = 2}}")
        pipeline = {name: dict(params or {}) for name, params in spec.items()}
    elif isinstance(spec, str):
        pipeline = {}
        for entry in filter(None, (e.strip() for e in spec.split(","))):
            name, *pairs = entry.split(":")
            params = {}
            for pair in pairs:
                key, sep, value = pair.partition("=")
                if not sep:
                    raise ConfigError(f"augmentation parameter {pair!r} in {entry!r} must look like key=value")
                params[key] = _number(value)
            pipeline[name] = params
    else:
        raise ConfigError(f"augment must be a string like 'flip,crop:padding=2' or a table, got {spec!r}")
    for name, params in pipeline.items():
        if name not in AUGMENTATIONS:
            raise ConfigError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
        fn = AUGMENTATIONS[name]
        allowed = fn.__code__.co_varnames[2:fn.__code__.co_argcount]
        for key, value in params.items():
            if key not in allowed:
                raise ConfigError(f"augmentation {name!r} has no parameter {key!r}; it takes {', '.join(allowed)}")
            params[key] = _checked(name, key, value)
    return pipeline


def _checked(name: str, key: str, value):
    kind, low, high = PARAMETERS[(name, key)]
    where = f"augmentation parameter {name}:{key}"
    if kind is tuple:
        if (not isinstance(value, list | tuple) or len(value) != 2 or not all(_is_number(v) for v in value)
                or not low <= value[0] <= value[1] <= high):
            raise ConfigError(f"{where} must be two numbers [low, high] with {low} <= low <= high <= {high}, "
                              f"got {value!r}")
        return tuple(float(v) for v in value)
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"{where} must be a whole number, got {value!r}")
    if not _is_number(value) or not low <= value <= high:
        raise ConfigError(f"{where} must be a number between {low} and {high}, got {value!r}")
    return value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(text: str):
    value = number_or_text(text)
    if isinstance(value, str):
        raise ConfigError(f"augmentation parameter value {text!r} is not a number")
    return value


def apply_augment(x: torch.Tensor, pipeline: dict[str, dict], gen: torch.Generator) -> torch.Tensor:
    for name, params in pipeline.items():
        x = AUGMENTATIONS[name](x, gen, **params)
    return x
