"""The compiled Winograd transforms (models/winograd_transforms.c) against the torch-operation ones."""

import logging

import pytest
import torch
import torch.nn.functional as F

from fashionlab.models import native, winograd

needs_compiler = pytest.mark.skipif(native.library() is None, reason="no C compiler to build the transforms")


def _both(name, *args):
    return getattr(winograd._NATIVE, name)(*args), getattr(winograd._TORCH, name)(*args)


@needs_compiler
@pytest.mark.parametrize("n, c, h, w", [(3, 8, 7, 9), (2, 16, 28, 28), (2, 24, 14, 14), (1, 8, 1, 3), (2, 8, 4, 4)])
def test_each_transform_equals_the_torch_one(n, c, h, w):
    torch.manual_seed(0)
    p = n * winograd._tiles(h) * winograd._tiles(w)
    image, tiles, bias = torch.randn(n, h, w, c), torch.randn(36, p, c), torch.randn(c)
    for got, want in [_both("input", image, n, h, w, c), _both("output", tiles, bias, n, h, w, c),
                      _both("output", tiles, None, n, h, w, c), _both("output_grad", image, n, h, w, c),
                      _both("input_grad", tiles, n, h, w, c)]:
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_the_convolution_and_its_gradients_match_the_direct_one_in_fp32(memory_format):
    torch.manual_seed(0)
    x = torch.randn(5, 16, 13, 10).contiguous(memory_format=memory_format).requires_grad_()
    weight = torch.randn(24, 16, 3, 3, requires_grad=True)
    bias = torch.randn(24, requires_grad=True)
    ours, direct = winograd.winograd_conv3x3(x, weight, bias), F.conv2d(x, weight, bias, padding=1)
    grad = torch.randn_like(direct)
    for got, want in zip(torch.autograd.grad(ours, (x, weight, bias), grad),
                         torch.autograd.grad(direct, (x, weight, bias), grad)):
        _close_to_scale(got, want)
    _close_to_scale(ours, direct)


def _close_to_scale(got, want):
    """fp32 rounding of the transforms: errors of ~1e-6 of the largest value (sums of 100s of products)."""
    assert (got - want).abs().max() < 1e-5 * want.abs().max()


@needs_compiler
def test_images_split_over_threads_give_the_same_result():
    torch.manual_seed(0)
    x = torch.randn(7, 14, 14, 16)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = winograd._NATIVE.input(x, 7, 14, 14, 16)
        torch.set_num_threads(3)  # 7 images: ranges of 2, 2 and 3
        three = winograd._NATIVE.input(x, 7, 14, 14, 16)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)


def test_channel_counts_not_divisible_by_8_use_the_torch_transforms(monkeypatch):
    monkeypatch.setattr(native, "run", lambda *args: pytest.fail("native transforms called"))
    x = torch.randn(2, 12, 8, 8, requires_grad=True)
    weight = torch.randn(16, 12, 3, 3)
    torch.testing.assert_close(winograd.winograd_conv3x3(x, weight), F.conv2d(x, weight, padding=1),
                               rtol=1e-4, atol=1e-4)


@needs_compiler
def test_the_library_is_built_once_into_the_cache(tmp_path):
    lib = native.load("cc", tmp_path)
    assert lib is not None and len(list(tmp_path.glob("*.so"))) == 1
    assert not list(tmp_path.glob("*.partial"))
    built = next(tmp_path.glob("*.so")).stat().st_mtime_ns
    native.load("cc", tmp_path)
    assert next(tmp_path.glob("*.so")).stat().st_mtime_ns == built


def test_a_failing_compiler_falls_back_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="fashionlab.models.native"):
        assert native.load("false", tmp_path) is None
    assert "torch operations" in caplog.text
    assert not list(tmp_path.iterdir())  # nothing half-built left behind
