import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.data import cutmix, mixup
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


def test_mixup_blends_each_image_with_its_neighbour_and_their_labels_alike():
    x, y = numbered_batch(), torch.arange(64) % 10
    torch.manual_seed(0)
    mixed, targets = mixup(x, y, alpha=0.4, num_classes=10)
    for i in range(64):
        own, partner = float(i), float((i - 1) % 64)
        lam = targets[i, y[i]].item() if y[i] != y[i - 1] else None
        pixel = mixed[i, 0, 0, 0].item()
        assert torch.all(mixed[i] == mixed[i, 0, 0, 0])  # one blend for the whole image
        share = (pixel - partner) / (own - partner)  # the image's own share of the pixels
        assert share >= 0.5 - 1e-6
        if lam is not None:
            assert lam == pytest.approx(share, abs=1e-5)
    assert torch.allclose(targets.sum(1), torch.ones(64))
    shares = targets.max(1).values
    assert shares.min() < 0.9 and shares.max() <= 1  # Beta(0.4, 0.4) often blends far from 1


def test_mixup_follows_the_seeded_default_generator():
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    torch.manual_seed(3)
    a = mixup(x, y, 0.2, 10)
    torch.manual_seed(3)
    b = mixup(x, y, 0.2, 10)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("prune, mixing", [(0.0, {"cutmix": 1.0}), (0.7, {"cutmix": 1.0}), (0.0, {"mixup": 1.0})])
def test_a_run_trains_on_the_mixed_targets(tmp_path, fmnist, tiny_config, prune, mixing):
    """Mixed targets carry entropy, so the training loss stays above an unmixed run's, and the net still learns."""
    settings = dict(epochs=3, optimizer="adamw", lr=3e-3, scheduler="onecycle", prune=prune)
    plain = train(tiny_config(name="plain", **settings), root=tmp_path, data=fmnist, show_progress=False)
    mixed = train(tiny_config(name="mixed", **mixing, **settings), root=tmp_path, data=fmnist, show_progress=False)
    [(key, value)] = mixing.items()
    assert getattr(mixed.config(), key) == value  # recorded, so a resumed run mixes too
    assert mixed.history()[-1]["train_loss"] > plain.history()[-1]["train_loss"] + 0.1
    assert mixed.metrics()["accuracy"] > 0.7


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_cutmix_must_be_a_probability(value):
    with pytest.raises(ConfigError, match=r"cutmix must be a probability in \[0, 1\]"):
        RunConfig.from_dict({"cutmix": value})


def test_mixup_and_cutmix_exclude_each_other():
    with pytest.raises(ConfigError, match="choose one of cutmix and mixup"):
        RunConfig.from_dict({"cutmix": 0.5, "mixup": 0.2})
    with pytest.raises(ConfigError, match="mixup"):
        RunConfig.from_dict({"mixup": -1})
