"""Property-based tests of image decoding: whatever the bytes, the answer is a prediction-ready 28x28 image or a
clear ImageError (a 4xx over HTTP), never another exception.

Images are drawn in every mode Pillow decodes (1, L, LA, P, RGB, RGBA, I;16, I, F, CMYK), from 1x1 to a few
thousand pixels a side at extreme aspect ratios, and saved in each accepted format that can hold that mode;
modes no accepted format holds (I, F) go to `prepare` as decoded images.
"""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fashionlab.serving.app import STATUS, create_app
from fashionlab.serving.predict import load_torch_predictor
from fashionlab.serving.preprocess import SIZE, ImageError, Prepared, prepare, prepare_file

BYTES_PER_PIXEL = {"L": 1, "LA": 2, "P": 1, "RGB": 3, "RGBA": 4, "I;16": 2, "I": 4, "F": 4, "CMYK": 4}
FORMATS_FOR_MODE = {  # the accepted formats Pillow can save each mode to
    "1": ["PNG", "BMP", "GIF", "JPEG"], "L": ["PNG", "JPEG", "BMP", "GIF", "WEBP"], "LA": ["PNG", "WEBP", "GIF"],
    "P": ["PNG", "BMP", "GIF", "WEBP"], "RGB": ["PNG", "JPEG", "BMP", "GIF", "WEBP"],
    "RGBA": ["PNG", "BMP", "WEBP", "GIF"], "I;16": ["PNG"], "I": [], "F": [], "CMYK": ["JPEG"],
}
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF\x10\x00\x00\x00WEBPVP8 "]
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.one_of(
    st.tuples(st.integers(1, 64), st.integers(1, 64)),
    st.tuples(st.integers(1, 3000), st.integers(1, 3000)),
    st.tuples(st.integers(1, 3), st.integers(500, 3000)),  # extreme aspect ratios, both ways
    st.tuples(st.integers(500, 3000), st.integers(1, 3)),
)


@st.composite
def images(draw) -> Image.Image:
    """A random image: random pixels up to 64x64, scaled up (nearest neighbour) to sizes beyond that."""
    mode = draw(st.sampled_from(list(FORMATS_FOR_MODE)))
    width, height = draw(sizes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    small = (min(width, 64), min(height, 64))
    if mode == "1":
        image = Image.frombytes("1", small, rng.bytes((small[0] + 7) // 8 * small[1]))
    else:  # in I and F, any 32 bits: negative numbers, NaN and infinity included
        image = Image.frombytes(mode, small, rng.bytes(small[0] * small[1] * BYTES_PER_PIXEL[mode]))
    if mode == "P":
        image.putpalette(rng.bytes(768))
    return image.resize((width, height), Image.Resampling.NEAREST) if small != (width, height) else image


@st.composite
def image_files(draw) -> bytes:
    image = draw(images().filter(lambda im: FORMATS_FOR_MODE[im.mode]))
    fmt = draw(st.sampled_from(FORMATS_FOR_MODE[image.mode]))
    options = {}
    if fmt == "PNG" and image.mode in ("P", "L", "RGB") and draw(st.booleans()):
        options["transparency"] = (7, 7, 7) if image.mode == "RGB" else 7  # a colour key (tRNS)
    if fmt == "WEBP":
        options["quality"] = 50
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


@st.composite
def damaged_files(draw) -> bytes:
    """A valid small image file, then cut short and/or with some bytes overwritten."""
    data = bytearray(draw(image_files()))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))])


def _check(outcome) -> None:
    if isinstance(outcome, ImageError):
        assert outcome.code in STATUS and 400 <= STATUS[outcome.code] < 500 and str(outcome)
    else:
        assert isinstance(outcome, Prepared)
        assert outcome.pixels.shape == (SIZE, SIZE) and outcome.pixels.dtype == np.uint8


def _prepare_file(data: bytes):
    try:
        return prepare_file(data, "upload")
    except ImageError as err:
        return err


@FAST
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(_prepare_file(data))


@FAST
@given(st.sampled_from(MAGIC), st.binary(max_size=4096))
def test_random_bytes_behind_a_real_signature(magic, data):
    _check(_prepare_file(magic + data))


@FAST
@given(image_files())
def test_valid_images_of_any_mode_and_size(data):
    outcome = _prepare_file(data)
    _check(outcome)
    assert isinstance(outcome, Prepared), outcome  # nothing here is too big, damaged or foreign


@FAST
@given(damaged_files())
def test_damaged_images(data):
    _check(_prepare_file(data))


@FAST
@given(images())
def test_decoded_images_of_any_mode_and_size(image):
    _check(prepare(image))


@pytest.fixture(scope="module")
def client(served_run):
    root, name = served_run
    with TestClient(create_app(load_torch_predictor(name, root))) as client:
        yield client


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=2048), damaged_files(), image_files()))
def test_over_http_every_upload_is_answered_200_or_4xx(client, data):
    response = client.post("/predict", files=[("files", ("upload.bin", data, "application/octet-stream"))])
    assert response.status_code == 200 or (400 <= response.status_code < 500 and response.json()["error"]), \
        response.text
