"""Turn any photo into a Fashion-MNIST image, the way the data set itself was made.

Xiao et al. 2017 (arXiv 1708.07747, section 2) made each 28x28 image from a product photo on a light
background by: trimming the edges close to the corner colour (within 5% of the maximum intensity), resizing
the longest edge to 28 by subsampling, sharpening with a Gaussian operator (radius and sigma 1.0), extending
the shorter edge to 28 with the object centred, negating, and converting to 8-bit greyscale. A model trained on
Fashion-MNIST only works on photos prepared the same way; fed a raw photo (light background) it sees an image
unlike any it was trained on ("everything is a Bag").

Photos taken elsewhere than in the data set's studio are prepared in two stages. backdrop.py takes the backdrop
out: a tinted, grey or unevenly lit backdrop, sensor noise and a soft shadow become black, and the garment its
darkness against white (which is what negating a photo on white gives). framing.py then frames the garment as
the data set does: turned upright when it is a few degrees askew, trimmed to its box, the longest edge resized
to 28, sharpened and centred on black. An image that already looks like Fashion-MNIST (28x28, dark background)
is used as it is.

Decoding is bounded: the pixel count is read from the header before any pixel is decoded, a JPEG is decoded at
a reduced scale (`Image.draft`), the memory a decode needs is worked out for the file's format and mode and
refused above MAX_DECODE_BYTES, and the decoded image is shrunk by an integer factor to a working size of
WORK..2*WORK pixels (longest edge) before anything else touches it. Every later step works on that small image
(Pillow's C code and a few NumPy passes), so a photo costs about the same whatever its size.

This module needs only Pillow and NumPy, so `predict --onnx` runs without torch.
"""

from __future__ import annotations

import io
import math
import os
import stat
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin

from ..errors import FashionlabError
from . import backdrop, framing

SIZE = 28
WORK = 8 * SIZE  # decoded images are shrunk to a longest edge of WORK..2*WORK-1: trimming stays within 1/8 pixel
MAX_PIXELS = 10_000 * 10_000  # header limit for every format (decompression bombs)
MAX_DECODE_BYTES = 100 * 2**20  # memory one decode may take, whatever the format and mode
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# Pillow warns from 89 Mpixels on; align it with our own limit so accepted images never warn.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, MAX_PIXELS)

# Bytes per pixel of a decoded image in Pillow's memory; every mode not listed takes 4 (RGB is padded to 32 bits).
STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# A WebP is decoded whole by libwebp, copied into a Python bytes object, then into the image: measured 15.5
# bytes per pixel for RGB and RGBA alike.
WEBP_BYTES = 16
# Modes that Image.reduce averages without a full-size copy. Palette indices cannot be averaged, and Pillow
# averages alpha images through a full-size premultiplied copy: those are subsampled (nearest neighbour)
# instead, which is what the paper does anyway.
AVERAGED_MODES = ("L", "RGB", "CMYK", "YCbCr", "LAB", "HSV", "I", "F")


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
        Image.fromarray(self.pixels, "L").save(buf, "PNG", compress_level=1)  # 28x28: size is no concern
        return buf.getvalue()


_SPECIAL = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _not_regular(name: str, mode: int) -> ImageError:
    kind = next((what for test, what in _SPECIAL if test(mode)), "not a regular file")
    return ImageError(f"{name} is {kind}, not an image file", "not_a_file")


