"""The probes under benchmarks/probes/: options set aside from the product, run through the loop's StepHooks."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from fashionlab.errors import ConfigError
from fashionlab.models import MODELS, create_model
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.hooks import StepHooks, TrainingStart
from fashionlab.training.loop import train
from fashionlab.training.pruning import Pruner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from probes.ensemble import Ensemble, EnsembleLoss, ensemble_name  # noqa: E402
from probes.mixing import CutMix, Mixup, cutmix, mixup  # noqa: E402
from probes.options import FullDataTail, Hooks, hooks_from, run_settings  # noqa: E402
from probes.progressive_resize import ProgressiveResize, downscale  # noqa: E402
from probes.sam import SharpnessAware  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def registry():
    """The model registry as it was: probes register networks that other tests' lists of models must not see."""
    saved = dict(MODELS)
    yield
    MODELS.clear()
    MODELS.update(saved)


@pytest.fixture
def small(tiny_config):
    """400 training images in batches of 50 (8 steps an epoch, 2 epochs), no validation split, one thread."""
    def make(**changes):
        return tiny_config(**{**dict(train_limit=400, val_size=0, batch_size=50, test_limit=200, threads=1,
                                     bn_recalibration=0), **changes})
    return make


def start_of(model: nn.Module, steps: int = 16, steps_per_epoch: int = 8, pruner=None) -> TrainingStart:
    return TrainingStart(model, torch.optim.SGD(model.parameters(), lr=0.1), pruner, steps, steps_per_epoch, CPU)


def weights(run) -> dict:
    return load_checkpoint(run.model_path)["model"]


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(weights(a).values(), weights(b).values()))


# mixing ---------------------------------------------------------------------------------------------------------

def numbered_batch(n=64):
    """Image i is filled with the value i, so every pixel tells which image it came from."""
    return torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 28, 28).clone()


def test_cutmix_takes_one_rectangle_of_the_neighbour_and_that_share_of_its_label():
    x, y = numbered_batch(), torch.arange(64) % 10
    mixed, targets = cutmix(x, y, p=1.0, gen=torch.Generator().manual_seed(0))
    for i in range(64):
        from_partner = mixed[i, 0] == float((i - 1) % 64)
        assert ((mixed[i, 0] == float(i)) | from_partner).all()
        rows, cols = from_partner.any(1).nonzero(), from_partner.any(0).nonzero()
        assert from_partner[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one solid rectangle
        share = from_partner.float().mean().item()
        assert targets[i, y[i - 1]] == pytest.approx(share)
        assert targets[i, y[i]] == pytest.approx(1 - share)
    assert torch.allclose(targets.sum(1), torch.ones(64))
    assert 0.3 < (mixed != x).flatten(1).float().mean(1).mean() < 0.7  # CutMix's area is uniform in (0, 1)

    same, one_hot = cutmix(x, y, p=0.0)
    assert torch.equal(same, x) and torch.equal(one_hot, nn.functional.one_hot(y, 10).float())


def test_mixup_blends_each_image_with_its_neighbour_and_their_labels_alike():
    x, y = numbered_batch(), torch.arange(64) % 10
    torch.manual_seed(0)
    mixed, targets = Mixup(0.4).batch(x, y, step=0)
    for i in range(64):
        own, partner = float(i), float((i - 1) % 64)
        assert torch.all(mixed[i] == mixed[i, 0, 0, 0])  # one blend for the whole image
        share = (mixed[i, 0, 0, 0].item() - partner) / (own - partner)  # the image's own share of the pixels
        assert share >= 0.5 - 1e-6
        assert targets[i, y[i]].item() == pytest.approx(share, abs=1e-5)
    assert torch.allclose(targets.sum(1), torch.ones(64))
    assert targets.max(1).values.min() < 0.9  # Beta(0.4, 0.4) often blends far from 1


def test_mixup_follows_the_seeded_default_generator():
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    torch.manual_seed(3)
    a = mixup(x, y, 0.2)
    torch.manual_seed(3)
    b = mixup(x, y, 0.2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("hook, prune", [(lambda: CutMix(1.0), 0.0), (lambda: CutMix(1.0), 0.7),
                                         (lambda: Mixup(1.0), 0.0)], ids=["cutmix", "cutmix-pruned", "mixup"])
def test_a_run_with_a_mixing_hook_trains_on_soft_targets(tmp_path, fmnist, small, hook, prune):
    """Mixed targets carry entropy, so the training loss stays above a plain run's (per-image losses under pruning
    too), and the net still learns."""
    settings = dict(epochs=3, optimizer="adamw", lr=3e-3, prune=prune)
    plain = train(small(name="plain", **settings), root=tmp_path, data=fmnist, show_progress=False)
    mixed = train(small(name="mixed", **settings), root=tmp_path, data=fmnist, show_progress=False, hooks=hook())
    assert mixed.history()[-1]["train_loss"] > plain.history()[-1]["train_loss"] + 0.1
    assert mixed.metrics()["accuracy"] > 0.4


def test_mixing_settings_are_checked():
    with pytest.raises(ConfigError, match=r"cutmix must be a probability in \[0, 1\]"):
        CutMix(1.5)
    with pytest.raises(ConfigError, match="choose one of cutmix and mixup"):
        hooks_from({"cutmix": 0.5, "mixup": 0.2})


# sharpness-aware minimisation -----------------------------------------------------------------------------------

def test_sam_takes_the_gradient_rho_up_the_gradient_and_the_weights_come_back():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    loss = lambda: nn.functional.cross_entropy(model(x), y)  # noqa: E731
    start = [p.detach().clone() for p in model.parameters()]
    loss().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    sam = SharpnessAware(rho=0.5)
    sam.start(start_of(model))
    moved, at_moved = [], []

    def recompute():  # the loop's second pass: forward and backward at the moved weights
        moved.extend(p.detach().clone() for p in model.parameters())
        loss().backward()
        at_moved.extend(p.grad.clone() for p in model.parameters())

    sam.before_optimizer_step(recompute, step=0)
    distance = torch.sqrt(sum(((m - s) ** 2).sum() for m, s in zip(moved, start)))
    assert distance == pytest.approx(0.5, rel=1e-5)
    assert all(torch.allclose(m - s, 0.5 * g / norm, atol=1e-6) for m, s, g in zip(moved, start, grads))
    assert all(torch.allclose(p, s, atol=1e-6) for p, s in zip(model.parameters(), start))
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), at_moved))  # the moved weights' gradient
    assert not all(torch.allclose(a, g) for a, g in zip(at_moved, grads))


