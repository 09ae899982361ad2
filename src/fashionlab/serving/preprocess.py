"""Turn any photo into a Fashion-MNIST image, the way the data set itself was made.

Xiao et al. 2017 (arXiv 1708.07747, section 2) made each 28x28 image from a product photo on a light
background by: trimming the edges close to the corner colour (within 5% of the maximum intensity), resizing
the longest edge to 28 by subsampling, sharpening with a Gaussian operator (radius and sigma 1.0), extending
the shorter edge to 28 with the object centred, negating, and converting to 8-bit greyscale. A model trained on
Fashion-MNIST only works on photos prepared the same way; fed a raw photo (light background) it sees an image
unlike any it was trained on ("everything is a Bag").

This module needs only Pillow and NumPy, so `predict --onnx` runs without torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from ..errors import FashionlabError

SIZE = 28
MAX_PIXELS = 10_000 * 10_000  # larger images are refused (decompression bombs)
TRIM_FUZZ = 0.05  # trim rows/columns within 5% of the maximum intensity of the corner colour
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# Pillow warns from 89 Mpixels on; align it with our own limit so accepted images never warn.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_PIXELS)


class ImageError(FashionlabError):
    """An upload or file that is not a usable image; `code` names the reason for the API."""

    def __init__(self, message: str, code: str = "not_an_image"):
        super().__init__(message)
        self.code = code
        self.file: str | None = None  # which upload, when several are sent at once


@dataclass
class Prepared:
    """A photo as the model sees it: 28x28 uint8, white object on black, plus what was done to it."""
    pixels: np.ndarray        # (28, 28) uint8
    original_size: tuple      # (width, height) of the photo
    negated: bool             # False when the photo already had a dark background (e.g. a Fashion-MNIST image)

    def png(self) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(self.pixels, "L").save(buf, "PNG")
        return buf.getvalue()


def open_image(source: bytes | str | Path, name: str | None = None) -> Image.Image:
    """Decode the first frame of a PNG/JPEG/WebP/BMP/GIF, refusing empty, truncated, huge or foreign files."""
    name = name or (str(source) if not isinstance(source, bytes) else "upload")
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{name} is empty (0 bytes)", "empty")
        stream = io.BytesIO(source)
    else:
        try:
            stream = io.BytesIO(Path(source).read_bytes())
        except OSError as err:
            raise ImageError(f"cannot read {name}: {err.strerror or err}", "unreadable") from None
        if not stream.getbuffer().nbytes:
            raise ImageError(f"{name} is empty (0 bytes)", "empty")
    try:
        image = Image.open(stream, formats=FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(f"{name} has too many pixels (more than {MAX_PIXELS:,})", "too_many_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageError(f"{name} is not a PNG, JPEG, WebP, BMP or GIF image", "not_an_image") from None
    width, height = image.size
    if width * height > MAX_PIXELS:  # checked from the header, before any pixel is decoded
        raise ImageError(f"{name} is {width}x{height} pixels; at most {MAX_PIXELS:,} pixels are accepted",
                         "too_many_pixels")
    image.info["original_size"] = image.size  # before draft() below shrinks it
    if image.format == "JPEG":
        image.draft("RGB", (8 * SIZE, 8 * SIZE))  # decode big JPEGs at a reduced scale: we only need 28 pixels
    try:
        image.load()
    except Image.DecompressionBombError:
        raise ImageError(f"{name} has too many pixels (more than {MAX_PIXELS:,})", "too_many_pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{name} is truncated or damaged ({err})", "damaged") from None
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB or L, upright (EXIF orientation), transparency composited on white like a product photo."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;"):  # 16-bit or float greyscale
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max() > 255 else 255.0
        return Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8), "L")
    return image.convert("L" if image.mode == "1" else "RGB")


def _corner_colour(pixels: np.ndarray) -> np.ndarray:
    """The background colour: the per-channel median of the four corner pixels (robust to one odd corner)."""
    corners = np.stack([pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]]).astype(np.float32)
    return np.median(corners, axis=0)


def _trim_box(pixels: np.ndarray, background: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom) of the pixels farther than 5% from the background colour."""
    diff = np.abs(pixels.astype(np.float32) - background)
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    mask = diff > TRIM_FUZZ * 255
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None  # a blank image: keep it whole
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def looks_like_fashion_mnist(image: Image.Image) -> bool:
    """28x28 with a dark background: already prepared, so it must not be trimmed, sharpened or negated again."""
    if image.size != (SIZE, SIZE):
        return False
    grey = np.asarray(image.convert("L"))
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return float(np.median(border)) < 128


def prepare(image: Image.Image) -> Prepared:
    """The Fashion-MNIST pipeline (module docstring) applied to one decoded image."""
    size = image.info.get("original_size", image.size)
    image = _flatten(image)
    if looks_like_fashion_mnist(image):
        return Prepared(np.asarray(image.convert("L"), dtype=np.uint8).copy(), size, negated=False)
    pixels = np.asarray(image)
    background = _corner_colour(pixels)
    box = _trim_box(pixels, background)
    if box is not None:
        image = image.crop(box)
    # Longest edge to 28 by subsampling (nearest neighbour: the paper skips rows and columns).
    width, height = image.size
    scale = SIZE / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = image.resize(new_size, Image.Resampling.NEAREST)
    image = image.filter(ImageFilter.UnsharpMask(radius=1.0, percent=100, threshold=0))
    # Extend the shorter edge to 28, object centred, with the background colour so no seam appears.
    fill = tuple(int(round(c)) for c in np.atleast_1d(background))
    canvas = Image.new(image.mode, (SIZE, SIZE), fill if len(fill) > 1 else fill[0])
    canvas.paste(image, ((SIZE - new_size[0]) // 2, (SIZE - new_size[1]) // 2))
    # A dark background is already what the model expects: negate only light ones.
    negate = float(np.mean(background)) >= 128
    if negate:
        canvas = ImageOps.invert(canvas)
    return Prepared(np.asarray(canvas.convert("L"), dtype=np.uint8).copy(), size, negated=negate)


def prepare_file(source: bytes | str | Path, name: str | None = None) -> Prepared:
    return prepare(open_image(source, name))


def normalise(pixels: np.ndarray, mean: float | None = None, std: float | None = None) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) scaled exactly like the training data."""
    if mean is None or std is None:
        from ..data.dataset import MEAN, STD  # torch-free callers (the ONNX path) always pass their own
        mean, std = MEAN, STD
    x = np.asarray(pixels, dtype=np.float32) / 255.0
    return ((x - np.float32(mean)) / np.float32(std))[:, None].astype(np.float32)


def image_files(paths: list[str | Path]) -> list[Path]:
    """The named files, and the images (by extension, sorted) inside named folders."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in EXTENSIONS)
        elif p.exists():
            found.append(p)
        else:
            raise ImageError(f"{p} does not exist", "missing")
    return found
