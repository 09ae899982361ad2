"""Pruning well-learned images (training/pruning.py, InfoBatch): which images an epoch skips, the run's
length in steps, the loss weights, and exact resume inside a pruned epoch."""

import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.errors import ConfigError
from fashionlab.runs import open_run
from fashionlab.training import loop
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.loop import Interrupted, train
from fashionlab.training.pruning import Pruner


def scored_pruner(probability: float) -> Pruner:
    """1,000 images: the first 500 learned (loss 0.1), the rest not (loss 2.0); mean 1.05."""
    pruner = Pruner(1000, probability, seed=0, device=torch.device("cpu"))
    pruner.start_epoch(torch.arange(1000), epoch=0, prune=True)
    pruner.weigh(torch.cat([torch.full((500,), 0.1), torch.full((500,), 2.0)]), torch.arange(1000))
    pruner.end_epoch(steps=10)
    return pruner


def test_an_epoch_skips_only_learned_images_and_upweights_the_learned_it_keeps():
    pruner = scored_pruner(0.7)
    order = torch.randperm(1000)
    kept = pruner.start_epoch(order, epoch=1, prune=True)
    assert set(range(500, 1000)) <= set(kept.tolist())                  # every image still being learned
    assert 100 < (kept < 500).sum() < 200                                # ~30% of the 500 learned ones
    assert torch.equal(kept, order[torch.isin(order, kept)])             # in the epoch's shuffled order
    learned_kept = kept[kept < 500]
    assert torch.allclose(pruner.weights[learned_kept], torch.tensor(1 / 0.3))
    assert (pruner.weights[500:] == 1).all()
    # the step's loss: the mean of the weighted losses, so skipping leaves the expected gradient unchanged
    images = torch.tensor([learned_kept[0].item(), 600])
    assert torch.isclose(pruner.weigh(torch.tensor([0.3, 1.0]), images), torch.tensor((0.3 / 0.3 + 1.0) / 2))
    assert torch.equal(pruner.scores[images], torch.tensor([0.3, 1.0]))


def test_the_first_epoch_and_the_full_data_tail_keep_every_image():
    pruner = Pruner(100, 0.7, seed=0, device=torch.device("cpu"))
    assert len(pruner.start_epoch(torch.arange(100), epoch=0, prune=True)) == 100
    pruner = scored_pruner(0.7)
    assert len(pruner.start_epoch(torch.arange(1000), epoch=1, prune=False)) == 1000
    assert (pruner.weights == 1).all()


def test_an_epoch_that_would_keep_less_than_a_batch_skips_nothing():
    """Else it would take no step, and the run would never reach its step count."""
    pruner = Pruner(1000, 0.7, seed=0, device=torch.device("cpu"), batch_size=900)
    pruner.start_epoch(torch.arange(1000), epoch=0, prune=True)
    pruner.weigh(torch.cat([torch.full((500,), 0.1), torch.full((500,), 2.0)]), torch.arange(1000))
    pruner.end_epoch(steps=1)
    assert len(pruner.start_epoch(torch.arange(1000), epoch=1, prune=True)) == 1000
    assert (pruner.weights == 1).all()


def test_a_pruned_run_takes_the_steps_of_its_epochs_in_more_shorter_epochs(tmp_path, fmnist, tiny_config,
                                                                           monkeypatch):
    """epochs=3 at 20 batches an epoch: 60 steps; the epochs after the first skip images, but one that starts in
    the last 12.5% of the steps (from step 52.5) keeps all 2,000."""
    steps = []
    real = loop.derive_seed
    monkeypatch.setattr(loop, "derive_seed", lambda seed, epoch, step: steps.append((epoch, step)) or
                        real(seed, epoch, step))
    run = train(tiny_config(epochs=3, prune=0.7, optimizer="sgd", lr=0.05, scheduler="onecycle"), root=tmp_path,
                data=fmnist, show_progress=False)
    assert len(steps) == 60
    history = run.history()
    images = [row["images"] for row in history]
    assert len(history) > 3 and images[0] == 2000 and all(n < 2000 for n in images[1:-1])
    assert sum(images) == 60 * 100
    assert run.metrics()["epochs"] == 3 and not run.metrics()["stopped_early"]
    assert run.metrics()["accuracy"] > 0.7
    assert load_checkpoint(run.last_checkpoint)["scheduler"]["_step_count"] == 61  # the schedule fitted 60 steps


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stop_epoch, stop_step", [(1, 3), (2, 0)])
def test_resume_inside_a_pruned_epoch_is_exact(tmp_path, fmnist, tiny_config, ctrl_c_at, stop_epoch, stop_step):
    settings = dict(epochs=3, prune=0.7, model="ann_bn", augment="flip", optimizer="adamw", scheduler="onecycle")
    straight = train(tiny_config(name="straight", **settings), root=tmp_path, data=fmnist, show_progress=False)
    ctrl_c_at(stop_epoch, stop_step)
    with pytest.raises(Interrupted):
        train(tiny_config(name="broken", **settings), root=tmp_path, data=fmnist, show_progress=False)
    resumed = train(None, root=tmp_path, resume=open_run("broken", tmp_path).path, data=fmnist, show_progress=False)
    weights = lambda run: load_checkpoint(run.model_path)["model"]  # noqa: E731
    assert same_weights(weights(straight), weights(resumed))
    without_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert without_time(resumed.history()) == without_time(straight.history())


@pytest.mark.parametrize("prune", [-0.1, 1.0])
def test_prune_must_be_a_probability_below_one(prune):
    with pytest.raises(ConfigError, match=r"prune must be at least 0 and less than 1"):
        RunConfig.from_dict({"prune": prune})