@contextmanager
def _open_stream(source: bytes | str | Path | BinaryIO, name: str):
    """A seekable binary stream over the source, refusing empty, missing, unreadable and special files.

    A path is checked with stat() before it is opened (reading a FIFO would wait forever for a writer), and
    again with fstat() on the opened descriptor, which O_NONBLOCK keeps from blocking, so a file swapped for a
    FIFO in between is refused too.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise ImageError(f"{name} is empty (0 bytes)", "empty")
        yield io.BytesIO(source)
        return
    if hasattr(source, "read"):  # an open binary file, e.g. an upload spooled by the web server
        source.seek(0, os.SEEK_END)
        if not source.tell():
            raise ImageError(f"{name} is empty (0 bytes)", "empty")
        source.seek(0)
        yield source
        return
    try:
        mode = os.stat(source).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(name, mode)
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(f"{name} does not exist", "missing") from None
    except PermissionError:
        raise ImageError(f"cannot read {name}: permission denied (the file's permissions do not allow "
                         "reading it)", "unreadable") from None
    except OSError as err:
        raise ImageError(f"cannot read {name}: {err.strerror or err}", "unreadable") from None
    with open(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(name, info.st_mode)
        if not info.st_size:
            raise ImageError(f"{name} is empty (0 bytes)", "empty")
        yield stream


def _jpeg_first_scan_components(stream: BinaryIO) -> int | None:
    """How many components the first scan of a JPEG holds (its SOS segment), or None when it is not found."""
    start = stream.tell()
    try:
        stream.seek(2)  # after SOI
        for _ in range(10_000):  # the segments before the first scan
            head = stream.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return None
            if head[1] == 0xFF:  # fill byte before a marker
                stream.seek(-3, os.SEEK_CUR)
                continue
            if head[1] == 0xDA:
                count = stream.read(1)
                return count[0] if count else None
            stream.seek(int.from_bytes(head[2:], "big") - 2, os.SEEK_CUR)
        return None
    finally:
        stream.seek(start)


def _jpeg_coefficient_bytes(image: JpegImagePlugin.JpegImageFile, size: tuple, stream: BinaryIO) -> int:
    """Memory libjpeg takes for the DCT coefficients of the whole image, whatever the decoding scale.

    A progressive JPEG, and a sequential one whose first scan does not hold every component, is decoded from
    coefficients buffered for the whole image: 2 bytes per coefficient, 64 per 8x8 block of each component at
    its own sampling (3 bytes per pixel for the usual 4:2:0 colour, 6 for 4:4:4).
    """
    if not image.layer:
        return 0
    h_max = max(layer[1] for layer in image.layer) or 1
    v_max = max(layer[2] for layer in image.layer) or 1
    blocks = sum(math.ceil(math.ceil(size[0] * h / h_max) / 8) * math.ceil(math.ceil(size[1] * v / v_max) / 8)
                 for _, h, v, _ in image.layer)
    coefficients = blocks * 64 * 2
    if image.info.get("progressive") or image.info.get("progression") or coefficients <= 2**20:
        return coefficients  # small enough to count without reading the scan headers
    if image.layers > 1:
        components = _jpeg_first_scan_components(stream)
        if components is None or components < image.layers:
            return coefficients
    return 0


def decode_bytes(image: Image.Image, original_size: tuple | None = None, stream: BinaryIO | None = None) -> int:
    """Peak memory of loading `image` (opened, not loaded; a JPEG after `draft`) at its current size."""
    width, height = image.size
    per_pixel = WEBP_BYTES if image.format == "WEBP" else STORAGE_BYTES.get(image.mode, 4)
    total = width * height * per_pixel
    if isinstance(image, JpegImagePlugin.JpegImageFile) and stream is not None:
        total += _jpeg_coefficient_bytes(image, original_size or image.size, stream)
    return total


def _draft_size(size: tuple) -> tuple | None:
    """The size to ask `Image.draft` for: the longest edge still at least WORK after the reduced-scale decode."""
    longest = max(size)
    if longest < 2 * WORK:
        return None
    return max(1, size[0] * WORK // longest), max(1, size[1] * WORK // longest)


def _too_big(name: str, image: Image.Image, original: tuple, needed: int) -> ImageError:
    per_pixel = needed / (original[0] * original[1])  # bytes per pixel of the image as the file declares it
    return ImageError(
        f"{name} is {original[0]}x{original[1]} pixels ({image.format} {image.mode}): decoding it would take "
        f"{needed / 2**20:,.0f} MB, more than the {MAX_DECODE_BYTES // 2**20} MB one image may use; send a smaller "
        f"image (at most about {int(MAX_DECODE_BYTES / per_pixel):,} pixels of this kind)", "too_many_pixels")


def _open(stream: BinaryIO, name: str) -> Image.Image:
    try:
        return Image.open(stream, formats=FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(f"{name} has too many pixels (more than {MAX_PIXELS:,})", "too_many_pixels") from None
    except Exception:  # Pillow's parsers raise many kinds of error on foreign or hostile bytes
        raise ImageError(f"{name} is not a PNG, JPEG, WebP, BMP or GIF image", "not_an_image") from None


def open_image(source: bytes | str | Path | BinaryIO, name: str | None = None,
               admit: Callable[[int], None] | None = None) -> Image.Image:
    """Decode the first frame of a PNG/JPEG/WebP/BMP/GIF, shrunk to the working size (see `shrink`).

    Refuses empty, truncated, foreign and special files, and images whose header promises more pixels, or more
    memory to decode, than the limits allow. `admit(bytes)`, when given, is called with the memory the decode
    will take just before it starts, and may raise to stop it. `info["original_size"]` keeps the size the file
    declares.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "upload")
    with _open_stream(source, name) as stream:
        image = _open(stream, name)
        original = image.size
        if original[0] * original[1] > MAX_PIXELS:  # checked from the header, before any pixel is decoded
            raise ImageError(f"{name} is {original[0]}x{original[1]} pixels; at most {MAX_PIXELS:,} pixels are "
                             "accepted", "too_many_pixels")
        try:
            if (request := _draft_size(original)) is not None:
                image.draft(None, request)  # a JPEG decodes at 1/2, 1/4 or 1/8 scale; other formats ignore it
            needed = decode_bytes(image, original, stream)
        except Exception:  # a header that parsed but cannot be decoded from
            raise ImageError(f"{name} is truncated or damaged", "damaged") from None
        if needed > MAX_DECODE_BYTES:
            raise _too_big(name, image, original, needed)
        if admit is not None:
            admit(needed)
        try:
            image.load()
        except Image.DecompressionBombError:
            raise ImageError(f"{name} has too many pixels (more than {MAX_PIXELS:,})", "too_many_pixels") from None
        except Exception as err:  # as in _open: any decoder error means a damaged file
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ImageError(f"{name} is truncated or damaged ({reason})", "damaged") from None
    small = shrink(image)
    small.info["original_size"] = original
    return small


