"""Taking the backdrop out of a product photo: tinted, grey, noisy and unevenly lit backdrops become black, an
off-centre garment is centred, and a soft shadow is not taken as garment.

The photos are drawn: a dark rectangle (the garment) on a backdrop, so where the garment must land in the 28x28
input is known exactly: a 200x150 garment becomes 28x21 pixels (columns 0-27, rows 3-23).
"""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from fashionlab.serving.backdrop import fit_backdrop
from fashionlab.serving.preprocess import SIZE, prepare_file

GARMENT = (200, 150)  # width, height in the photo


def _light(shape: tuple, falloff: float, angle: float, vignette: float) -> np.ndarray:
    """Light on each pixel, 1 at the brightest: a linear falloff in a direction and darker corners."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / np.array([shape[0] - 1, shape[1] - 1])[:, None, None] - 0.5
    along = x * np.cos(np.radians(angle)) + y * np.sin(np.radians(angle))
    light = (1 - falloff * (along - along.min()) / np.ptp(along)) * (1 - vignette * 2 * (x**2 + y**2))
    return light / light.max()


def _photo(backdrop=(250, 250, 250), garment=40, at=(100, 120), canvas=(420, 360), light=None, shadow=0.0,
           noise=0.0, seed=0) -> np.ndarray:
    """(H, W, 3) float photo of a garment-coloured rectangle of GARMENT pixels with its top-left corner `at`."""
    height, width = canvas[1], canvas[0]
    left, top = at
    inside = np.zeros((height, width), bool)
    inside[top:top + GARMENT[1], left:left + GARMENT[0]] = True
    photo = np.ones((height, width, 3)) * np.array(backdrop, float)
    if shadow:  # the rectangle moved down and right by 12 pixels, blurred over 10: darkens the backdrop only
        moved = np.roll(inside, (12, 12), axis=(0, 1)).astype(np.uint8) * 255
        soft = np.asarray(Image.fromarray(moved).filter(ImageFilter.GaussianBlur(10)), float) / 255
        photo *= (1 - shadow * soft)[..., None]
    photo[inside] = garment
    if light is not None:
        photo *= _light((height, width), *light)[..., None]
    if noise:
        photo += np.random.default_rng(seed).normal(0, noise, photo.shape)
    return np.clip(photo, 0, 255).round().astype(np.uint8)


def _prepared(photo: np.ndarray, fmt: str = "PNG") -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(photo, "RGB").save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return prepare_file(buf.getvalue()).pixels


def _box(pixels: np.ndarray, level: int = 64) -> tuple:
    """(first row, last row, first column, last column) of the pixels brighter than `level`."""
    rows, cols = np.flatnonzero((pixels > level).any(1)), np.flatnonzero((pixels > level).any(0))
    return rows[0], rows[-1], cols[0], cols[-1]


def _assert_garment_centred_on_black(pixels: np.ndarray) -> None:
    top, bottom, left, right = _box(pixels)
    assert (left, right) == (0, SIZE - 1)  # the longest edge fills the input
    assert bottom - top + 1 == round(SIZE * GARMENT[1] / GARMENT[0]) and abs(top - (SIZE - 1 - bottom)) <= 1
    assert pixels[:top - 1].max(initial=0) <= 8 and pixels[bottom + 2:].max(initial=0) <= 8  # the backdrop: black
    assert pixels[top + 1:bottom, 1:-1].min() > 100  # the garment: whole (a 90-grey one on a 175-grey backdrop: 124)


@pytest.mark.parametrize("backdrop", [(250, 250, 250), (242, 232, 208), (214, 226, 246), (236, 214, 220),
                                      (200, 200, 200), (160, 164, 160)],
                         ids=["white", "cream", "bluish", "pinkish", "light-grey", "grey"])
def test_tinted_and_grey_backdrops_become_black(backdrop):
    _assert_garment_centred_on_black(_prepared(_photo(backdrop=backdrop, garment=30)))


@pytest.mark.parametrize("light", [(0.3, 0, 0), (0.3, 135, 0.15), (0.2, 270, 0.1), (0, 0, 0.2)],
                         ids=["falls-off-to-the-right", "diagonal-with-vignette", "falls-off-upwards", "vignette"])
def test_unevenly_lit_backdrop_becomes_black(light):
    _assert_garment_centred_on_black(_prepared(_photo(backdrop=(245, 240, 232), light=light)))


def test_noisy_jpeg_backdrop_becomes_black():
    _assert_garment_centred_on_black(_prepared(_photo(noise=8.0), "JPEG"))


@pytest.mark.parametrize("at", [(5, 5), (215, 205), (8, 200), (110, 100)],
                         ids=["top-left", "bottom-right", "bottom-left", "centre"])
def test_an_off_centre_garment_is_centred(at):
    _assert_garment_centred_on_black(_prepared(_photo(at=at)))


@pytest.mark.parametrize("strength", [0.1, 0.2])
def test_a_soft_shadow_is_not_taken_as_garment(strength):
    """A shadow up to 20% darker than the backdrop beside a dark garment: the garment keeps its box and size."""
    shadowed = _prepared(_photo(shadow=strength))
    _assert_garment_centred_on_black(shadowed)
    plain = _prepared(_photo())
    assert _box(shadowed) == _box(plain)
    assert np.abs(shadowed.astype(int) - plain).mean() < 1.5  # at most a trace along the garment's own edge


def test_a_light_garment_on_a_grey_backdrop_is_kept_whole():
    """A white shirt with dark seams on a grey backdrop: its light parts are brighter than the backdrop."""
    photo = _photo(backdrop=(170, 170, 170), garment=235)
    left, top = 100, 120
    for x in (left, left + 99, left + 199):  # three dark seams, top to bottom
        photo[top:top + GARMENT[1], max(x - 2, left):x + 2] = 40
    pixels = _prepared(photo)
    top_row, bottom_row, left_col, right_col = _box(pixels)
    assert (left_col, right_col) == (0, SIZE - 1)  # the shirt's width, not the seams'
    assert pixels[:top_row - 1].max(initial=0) <= 8 and pixels[bottom_row + 2:].max(initial=0) <= 8


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backdrop=st.tuples(*[st.integers(175, 255)] * 3), garment=st.integers(0, 90),
       at=st.tuples(st.integers(2, 218), st.integers(2, 208)),
       light=st.tuples(st.floats(0, 0.3), st.floats(0, 360), st.floats(0, 0.15)), noise=st.floats(0, 6))
def test_any_light_backdrop_any_lighting_any_place(backdrop, garment, at, light, noise):
    _assert_garment_centred_on_black(_prepared(_photo(backdrop, garment, at, light=light, noise=noise)))


def test_fit_backdrop_follows_uneven_light_past_a_garment_on_the_edge():
    light = _light((300, 400), 0.3, 60, 0.15)
    photo = np.ones((300, 400, 3)) * np.array([240.0, 230.0, 215.0]) * light[..., None]
    photo[40:300, 0:150] = 35.0  # the garment runs off the bottom and left edges
    field = fit_backdrop(photo.astype(np.float32))
    backdrop = np.ones(photo.shape[:2], bool)
    backdrop[40:300, 0:150] = False
    assert np.abs(field - photo)[backdrop].max() < 3.0
