"""Decoding with bounded memory: huge images are shrunk while decoding, or refused from their header.

Peak memory is read from the kernel (VmHWM) in a fresh process: Pillow allocates pixels in C, where tracemalloc
does not look.
"""

import io
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image, ImageDraw

from fashionlab.serving.preprocess import MAX_DECODE_BYTES, WORK, ImageError, decode_bytes, open_image, prepare_file

MEASURE = """
import sys
from fashionlab.serving.preprocess import open_image, prepare

def kib(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))

before = kib("VmRSS")
image = open_image(sys.argv[1])
prepared = prepare(image)
print(kib("VmHWM") - before, *image.size, *prepared.original_size)
"""


def _peak_growth(path) -> tuple[float, tuple, tuple]:
    """(MB the process grew by at its peak while decoding `path`, working size, declared size)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kib, width, height, orig_w, orig_h = map(int, done.stdout.split())
    return kib / 1024, (width, height), (orig_w, orig_h)


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def huge_grey_png(tmp_path_factory):
    """10,000 x 10,000 greyscale (the pixel limit): 120 KB of PNG, 95 MB decoded, 1.1 GB as a float32 RGB copy."""
    image = Image.new("L", (10_000, 10_000), 255)
    ImageDraw.Draw(image).rectangle([2500, 2000, 7500, 8000], fill=40)
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    image.save(path, compress_level=1)
    return path


def test_huge_png_is_decoded_within_the_memory_bound(huge_grey_png):
    peak_mb, working, declared = _peak_growth(huge_grey_png)
    assert declared == (10_000, 10_000)
    assert max(working) < 2 * WORK  # shrunk right after decoding: everything after works on a small image
    assert peak_mb < MAX_DECODE_BYTES / 2**20 + 16, peak_mb


def test_big_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    image = Image.new("RGB", (6000, 4000), (250, 250, 250))
    ImageDraw.Draw(image).ellipse([1500, 1000, 4500, 3000], fill=(30, 40, 50))
    path = tmp_path / "big.jpg"
    image.save(path, quality=75)
    del image
    peak_mb, working, declared = _peak_growth(path)
    assert declared == (6000, 4000) and max(working) < 2 * WORK
    assert peak_mb < 24, peak_mb  # 1/8 scale: 750x500; the full size would be 92 MB


def _png_claiming(width: int, height: int, mode: str) -> bytes:
    """A valid 1x1 PNG of `mode` whose header says width x height."""
    png = bytearray(_save(Image.new(mode, (1, 1)), "PNG"))
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def _jpeg_claiming(width: int, height: int, progressive: bool) -> bytes:
    """A valid 16x16 colour JPEG whose frame header (SOF) says width x height."""
    jpeg = bytearray(_save(Image.new("RGB", (16, 16), (200, 10, 10)), "JPEG", progressive=progressive))
    sof = jpeg.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


@pytest.mark.parametrize("data, refused", [
    (_png_claiming(10_000, 10_000, "RGB"), True),   # 381 MB: RGB takes 4 bytes per pixel in memory
    (_png_claiming(6_000, 6_000, "RGBA"), True),    # 137 MB
    (_png_claiming(10_000, 10_000, "L"), False),    # 95 MB: within the bound (then damaged: no pixel data)
    (_png_claiming(7_000, 7_000, "I;16"), False),   # 93 MB
    (_jpeg_claiming(8_000, 8_000, progressive=True), True),  # 183 MB of DCT coefficients, whatever the scale
    (_jpeg_claiming(8_000, 8_000, progressive=False), False),  # decoded at 1/8 scale: 4 MB
], ids=["png-rgb", "png-rgba", "png-grey", "png-16bit", "jpeg-progressive", "jpeg-baseline"])
def test_memory_needed_is_checked_from_the_header_for_each_format_and_mode(data, refused):
    try:
        open_image(data, "x")
        code = None  # libjpeg makes up the missing data of a JPEG
    except ImageError as err:
        code, message = err.code, str(err)
    if refused:
        assert code == "too_many_pixels" and "MB" in message, message
    else:
        assert code in (None, "damaged")  # it got past the header to decoding


def test_decode_bytes_counts_webp_buffers():
    webp = Image.open(io.BytesIO(_save(Image.new("RGB", (40, 30)), "WEBP")))
    assert decode_bytes(webp) == 40 * 30 * 16


def test_special_files_and_unreadable_paths_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ImageError) as err:
        prepare_file(tmp_path, str(tmp_path))
    assert err.value.code == "not_a_file" and "directory" in str(err.value)
    with pytest.raises(ImageError) as err:
        prepare_file(tmp_path / "gone.png")
    assert err.value.code == "missing" and "gone.png does not exist" in str(err.value)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError) as err:
        prepare_file(tmp_path / "empty.png")
    assert err.value.code == "empty"
