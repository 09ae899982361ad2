"""fashionlab's CPU dropout is inverted dropout with the asked-for rate; test-time augmentation views."""

import pytest
import torch
from torch import nn

from fashionlab.config import RunConfig
from fashionlab.data.augment import BACKGROUND
from fashionlab.errors import ConfigError
from fashionlab.evaluation import shifted, tta_views
from fashionlab.models.dropout import Dropout


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_keeps_one_minus_p_and_preserves_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(32, 64, 28, 28).contiguous(memory_format=torch.channels_last)
    y = Dropout(p).train()(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.003
    assert abs(y.mean().item() - 1.0) < 0.005  # kept values are scaled up by 1 / (1 - p)
    assert y.is_contiguous(memory_format=torch.channels_last)
    # no structure in the mask: every channel and every row drops about the same share
    assert kept.float().mean((0, 2, 3)).std() < 0.01 and kept.float().mean((0, 1, 3)).std() < 0.01


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_dropout_keeps_the_scale_rounded_to_the_dtype(dtype):
    torch.manual_seed(2)
    y = Dropout(0.3)(torch.ones(4000, dtype=dtype))
    assert y.dtype == dtype
    kept = 65536 / (65536 - round(0.3 * 65536))  # p is rounded to a multiple of 1/65536
    assert set(y.unique().tolist()) == {0.0, torch.tensor(kept, dtype=dtype).item()}
    assert abs((y != 0).float().mean().item() - 0.7) < 0.03


def test_dropout_gradient_is_the_mask_and_eval_is_identity():
    torch.manual_seed(1)
    x = torch.randn(40, 50, requires_grad=True)
    d = Dropout(0.25)
    y = d(x)
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0) and torch.allclose(x.grad[x.grad != 0], torch.tensor(4 / 3))
    assert torch.equal(d.eval()(x), x)


def test_dropout_draws_from_the_seeded_generator():
    d = Dropout(0.2)
    torch.manual_seed(7)
    a = d(torch.ones(1000))
    torch.manual_seed(7)
    assert torch.equal(a, d(torch.ones(1000)))
    assert not torch.equal(a, d(torch.ones(1000)))


def test_dropout_edge_rates_behave_like_torch():
    x = torch.randn(10, 10)
    assert torch.equal(Dropout(0.0)(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    assert isinstance(Dropout(0.2), nn.Dropout)  # the report's layer diagrams still see a Dropout


def test_shifted_moves_the_image_and_fills_with_background():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    right = shifted(x, 1, 0)
    assert torch.equal(right[..., :, 1:], x[..., :, :-1]) and (right[..., :, 0] == BACKGROUND).all()
    down = shifted(x, 0, 1)
    assert torch.equal(down[..., 1:, :], x[..., :-1, :]) and (down[..., 0, :] == BACKGROUND).all()


def test_tta_views():
    x = torch.randn(3, 1, 28, 28)
    assert len(tta_views(x, "none")) == 1
    flip = tta_views(x, "flip")
    assert len(flip) == 2 and torch.equal(flip[1], x.flip(3))
    assert len(tta_views(x, "flip-shift")) == 10
    assert len(tta_views(x, True)) == 2  # run configs written before the modes said true/false


def test_tta_setting_accepts_old_booleans_and_rejects_unknown_modes():
    assert RunConfig.from_dict({"tta": True}).tta == "flip"
    assert RunConfig.from_dict({"tta": False}).tta == "none"
    with pytest.raises(ConfigError, match="unknown tta 'crops'; choose from none, flip, flip-shift"):
        RunConfig.from_dict({"tta": "crops"})