def test_sam_from_sets_the_step_where_it_begins(tmp_path, fmnist, small):
    """2 epochs of 8 steps: SAM from 0.99 of them would begin after the last step, so nothing changes; from 0.5 it
    begins with the second epoch, so the first is the same."""
    plain = train(small(name="plain"), root=tmp_path, data=fmnist, show_progress=False)
    never = train(small(name="never"), root=tmp_path, data=fmnist, show_progress=False,
                  hooks=SharpnessAware(0.05, 0.99))
    late = train(small(name="late"), root=tmp_path, data=fmnist, show_progress=False,
                 hooks=SharpnessAware(0.05, 0.5))
    assert same_weights(plain, never)
    assert not same_weights(plain, late)
    assert plain.history()[0]["train_loss"] == late.history()[0]["train_loss"]
    assert plain.history()[1]["train_loss"] != late.history()[1]["train_loss"]


# progressive resizing -------------------------------------------------------------------------------------------

class TrainingSizes(StepHooks):
    """Records the image size of every training forward pass."""

    def __init__(self):
        self.sizes = []

    def start(self, run):
        run.model.register_forward_pre_hook(
            lambda m, args: self.sizes.append(args[0].shape[-1]) if m.training else None)


def test_downscale_averages_instead_of_subsampling():
    assert downscale(torch.randn(3, 1, 28, 28), 14).shape == (3, 1, 14, 14)
    # a one-pixel checkerboard averages to grey; subsampling it would keep one colour of it (aliasing)
    checkerboard = ((torch.arange(28)[:, None] + torch.arange(28)) % 2).float().expand(1, 1, 28, 28)
    assert torch.allclose(downscale(checkerboard, 14), torch.tensor(0.5), atol=0.02)


def test_the_first_epochs_train_small_then_full_size(tmp_path, fmnist, small):
    """8 steps an epoch: epochs=0.5 puts the first 4 steps at 14x14, the other 12 at 28x28."""
    sizes = TrainingSizes()
    run = train(small(model="fastnet_small"), root=tmp_path, data=fmnist, show_progress=False,
                hooks=Hooks([ProgressiveResize(14, 0.5), sizes]))
    assert sizes.sizes == [14] * 4 + [28] * 12
    assert run.history()[-1]["train_accuracy"] > 0.3


@pytest.mark.parametrize("model", ["ann", "vit"])
def test_progressive_resizing_refuses_a_network_that_only_takes_28x28(model):
    with pytest.raises(ConfigError, match="only takes 28x28") as refused:
        ProgressiveResize(20, 1).start(start_of(create_model(model)))
    assert "\n" not in str(refused.value)
    ProgressiveResize(20, 1).start(start_of(create_model("fastnet_small")))  # global pooling: any size
    with pytest.raises(ConfigError, match="fewer than the run's epochs"):
        ProgressiveResize(20, 2).start(start_of(create_model("fastnet_small")))


