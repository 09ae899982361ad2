"""Photos prepared like Fashion-MNIST: the model keeps its accuracy on them; every format and bad file handled."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fashionlab.serving.predict import load_torch_predictor
from fashionlab.serving.preprocess import ImageError, Prepared, prepare_file


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_product_photos_keep_the_models_accuracy(served_run, fmnist, photos):
    root, name = served_run
    predictor = load_torch_predictor(name, root)
    n = 400
    labels = fmnist.test_labels[:n]
    originals = predictor.probabilities([Prepared(a, (28, 28), False) for a in fmnist.test_images[:n]])
    prepared = [prepare_file(p) for p in photos(range(n))]
    on_photos = predictor.probabilities(prepared)
    acc_original = (originals.argmax(1) == labels).mean()
    acc_photos = (on_photos.argmax(1) == labels).mean()
    assert acc_original > 0.7  # a real model, not chance
    assert acc_photos >= 0.9 * acc_original, (acc_photos, acc_original)
    assert all(p.negated for p in prepared)


def test_raw_photo_without_preparation_would_fail(served_run, fmnist, photos):
    """Why the pipeline matters: the same photos merely shrunk to 28x28 (light background) lose most accuracy."""
    root, name = served_run
    predictor = load_torch_predictor(name, root)
    n = 200
    naive = [np.asarray(Image.open(io.BytesIO(p)).convert("L").resize((28, 28))) for p in photos(range(n))]
    acc_naive = (predictor.probabilities([Prepared(a, (28, 28), False) for a in naive]).argmax(1)
                 == fmnist.test_labels[:n]).mean()
    prepared = [prepare_file(p) for p in photos(range(n))]
    acc_prepared = (predictor.probabilities(prepared).argmax(1) == fmnist.test_labels[:n]).mean()
    assert acc_naive < acc_prepared - 0.3, (acc_naive, acc_prepared)


def test_geometry_trim_resize_centre_negate():
    """A dark 200x100 box on a 600x400 white photo: trimmed, longest edge 28, centred, white on black."""
    photo = Image.new("RGB", (600, 400), (250, 250, 250))
    ImageDraw.Draw(photo).rectangle([50, 250, 249, 349], fill=(20, 20, 20))  # off-centre on purpose
    pixels = prepare_file(_save(photo, "PNG")).pixels
    rows, cols = np.flatnonzero((pixels > 128).any(1)), np.flatnonzero((pixels > 128).any(0))
    assert (cols[0], cols[-1]) == (0, 27)
    assert rows[-1] - rows[0] + 1 == 14 and rows[0] == 7  # 100/200 * 28 rows, centred vertically
    assert pixels[:5].max() < 10 and pixels[-5:].max() < 10  # background negated to black


def test_alpha_is_composited_on_white():
    shape = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(shape).ellipse([40, 30, 260, 170], fill=(200, 30, 30, 255))
    on_white = Image.alpha_composite(Image.new("RGBA", shape.size, "white"), shape).convert("RGB")
    transparent = prepare_file(_save(shape, "PNG"))
    assert transparent.negated
    np.testing.assert_array_equal(transparent.pixels, prepare_file(_save(on_white, "PNG")).pixels)


def test_gif_uses_the_first_frame():
    first, second = Image.new("L", (90, 60), 255), Image.new("L", (90, 60), 255)
    ImageDraw.Draw(first).rectangle([10, 10, 30, 50], fill=0)
    ImageDraw.Draw(second).rectangle([40, 5, 85, 20], fill=0)
    gif = _save(first, "GIF", save_all=True, append_images=[second])
    np.testing.assert_array_equal(prepare_file(gif).pixels, prepare_file(_save(first, "PNG")).pixels)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "JPEG", "GIF"])
def test_every_format_and_greyscale_gives_a_similar_input(photos, fmt):
    reference = prepare_file(photos([3], fmt="PNG")[0]).pixels.astype(int)
    colour = Image.open(io.BytesIO(photos([3], fmt="PNG")[0]))
    for image in (colour, colour.convert("L")):
        kw = {"lossless": True} if fmt == "WEBP" else {}
        got = prepare_file(_save(image, fmt, **kw)).pixels.astype(int)
        assert np.abs(got - reference).mean() < 6, fmt  # JPEG and GIF's palette change a few grey levels


def test_a_fashion_mnist_image_is_used_as_it_is(fmnist):
    raw = fmnist.test_images[11]
    prepared = prepare_file(_save(Image.fromarray(raw), "PNG"))
    assert not prepared.negated
    np.testing.assert_array_equal(prepared.pixels, raw)
    # the same image with a light background is a photo: negated back, close to the original
    light = prepare_file(_save(Image.fromarray(255 - raw), "PNG"))
    assert light.negated and light.pixels.shape == (28, 28)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A valid PNG of 1x1 pixel whose IHDR says width x height: a decompression bomb's header."""
    png = bytearray(_save(Image.new("L", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then length + type of the first chunk
    png[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    png[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(png[ihdr - 4:ihdr + 13])))
    return bytes(png)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("data, code", [
    (b"", "empty"),
    (b"hello, not an image", "not_an_image"),
    (b"%PDF-1.4 1 0 obj", "not_an_image"),
    (_png_header_claiming(10_001, 10_000), "too_many_pixels"),
    (_png_header_claiming(50_000, 50_000), "too_many_pixels"),
], ids=["empty", "text", "pdf", "10001x10000", "50000x50000"])
def test_bad_files_are_refused_with_a_reason(data, code):
    with pytest.raises(ImageError) as err:
        prepare_file(data, "x")
    assert err.value.code == code


def test_truncated_file_is_refused(photos):
    jpeg = photos([0])[0]
    with pytest.raises(ImageError) as err:
        prepare_file(jpeg[: len(jpeg) // 3], "cut.jpg")
    assert err.value.code == "damaged" and "cut.jpg" in str(err.value)
