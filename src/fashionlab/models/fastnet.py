"""Speed-tuned networks for the recipes (fashionlab train --recipe ...), in the spirit of airbench.

`fastnet`: a conv stem and three conv-pool blocks (conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU),
global max-pool and a linear head whose output is scaled down (airbench's trick to calm early training).
The stem is airbench's: a convolution with a bias straight into ReLU.
Channel widths are the knob that trades accuracy for seconds (docs/EXPERIMENTS.md, architecture).
`mlp_wide`: the widest plain MLP that trains fast on 2 cores, for the no-convolution recipe.
"""

from torch import nn

from .dropout import Dropout


class Mul(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def conv_bn(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.GELU()]


def pooled_conv(n_in: int, n_out: int, ceil: bool = False) -> list[nn.Module]:
    return [nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.MaxPool2d(2, ceil_mode=ceil), nn.BatchNorm2d(n_out),
            nn.GELU()]


def conv_group(n_in: int, n_out: int, ceil: bool = False) -> nn.Sequential:
    return nn.Sequential(*pooled_conv(n_in, n_out, ceil), *conv_bn(n_out, n_out))


def stem_layers(n_out: int) -> list[nn.Module]:
    """The stem's output is the largest activation (28x28 x width): batch norm and GELU over it, as the other
    layers have them, cost ~7% of `fastnet_small`'s step and buy no validation accuracy in `fast`,
    `standard` or `best` (docs/EXPERIMENTS.md)."""
    return [nn.Conv2d(1, n_out, 3, padding=1, bias=True), nn.ReLU()]


def fastnet(stem: int = 24, widths: tuple = (64, 128, 128), head_scale: float = 1 / 8, ceil: bool = False,
            group=conv_group) -> nn.Sequential:
    """`ceil`: the last max-pool rounds up (7x7 -> 4x4) instead of dropping the 7x7 map's last row and column,
    which it otherwise never looks at (the bottom and right edge of the image; under flips, one side only).
    `group`: the block that builds each stage from (n_in, n_out[, ceil])."""
    return nn.Sequential(
        *stem_layers(stem),                   # 28x28
        group(stem, widths[0]),               # -> 14x14
        group(widths[0], widths[1]),          # -> 7x7
        group(widths[1], widths[2], ceil),    # -> 3x3 (4x4 with ceil)
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(widths[2], 10, bias=False), Mul(head_scale),
    )


def fastnet_small() -> nn.Sequential:
    """The `fast` and `standard` recipes' network."""
    return fastnet(stem=16, widths=(32, 64, 128))


def fastnet_large_ceil() -> nn.Sequential:
    """airbench94's channel widths (64-256-256) on a 32-channel stem, the last max-pool keeping the whole 7x7 map
    (4x4 out; +4% FLOPs): the `best` recipe's network (the variants tried: docs/EXPERIMENTS.md)."""
    return fastnet(stem=32, widths=(64, 256, 256), ceil=True)


def mlp_wide(hidden: int = 1024, dropout: float = 0.3) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), Dropout(dropout),
        nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), Dropout(dropout),
        nn.Linear(hidden, 10),
    )
