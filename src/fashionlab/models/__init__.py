"""The model registry: every network by name, so runs, the CLI and the study can ask for one."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .cnn import cnn
from .fastnet import fastnet_large_ceil, fastnet_small, mlp_wide
from .inception import googlenet
from .mlp import ann, ann_batchnorm, ann_bn, ann_dropout
from .resnet import resnet20
from .vit import vit

# name -> (factory, one-line description)
MODELS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "ann": (ann, "paper Table 3a: MLP 784-392-196-98-10"),
    "ann_bn": (ann_bn, "paper Table 3b: the MLP with batch norm and dropout 0.2"),
    "ann_dropout": (ann_dropout, "the MLP with dropout 0.2 only (overfitting study)"),
    "ann_batchnorm": (ann_batchnorm, "the MLP with batch norm only (overfitting study)"),
    "cnn": (cnn, "paper Table 4: 4 conv layers 128-128-256-256, global pooling, 2 dense"),
    # the paper's Evaluation section: "ResNet, GoogLeNet and VisionTransformer"
    "resnet20": (resnet20, "pre-activation ResNet-20 (16-32-64 channels)"),
    "googlenet": (googlenet, "GoogLeNet-style Inception network, 5 modules"),
    "vit": (vit, "Vision Transformer, 4x4 patches, dim 128, depth 6"),
    # speed-tuned for the recipes (more architectures, tried and set aside, are probes: benchmarks/probes/)
    "fastnet_small": (fastnet_small, "airbench-style conv net 16-32-64-128 (recipes fast/standard)"),
    "fastnet_large_ceil": (fastnet_large_ceil, "airbench-style conv net 32-64-256-256, 4x4 last pool (recipe best)"),
    "mlp_wide": (mlp_wide, "MLP 784-1024-1024-10 with batch norm and dropout (recipe mlp)"),
}


def register(name: str, description: str):
    """Decorator adding a model factory to the registry."""
    def wrap(factory):
        MODELS[name] = (factory, description)
        return factory
    return wrap


def check_model_name(name: str) -> None:
    """Raise a one-line ConfigError unless `name` is a registered network."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")


def create_model(name: str) -> nn.Module:
    check_model_name(name)
    return MODELS[name][0]()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_image(model: nn.Module, size: int = 28) -> int:
    """Forward FLOPs (2 x multiply-adds) of one size x size image (28: Fashion-MNIST's), by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    # grad stays enabled: under no_grad, nn.TransformerEncoderLayer takes a fused path the counter cannot see
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, size, size))
    model.train(was_training)
    return int(counter.get_total_flops())


def is_convolutional(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


__all__ = ["MODELS", "check_model_name", "count_parameters", "create_model", "flops_per_image",
           "is_convolutional", "register"]
