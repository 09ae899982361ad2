import pytest
import torch

from fashionlab.data.augment import BACKGROUND, apply_augment, parse_augment
from fashionlab.errors import ConfigError


def batch(n=16):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("spec", ["crop", "flip", "affine", "erase", "crop:padding=3,flip:p=1,affine,erase:p=1"])
def test_shapes_and_reproducibility(spec):
    x = batch()
    pipeline = parse_augment(spec)
    a = apply_augment(x, pipeline, torch.Generator().manual_seed(1))
    b = apply_augment(x, pipeline, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)


def test_flip_mirrors_exactly():
    x = batch()
    assert torch.equal(apply_augment(x, parse_augment("flip:p=1"), torch.Generator()), x.flip(3))
    assert torch.equal(apply_augment(x, parse_augment("flip:p=0"), torch.Generator()), x)


def test_crop_is_a_shift_with_background_fill():
    x = batch(64)
    out = apply_augment(x, parse_augment("crop:padding=4"), torch.Generator().manual_seed(0))
    assert torch.equal(apply_augment(x, parse_augment("crop:padding=0"), torch.Generator()), x)
    # every output row/column either comes from the input or is background padding
    assert ((out == BACKGROUND).any(dim=(1, 2, 3))).float().mean() > 0.5


def test_identity_affine_and_no_erase():
    x = batch()
    same = apply_augment(x, parse_augment("affine:degrees=0:scale=0:translate=0"), torch.Generator())
    assert torch.allclose(same, x, atol=1e-5)
    assert torch.equal(apply_augment(x, parse_augment("erase:p=0"), torch.Generator()), x)


def test_affine_share_leaves_the_others_exact():
    x = batch(64)
    out = apply_augment(x, parse_augment("affine:p=0.5"), torch.Generator().manual_seed(0))
    untouched = (out == x).flatten(1).all(1)
    assert 0 < untouched.sum() < 64  # some images exactly as they were, the others moved
    assert torch.equal(apply_augment(x, parse_augment("affine:p=0"), torch.Generator()), x)


def test_erase_changes_a_rectangle_only():
    x = torch.full((8, 1, 28, 28), 5.0)
    out = apply_augment(x, parse_augment("erase:p=1"), torch.Generator().manual_seed(0))
    changed = (out != 5.0)[:, 0]
    for mask in changed:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.float().mean() > 0.95  # one solid rectangle


@pytest.mark.parametrize("spec, message", [
    ("blur", "unknown augmentation 'blur'; choose from crop, flip, affine, erase"),
    ("crop:size=3", "has no parameter 'size'"),
    ("crop:padding", "must look like key=value"),
    ("flip:p=abc", "is not a number"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_augment(spec)
