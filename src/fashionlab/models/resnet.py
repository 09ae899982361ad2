"""Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks"), sized for 28x28.

`resnet20`: the CIFAR-style 3-stage net (16/32/64 channels, 3 blocks each). `PreActResNet` builds others
(benchmarks/probes/architectures.py registers ResNet-18 and WRN-16-4 with it).
"""

from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the (projected when the shape changes) input."""

    def __init__(self, n_in: int, n_out: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(n_in), nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(n_out), nn.Conv2d(n_out, n_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or n_in != n_out:
            self.shortcut = nn.Conv2d(n_in, n_out, 1, stride, bias=False)

    def forward(self, x):
        out = self.relu(self.bn1(x))
        # the projection sees the pre-activated input, as in the paper's full pre-activation design
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + skip


class PreActResNet(nn.Module):
    def __init__(self, widths: list[int], blocks: list[int], stem: int, dropout: float = 0.0, classes: int = 10):
        super().__init__()
        layers = [nn.Conv2d(1, stem, 3, 1, 1, bias=False)]
        n_in = stem
        for i, (width, count) in enumerate(zip(widths, blocks)):
            for j in range(count):
                layers.append(PreActBlock(n_in, width, stride=2 if (i > 0 and j == 0) else 1, dropout=dropout))
                n_in = width
        self.features = nn.Sequential(*layers, nn.BatchNorm2d(n_in), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(n_in, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def resnet20() -> PreActResNet:
    return PreActResNet([16, 32, 64], [3, 3, 3], stem=16)
