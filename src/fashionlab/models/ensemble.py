"""Ensembles: `NAME-xK` in the registry is K copies of network NAME, trained side by side in one run.

Each copy starts from its own random weights and learns from its own loss (the training loop adds the
members' losses, so each gets exactly the gradient it would get alone), on the same batches; different
starting weights alone make networks err on different images (Lakshminarayanan et al. 2017; Fort et al.
2019), which is what averaging needs. In eval mode the ensemble predicts with the mean of its members'
logits, so evaluation, TTA, export and serving see one ordinary network. An ensemble costs K times the
single network's time per epoch; for `best`, two members at half its epochs scored no better than one network
at all of them (docs/BENCHMARKS.md, session 15).
"""

from __future__ import annotations

import torch
from torch import nn


class Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training: every member's logits, (members, batch, classes); eval: their mean, (batch, classes)."""
        logits = torch.stack([member(x) for member in self.members])
        return logits if self.training else logits.mean(0)


def member_losses(criterion: nn.Module, logits: torch.Tensor, y: torch.Tensor):
    """(loss to minimise, loss to report, logits to score) of one training batch. For an ensemble's stacked
    logits: the sum of the members' losses, their mean, and the mean logits; a single network's pass through."""
    if logits.dim() == 3:
        loss = sum(criterion(member, y) for member in logits)
        return loss, loss.detach() / len(logits), logits.detach().mean(0)
    loss = criterion(logits, y)
    return loss, loss.detach(), logits


def split_ensemble_name(name: str) -> tuple[str, int] | None:
    """('fastnet_large', 2) for 'fastnet_large-x2'; None for a name without the suffix."""
    base, sep, count = name.rpartition("-x")
    if not sep or not count.isdigit():
        return None
    return base, int(count)
