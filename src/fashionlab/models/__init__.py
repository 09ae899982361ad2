"""The model registry: every network by name, so runs, the CLI and the study can ask for one."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .cnn import cnn
from .mlp import ann, ann_batchnorm, ann_bn, ann_dropout

# name -> (factory, one-line description)
MODELS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "ann": (ann, "seed Table 3a: MLP 784-392-196-98-10"),
    "ann_bn": (ann_bn, "seed Table 3b: the MLP with batch norm and dropout 0.2"),
    "ann_dropout": (ann_dropout, "the MLP with dropout 0.2 only (overfitting study)"),
    "ann_batchnorm": (ann_batchnorm, "the MLP with batch norm only (overfitting study)"),
    "cnn": (cnn, "seed Table 4: 4 conv layers 128-128-256-256, global pooling, 2 dense"),
}


def register(name: str, description: str):
    """Decorator adding a model factory to the registry."""
    def wrap(factory):
        MODELS[name] = (factory, description)
        return factory
    return wrap


def create_model(name: str) -> nn.Module:
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; choose from {', '.join(sorted(MODELS))}")
    return MODELS[name][0]()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_image(model: nn.Module) -> int:
    """Forward FLOPs (2 x multiply-adds) of one 28x28 image, counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    return int(counter.get_total_flops())


def is_convolutional(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


__all__ = ["MODELS", "count_parameters", "create_model", "flops_per_image", "is_convolutional", "register"]
