"""Batch-norm recalibration: eval-mode statistics that match what the network sees without dropout."""

import torch

from fashionlab.data.batches import Split
from fashionlab.models import create_model
from fashionlab.training.batchnorm import recalibrate_batchnorm


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
