"""Optimizers and learning-rate schedules by name."""

from __future__ import annotations

import torch

from ..config import RunConfig
from .muon import Muon, is_filter_bank


def create_optimizer(params, config: RunConfig) -> torch.optim.Optimizer:
    """torch's fused implementation where it has one (not RMSprop): a single pass over each parameter tensor
    instead of a dozen element-wise ones. The default one spent ~3 ms of the mlp recipe's 17 ms step in AdamW's
    division and square root on the 2-core CPU; fused, the optimizer step takes 0.65 ms."""
    lr, wd = config.lr, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=True)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=config.momentum)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, fused=True)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd, fused=True)
    if config.optimizer == "muon":
        params = list(params)
        filters = [p for p in params if is_filter_bank(p)]
        others = [p for p in params if not is_filter_bank(p)]
        groups = [dict(params=filters, lr=config.muon_lr, momentum=config.momentum, muon=True),
                  dict(params=others, lr=lr, momentum=config.momentum, weight_decay=wd)]
        return Muon([g for g in groups if g["params"]])
    raise AssertionError(config.optimizer)  # RunConfig.validate has rejected anything else


def total_steps(config: RunConfig, steps_per_epoch: int) -> int:
    """Training steps of the whole run; a fractional `epochs` ends part-way through the last epoch."""
    return max(1, round(config.epochs * steps_per_epoch))


def create_scheduler(optimizer, config: RunConfig, steps_per_epoch: int):
    """A per-step schedule (stepped after every batch), or None for a constant learning rate."""
    total = total_steps(config, steps_per_epoch)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.scheduler in ("onecycle", "onecycle-linear"):
        strategy = "linear" if config.scheduler == "onecycle-linear" else "cos"
        muon = [group.get("muon", False) for group in optimizer.param_groups]
        # one-cycle also cycles momentum (its default 0.95 -> 0.85 -> 0.95), but not Muon's: tuned constant
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[config.muon_lr if m else config.lr for m in muon], total_steps=total,
            pct_start=config.warmup, anneal_strategy=strategy,
            base_momentum=[config.momentum if m else 0.85 for m in muon],
            max_momentum=[config.momentum if m else 0.95 for m in muon])
    return None
