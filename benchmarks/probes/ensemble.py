"""Ensembles: `NAME-xK` is K copies of network NAME, trained side by side in one run, each on its own loss.

Each copy starts from its own random weights and learns from its own loss (EnsembleLoss adds the members' losses,
so each gets exactly the gradient it would get alone), on the same batches; different starting weights alone make
networks err on different images (Lakshminarayanan et al. 2017; Fort et al. 2019), which is what averaging needs.
The ensemble predicts with the mean of its members' logits, so evaluation, TTA, export and serving see one
ordinary network. It costs K times the single network's time per epoch.

    name = register_ensemble("fastnet_small-x2")        # or ensemble_name("fastnet_small", 2)
    train(RunConfig(model=name, ...), hooks=EnsembleLoss())
"""

from __future__ import annotations

import torch
from torch import nn

from fashionlab.errors import ConfigError
from fashionlab.models import MODELS, create_model, register
from fashionlab.training.hooks import StepHooks, TrainingStart

MAX_MEMBERS = 16


class Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.member_logits: torch.Tensor | None = None  # (members, batch, classes) of the last training forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' mean logits (batch, classes). In training mode the members' own logits are also kept in
        `member_logits`, for EnsembleLoss to give each member its own loss."""
        logits = torch.stack([member(x) for member in self.members])
        if self.training:
            self.member_logits = logits
        return logits.mean(0)

    def take_member_logits(self) -> torch.Tensor:
        """The members' logits of the last training forward pass, once (a stale pass is an error, not a loss)."""
        if self.member_logits is None:
            raise RuntimeError("the ensemble's member logits were already used or never computed: call the "
                               "loss once after each training forward pass")
        logits, self.member_logits = self.member_logits, None
        return logits


def split_ensemble_name(name: str) -> tuple[str, int] | None:
    """('fastnet_small', 2) for 'fastnet_small-x2'; None for a name without the suffix."""
    base, sep, count = name.rpartition("-x")
    if not sep or not count.isdigit():
        return None
    return base, int(count)


def ensemble_name(base: str, k: int) -> str:
    """Register `base-xk` (K copies of `base`) in the model registry, and return that name."""
    if base not in MODELS:
        raise ConfigError(f"unknown model '{base}' for an ensemble; choose from {', '.join(sorted(MODELS))}")
    if not 2 <= k <= MAX_MEMBERS:
        raise ConfigError(f"an ensemble needs 2 to {MAX_MEMBERS} members, e.g. {base}-x2; got {k}")
    name = f"{base}-x{k}"
    register(name, f"ensemble of {k} {base} (benchmarks/probes/ensemble.py)")(
        lambda: Ensemble([create_model(base) for _ in range(k)]))
    return name


def register_ensemble(name: str) -> str | None:
    """Register `name` if it is NAME-xK (and not already a network of its own); the name, or None for other
    names."""
    parts = split_ensemble_name(name)
    if parts is None or (name in MODELS and not _is_ensemble_entry(name)):
        return None
    return ensemble_name(*parts)


def _is_ensemble_entry(name: str) -> bool:
    return MODELS[name][1].startswith("ensemble of ")


class EnsembleLoss(StepHooks):
    """The training loss of a run whose model holds an Ensemble: the sum of the members' own losses (per image
    where the criterion's reduction is "none", as under pruning).

    The loss's value is the members' mean loss, so the history's train_loss (and the pruner's scores) stay on a
    single network's scale; its gradient is the sum's, so each member gets exactly its own loss's gradient."""

    def __init__(self):
        self.ensemble: Ensemble | None = None

    def start(self, run: TrainingStart) -> None:
        ensembles = [m for m in run.model.modules() if isinstance(m, Ensemble)]
        if len(ensembles) != 1:
            raise ConfigError(f"EnsembleLoss needs a model holding one Ensemble (NAME-xK); this one holds "
                              f"{len(ensembles)}")
        self.ensemble = ensembles[0]

    def criterion(self, criterion, x, step):
        ensemble = self.ensemble

        def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            members = ensemble.take_member_logits()
            total = sum(criterion(member.float(), targets) for member in members)
            # value total / K, gradient exactly 1 x each member's loss: the constant carries no gradient
            return total + (total / len(members) - total).detach()

        return loss
