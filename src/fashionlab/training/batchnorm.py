"""Re-estimate batch-norm statistics for evaluation ("precise BN", as in pycls/detectron2).

Where dropout comes before a batch norm (the paper's Conv -> ReLU -> BN -> Dropout -> Conv -> ... order),
the next BN's running averages are learned on dropped-out activations, whose variance differs from what
it sees in evaluation mode (Li et al. 2019, "Understanding the disharmony between dropout and batch
normalization"). The paper's CNN then scores far lower in eval mode than in train mode. Recomputing the
statistics with dropout off, as a plain average over a fixed set of training batches, removes the gap.
Training itself is untouched: train-mode BN normalises with batch statistics, not with these buffers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import Split, iterate_batches
from .precision import autocast, prepare_input

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, BATCHNORMS) for m in model.modules())


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, split: Split, batches: int, batch_size: int, precision: str,
                          device: torch.device) -> None:
    """Set every BN's running mean/var to the average over the first `batches` batches of `split`, dropout off."""
    norms = [m for m in model.modules() if isinstance(m, BATCHNORMS)]
    if not norms or batches <= 0:
        return
    was_training = model.training
    model.eval()
    saved_momentum = {}
    for bn in norms:
        bn.train()
        bn.reset_running_stats()
        saved_momentum[bn] = bn.momentum
        bn.momentum = None  # None = cumulative moving average: an equal-weight mean over the batches
    for i, (x, _) in enumerate(iterate_batches(split, batch_size)):
        if i >= batches:
            break
        with autocast(device, precision):
            model(prepare_input(x, model))
    for bn in norms:
        bn.momentum = saved_momentum[bn]
    model.train(was_training)
