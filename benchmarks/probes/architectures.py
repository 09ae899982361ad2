"""Networks no recipe uses (docs/EXPERIMENTS.md has their measurements), registered in the model registry when
this module is imported: after `import probes.architectures`, create_model and the benchmarks' `model=` overrides
take their names (the `fashionlab` command does not import probes, so it does not).

- resnet18, wrn16_4: pre-activation ResNets (models/resnet.py's PreActResNet)
- vit_p7: the Vision Transformer on 7x7 patches (16 tokens)
- fastnet, fastnet_large: models/fastnet.py's network at 24-64-128-128 and at airbench94's widths (32-64-256-256)
- fastnet_large_res: fastnet_large_ceil with airbench96's residual three-convolution groups (ResidualGroup)
"""

from __future__ import annotations

from torch import nn

from fashionlab.models import register
from fashionlab.models.fastnet import conv_bn, fastnet, pooled_conv
from fashionlab.models.resnet import PreActResNet
from fashionlab.models.vit import ViT


class ResidualGroup(nn.Module):
    """airbench96's group: fastnet's conv -> max-pool -> BN -> GELU, then two conv-BN-GELU layers at the pooled
    size whose output is added to their input (the residual keeps the deeper group easy to train). A `group=` stage
    builder for fastnet()."""

    def __init__(self, n_in: int, n_out: int, ceil: bool = False):
        super().__init__()
        self.pooled = nn.Sequential(*pooled_conv(n_in, n_out, ceil))
        self.branch = nn.Sequential(*conv_bn(n_out, n_out), *conv_bn(n_out, n_out))

    def forward(self, x):
        x = self.pooled(x)
        return x + self.branch(x)


def resnet18() -> PreActResNet:
    return PreActResNet([64, 128, 256, 512], [2, 2, 2, 2], stem=64)


def wrn16_4() -> PreActResNet:
    return PreActResNet([64, 128, 256], [2, 2, 2], stem=16)


def vit_p7() -> ViT:
    return ViT(patch=7, dim=192, depth=6, heads=6)


def fastnet_medium() -> nn.Sequential:
    return fastnet(24, (64, 128, 128))


def fastnet_large() -> nn.Sequential:
    """airbench94's widths, the last max-pool rounding down (7x7 -> 3x3; `best`'s fastnet_large_ceil rounds up)."""
    return fastnet(32, (64, 256, 256))


def fastnet_large_res() -> nn.Sequential:
    """+39% FLOPs over fastnet_large_ceil, and no better for `best` on validation (docs/EXPERIMENTS.md)."""
    return fastnet(32, (64, 256, 256), ceil=True, group=ResidualGroup)


ARCHITECTURES = {
    "resnet18": (resnet18, "pre-activation ResNet-18 (64-512 channels), 3x3 stem (probe)"),
    "wrn16_4": (wrn16_4, "wide ResNet 16-4 (64-128-256 channels) (probe)"),
    "vit_p7": (vit_p7, "Vision Transformer, 7x7 patches, dim 192, depth 6 (probe)"),
    "fastnet": (fastnet_medium, "airbench-style conv net 24-64-128-128 (probe)"),
    "fastnet_large": (fastnet_large, "airbench-style conv net 32-64-256-256, airbench94's widths (probe)"),
    "fastnet_large_res": (fastnet_large_res, "fastnet_large_ceil with airbench96's 3-conv residual groups (probe)"),
}


def register_architectures() -> list[str]:
    """Put the networks in the registry (again, should something have taken them out); their names."""
    for name, (factory, description) in ARCHITECTURES.items():
        register(name, description)(factory)
    return list(ARCHITECTURES)


register_architectures()
