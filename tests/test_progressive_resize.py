"""Progressive resizing (data/resize.py): the first low_res_epochs train on downscaled batches."""

import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.data import MEAN, STD, downscale
from fashionlab.errors import ConfigError
from fashionlab.runs import open_run
from fashionlab.training import loop
from fashionlab.training.loop import Interrupted, train


def test_downscale_averages_instead_of_subsampling():
    x = torch.randn(3, 1, 28, 28)
    assert downscale(x, 14).shape == (3, 1, 14, 14)
    background = torch.full((1, 1, 28, 28), (0 - MEAN) / STD)
    assert torch.allclose(downscale(background, 20), background[..., :20, :20])
    # a one-pixel checkerboard averages to grey; subsampling it would keep one colour of it (aliasing)
    checkerboard = ((torch.arange(28)[:, None] + torch.arange(28)) % 2).float().expand(1, 1, 28, 28)
    assert torch.allclose(downscale(checkerboard, 14), torch.tensor(0.5), atol=0.02)


def _record_training_sizes(monkeypatch) -> list[int]:
    sizes = []
    real = loop.create_model

    def create(name):
        model = real(name)
        model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[-1]) if m.training else None)
        return model

    monkeypatch.setattr(loop, "create_model", create)
    return sizes


def test_first_low_res_epochs_train_small_then_full_size(tmp_path, fmnist, tiny_config, monkeypatch):
    """20 batches an epoch: low_res_epochs=0.5 puts the first 10 steps at 14x14, the other 30 at 28x28;
    evaluation always sees 28x28."""
    sizes = _record_training_sizes(monkeypatch)
    run = train(tiny_config(model="fastnet_small", low_res_size=14, low_res_epochs=0.5, bn_recalibration=0),
                root=tmp_path, data=fmnist, show_progress=False)
    assert sizes == [14] * 10 + [28] * 30
    assert run.metrics()["accuracy"] > 0.5


def test_resume_inside_the_low_res_phase_continues_it(tmp_path, fmnist, tiny_config, monkeypatch, ctrl_c_at):
    sizes = _record_training_sizes(monkeypatch)
    settings = dict(model="fastnet_small", low_res_size=14, low_res_epochs=1.5, bn_recalibration=0)
    ctrl_c_at(0, 4)
    with pytest.raises(Interrupted):
        train(tiny_config(**settings), root=tmp_path, data=fmnist, show_progress=False)
    assert sizes == [14] * 5
    train(None, root=tmp_path, resume=open_run("tiny", tmp_path).path, data=fmnist, show_progress=False)
    assert sizes == [14] * 30 + [28] * 10


@pytest.mark.parametrize("changes, message", [
    (dict(low_res_size=30, low_res_epochs=1), "between 8 and 27"),
    (dict(low_res_size=20, low_res_epochs=0), "more than 0"),
    (dict(low_res_size=20, low_res_epochs=3), "fewer than epochs"),
    (dict(low_res_size=20, low_res_epochs=1, model="ann"), "only takes 28x28"),
    (dict(low_res_size=20, low_res_epochs=1, model="vit"), "only takes 28x28"),
])
def test_bad_low_res_settings_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({"model": "fastnet_small", "epochs": 2, **changes})
