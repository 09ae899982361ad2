"""Sharpness-aware minimisation: the gradient it takes, and when a run uses it."""

import pytest
import torch
from torch import nn

from fashionlab.errors import ConfigError
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.loop import train
from fashionlab.training.sam import SharpnessAware


def test_the_gradient_is_taken_rho_up_the_gradient_and_the_weights_come_back():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    loss = lambda: nn.functional.cross_entropy(model(x), y)  # noqa: E731
    start = [p.detach().clone() for p in model.parameters()]
    loss().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    sam = SharpnessAware(model.parameters(), rho=0.5)
    sam.ascend()
    moved = [p.detach().clone() for p in model.parameters()]
    distance = torch.sqrt(sum(((m - s) ** 2).sum() for m, s in zip(moved, start)))
    assert distance == pytest.approx(0.5, rel=1e-5)
    assert all(torch.allclose(m - s, 0.5 * g / norm, atol=1e-6) for m, s, g in zip(moved, start, grads))
    loss().backward()  # the gradient at the moved weights...
    at_moved = [p.grad.clone() for p in model.parameters()]
    sam.restore()
    assert all(torch.allclose(p, s, atol=1e-6) for p, s in zip(model.parameters(), start))
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), at_moved))  # ...is the one kept
    assert not all(torch.allclose(a, g) for a, g in zip(at_moved, grads))


def weights(run):
    return load_checkpoint(run.model_path)["model"]


def test_sam_from_sets_the_step_where_sam_begins(tmp_path, fmnist, tiny_config):
    plain = train(tiny_config(name="plain"), root=tmp_path, data=fmnist, show_progress=False)
    # 2 epochs of 20 steps: SAM from 0.99 of them would begin after the last step, so nothing changes; from 0.5
    # it begins with the second epoch, so the first is the same
    never = train(tiny_config(name="never", sam_rho=0.05, sam_from=0.99), root=tmp_path, data=fmnist,
                  show_progress=False)
    late = train(tiny_config(name="late", sam_rho=0.05, sam_from=0.5), root=tmp_path, data=fmnist,
                 show_progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(plain).values(), weights(never).values()))
    assert not all(torch.equal(a, b) for a, b in zip(weights(plain).values(), weights(late).values()))
    assert late.metrics()["accuracy"] > 0.7
    assert plain.history()[0]["train_loss"] == late.history()[0]["train_loss"]
    assert plain.history()[1]["train_loss"] != late.history()[1]["train_loss"]


@pytest.mark.parametrize("change, message", [(dict(sam_rho=-0.1), "sam_rho"), (dict(sam_from=1.0), "sam_from")])
def test_sam_settings_are_checked(tiny_config, change, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**change)
