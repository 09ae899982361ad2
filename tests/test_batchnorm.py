"""Batch-norm recalibration: eval-mode statistics that match what the network sees without dropout."""

import pytest
import torch

from fashionlab.data.batches import Split, make_splits
from fashionlab.models import create_model
from fashionlab.training import loop
from fashionlab.training.batchnorm import recalibrate_batchnorm
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.loop import train


def test_recalibrated_eval_matches_dropout_free_batch_statistics():
    torch.manual_seed(0)
    model = create_model("ann_bn")
    x = torch.randn(512, 1, 28, 28) * 2 + 1
    split = Split(x, torch.zeros(512, dtype=torch.long))
    # what eval mode should compute: batch statistics of this data, with dropout switched off
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    with torch.no_grad():
        reference = model(x)
    before = model.eval()(x)
    recalibrate_batchnorm(model, split, batches=1, batch_size=512, precision="fp32", device=torch.device("cpu"))
    assert not model.training  # the mode is restored
    with torch.no_grad():
        after = model(x)
    assert (after - reference).abs().max() < 0.05 * reference.abs().max()
    assert (before - reference).abs().max() > 0.2 * reference.abs().max()  # the fresh running stats were far off
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))


@pytest.mark.parametrize("val_size, calls", [(0, 1), (500, 3)])
def test_runs_recalibrate_after_each_evaluated_epoch_or_once_at_the_end(tmp_path, fmnist, tiny_config, monkeypatch,
                                                                        val_size, calls):
    """With a validation split every epoch's evaluation needs fresh statistics; without one only the saved
    model does, so a 3-epoch run re-estimates them once, and the saved weights carry them."""
    seen = []

    def counting(model, split, *args):
        seen.append(len(split))
        recalibrate_batchnorm(model, split, *args)

    monkeypatch.setattr(loop, "recalibrate_batchnorm", counting)
    run = train(tiny_config(model="ann_bn", epochs=3, val_size=val_size), root=tmp_path, data=fmnist,
                show_progress=False)
    assert len(seen) == calls
    saved = load_checkpoint(run.model_path)["model"]
    model = create_model("ann_bn")
    model.load_state_dict(saved)
    train_split = make_splits(fmnist, val_size, 0, 2000, 1000).train
    recalibrate_batchnorm(model, train_split, 50, 100, "fp32", torch.device("cpu"))
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved if "running" in k)
