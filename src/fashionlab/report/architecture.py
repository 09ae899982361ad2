"""A network as a list of blocks (main layer + the activation/norm/dropout after it) with output shapes."""

from __future__ import annotations

import torch
from torch import nn

FOLLOWERS = (nn.ReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.GELU)


def _describe(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        k = m.kernel_size
        return f"Conv {k[0]}x{k[1]}, {m.out_channels} maps"
    if isinstance(m, nn.Linear):
        return f"Linear {m.in_features}→{m.out_features}"
    if isinstance(m, nn.MaxPool2d):
        return f"Max pool {m.kernel_size}x{m.kernel_size}"
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return "Global avg. pool"
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
        return "BN"
    if isinstance(m, nn.Dropout):
        return f"Dropout {m.p:g}"
    return type(m).__name__


def layer_blocks(model: nn.Module) -> list[dict]:
    """[{"name", "extras", "shape", "params"}] for each main layer of `model` on a 1x28x28 input."""
    leaves = [m for m in model.modules() if not list(m.children())]
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: shapes.__setitem__(id(mod), tuple(o.shape[1:])))
             for m in leaves]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    for h in hooks:
        h.remove()
    blocks = [{"name": "Input image", "extras": [], "shape": (1, 28, 28), "params": 0}]
    for m in leaves:
        params = sum(p.numel() for p in m.parameters())
        if isinstance(m, FOLLOWERS) and len(blocks) > 1:
            blocks[-1]["extras"].append("ReLU" if isinstance(m, nn.ReLU) else _describe(m))
            blocks[-1]["params"] += params
            blocks[-1]["shape"] = shapes[id(m)]
        else:
            blocks.append({"name": _describe(m), "extras": [], "shape": shapes[id(m)], "params": params})
    return blocks


def shape_text(shape: tuple) -> str:
    return "x".join(map(str, shape[1:] + shape[:1])) if len(shape) == 3 else str(shape[0])
