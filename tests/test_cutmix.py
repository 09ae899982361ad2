import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.data import cutmix
from fashionlab.errors import ConfigError
from fashionlab.training.loop import train


def numbered_batch(n=64):
    """Image i is filled with the value i, so every pixel tells which image it came from."""
    return torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 28, 28).clone()


def test_each_image_takes_one_rectangle_of_its_neighbour_and_that_share_of_its_label():
    x, y = numbered_batch(), torch.arange(64) % 10
    mixed, targets = cutmix(x, y, p=1.0, num_classes=10, gen=torch.Generator().manual_seed(0))
    for i in range(64):
        own, partner = float(i), float((i - 1) % 64)
        from_partner = mixed[i, 0] == partner
        assert ((mixed[i, 0] == own) | from_partner).all()
        rows, cols = from_partner.any(1).nonzero(), from_partner.any(0).nonzero()
        assert from_partner[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one solid rectangle
        share = from_partner.float().mean()
        assert targets[i, y[i - 1]] == pytest.approx(share.item())
        assert targets[i, y[i]] == pytest.approx(1 - share.item())
    assert torch.allclose(targets.sum(1), torch.ones(64))
    shares = (mixed != x).flatten(1).float().mean(1)
    assert 0.3 < shares.mean() < 0.7  # CutMix's area is uniform in (0, 1)


def test_probability_zero_changes_nothing_and_is_reproducible():
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    same, targets = cutmix(x, y, p=0.0, num_classes=10)
    assert torch.equal(same, x) and torch.equal(targets, torch.nn.functional.one_hot(y, 10).float())
    a = cutmix(x, y, 0.5, 10, torch.Generator().manual_seed(1))
    b = cutmix(x, y, 0.5, 10, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert 0 < (a[0] != x).flatten(1).any(1).float().mean() < 1


@pytest.mark.parametrize("prune", [0.0, 0.7])
def test_a_run_trains_on_the_mixed_targets(tmp_path, fmnist, tiny_config, prune):
    """Mixed targets carry entropy, so the training loss stays above an unmixed run's, and the net still learns."""
    settings = dict(epochs=3, optimizer="adamw", lr=3e-3, scheduler="onecycle", prune=prune)
    plain = train(tiny_config(name="plain", **settings), root=tmp_path, data=fmnist, show_progress=False)
    mixed = train(tiny_config(name="mixed", cutmix=1.0, **settings), root=tmp_path, data=fmnist, show_progress=False)
    assert mixed.config().cutmix == 1.0  # recorded, so a resumed run mixes too
    assert mixed.history()[-1]["train_loss"] > plain.history()[-1]["train_loss"] + 0.1
    assert mixed.metrics()["accuracy"] > 0.7


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_cutmix_must_be_a_probability(value):
    with pytest.raises(ConfigError, match=r"cutmix must be a probability in \[0, 1\]"):
        RunConfig.from_dict({"cutmix": value})