# ensembles ------------------------------------------------------------------------------------------------------

def test_an_ensemble_is_k_copies_that_predict_with_their_mean_logits():
    torch.manual_seed(0)
    ensemble = create_model(ensemble_name("ann_bn", 3))
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    first, second = (next(m.parameters()) for m in ensemble.members[:2])
    assert not torch.equal(first, second)  # each starts from its own random weights
    x = torch.randn(4, 1, 28, 28)
    ensemble.eval()
    expected = torch.stack([member(x) for member in ensemble.members]).mean(0)
    assert torch.allclose(ensemble(x), expected) and ensemble.member_logits is None
    with pytest.raises(ConfigError, match="2 to 16 members"):
        ensemble_name("ann", 1)


def test_each_member_gets_its_own_loss_gradient():
    torch.manual_seed(0)
    ensemble = create_model(ensemble_name("ann", 2)).train()
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    hook = EnsembleLoss()
    hook.start(start_of(ensemble))
    for reduction in ("mean", "none"):
        criterion = nn.CrossEntropyLoss(reduction=reduction)
        ensemble.zero_grad()
        loss = hook.criterion(criterion, x, step=0)(ensemble(x), y)
        alone = [criterion(member(x), y) for member in ensemble.members]
        assert torch.allclose(loss, sum(alone) / 2)  # reported on one network's scale (per image under "none")
        loss.sum().backward()
        for member, own in zip(ensemble.members, alone):
            expected = torch.autograd.grad(own.sum(), list(member.parameters()))
            assert all(torch.allclose(p.grad, g) for p, g in zip(member.parameters(), expected))


def test_member_zero_trains_exactly_as_it_would_alone(tmp_path, fmnist, small):
    """Member 0 is drawn first from the seeded generator, so it starts with the single run's weights, and the hook
    gives it its own loss's gradient: it must end with the single run's weights to the bit. AdamW and batch norm:
    per-parameter steps and per-member statistics, no coupling between members."""
    settings = dict(model="ann_bn", optimizer="adamw", augment="flip,crop", label_smoothing=0.1)
    alone = train(small(name="alone", **settings), root=tmp_path, data=fmnist, show_progress=False)
    options = {"model": "ann_bn-x2"}
    pair = train(small(name="pair", **{**settings, **run_settings(options)}), root=tmp_path, data=fmnist,
                 show_progress=False, hooks=hooks_from(options))
    single, both = weights(alone), weights(pair)
    assert both.keys() == {f"members.{i}.{key}" for i in (0, 1) for key in single}
    assert all(torch.equal(both[f"members.0.{key}"], value) for key, value in single.items())
    assert not all(torch.equal(both[f"members.1.{key}"], value) for key, value in single.items())
    assert abs(pair.history()[0]["train_loss"] - alone.history()[0]["train_loss"]) < 0.5


# architectures and options --------------------------------------------------------------------------------------

def test_the_set_aside_architectures_register_and_classify():
    from probes.architectures import ARCHITECTURES, register_architectures

    assert register_architectures() == ["resnet18", "wrn16_4", "vit_p7", "fastnet", "fastnet_large",
                                        "fastnet_large_res"]
    x = torch.randn(2, 1, 28, 28)
    for name in ARCHITECTURES:
        assert name in MODELS
        with torch.no_grad():
            assert create_model(name).eval()(x).shape == (2, 10), name


def test_old_setting_names_become_hooks():
    assert hooks_from({"lr": 0.1, "model": "ann"}) is None
    assert isinstance(hooks_from({"sam_rho": 0.05}), SharpnessAware)
    hooks = hooks_from({"cutmix": 0.5, "low_res_size": 20, "low_res_epochs": 1, "sam_rho": 0.05, "sam_from": 0.5,
                        "full_data_tail": 0.25, "model": "fastnet_small-x2"})
    assert [type(h) for h in hooks] == [CutMix, ProgressiveResize, EnsembleLoss, SharpnessAware, FullDataTail]
    assert "fastnet_small-x2" in MODELS
    assert run_settings({"cutmix": 0.5, "lr": 0.1}) == {"lr": 0.1}
    with pytest.raises(ConfigError, match="sam_from needs sam_rho"):
        hooks_from({"sam_from": 0.5})

    pruner = Pruner(100, 0.5, 0, CPU)
    hooks_from({"full_data_tail": 0.5}).start(start_of(nn.Linear(1, 1), pruner=pruner))
    assert pruner.full_data_tail == 0.5 and not pruner.prunes(8, 16) and pruner.prunes(7, 16)
    with pytest.raises(ConfigError, match="prune > 0"):
        FullDataTail(0.5).start(start_of(nn.Linear(1, 1)))