def shrink(image: Image.Image) -> Image.Image:
    """The image reduced by an integer factor to a longest edge of WORK..2*WORK-1 (unchanged when smaller).

    Averaged (Image.reduce) where the mode allows it without a full-size copy, else subsampled.
    """
    factor = max(image.size) // WORK
    if factor < 2:
        return image
    if image.mode in AVERAGED_MODES and "transparency" not in image.info:
        return image.reduce(factor)
    size = (math.ceil(image.size[0] / factor), math.ceil(image.size[1] / factor))
    return image.resize(size, Image.Resampling.NEAREST)


def _upright(image: Image.Image) -> Image.Image:
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        return ImageOps.exif_transpose(image) if orientation != 1 else image
    except Exception:  # a damaged EXIF block only loses the orientation, not the photo
        return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB or L, upright (EXIF orientation), transparency composited on white like a product photo."""
    image = _upright(image)
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    if image.mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;"):  # 16-bit, 32-bit or float greyscale
        with np.errstate(invalid="ignore"):  # float pixels may be signalling NaNs: they become 0 here
            values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
        top = 65535.0 if values.max() > 255 else 255.0
        return Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8), "L")
    return image.convert("L" if image.mode == "1" else "RGB")


def looks_like_fashion_mnist(image: Image.Image) -> bool:
    """28x28 with a dark background: already prepared, so it must not be trimmed, sharpened or negated again."""
    if image.size != (SIZE, SIZE):
        return False
    grey = np.asarray(image.convert("L"))
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return float(np.median(border)) < 128


def prepare(image: Image.Image) -> Prepared:
    """A decoded image of any size and mode as the model's 28x28 input (see the module docstring)."""
    size = image.info.get("original_size", image.size)
    image = _flatten(shrink(image))
    if looks_like_fashion_mnist(image):
        return Prepared(np.asarray(image.convert("L"), dtype=np.uint8).copy(), size, negated=False)
    pixels = np.asarray(image, dtype=np.float32).reshape(image.size[1], image.size[0], -1)
    dark, mask, negated = backdrop.remove(pixels)
    garment = Image.fromarray((dark * 255).round().astype(np.uint8), "L")
    return Prepared(framing.frame(garment, mask), size, negated=negated)


def prepare_file(source: bytes | str | Path | BinaryIO, name: str | None = None) -> Prepared:
    return prepare(open_image(source, name))


def normalise(pixels: np.ndarray, mean: float | None = None, std: float | None = None) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) scaled exactly like the training data."""
    if mean is None or std is None:
        from ..data.dataset import MEAN, STD  # torch-free callers (the ONNX path) always pass their own
        mean, std = MEAN, STD
    x = np.asarray(pixels, dtype=np.float32) / 255.0
    return ((x - np.float32(mean)) / np.float32(std))[:, None].astype(np.float32)


def image_files(paths: list[str | Path]) -> list[Path]:
    """The named paths, and the images (by extension, sorted) inside named folders.

    Named paths that are missing or not images are kept: reading them reports why, file by file. Inside
    folders, anything with an image extension that is not a folder is kept, so a FIFO or device named like an
    image gets its own error rather than being skipped without a word.
    """
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in EXTENSIONS and not f.is_dir())
        else:
            found.append(p)
    return found
