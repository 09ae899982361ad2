"""A GoogLeNet-style Inception network (Szegedy et al. 2015) sized for 28x28 greyscale images.

Each Inception module runs four branches side by side and concatenates them: 1x1; 1x1 -> 3x3;
1x1 -> 3x3 -> 3x3 (the 5x5 branch, factorised as in Inception v2); 3x3 max-pool -> 1x1.
"""

import torch
from torch import nn


def conv_bn(n_in: int, n_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(n_out),
                         nn.ReLU(inplace=True))


class Inception(nn.Module):
    def __init__(self, n_in: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool: int):
        super().__init__()
        self.b1 = conv_bn(n_in, c1, 1)
        self.b3 = nn.Sequential(conv_bn(n_in, c3_reduce, 1), conv_bn(c3_reduce, c3, 3))
        self.b5 = nn.Sequential(conv_bn(n_in, c5_reduce, 1), conv_bn(c5_reduce, c5, 3), conv_bn(c5, c5, 3))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(n_in, pool, 1))
        self.out_channels = c1 + c3 + c5 + pool

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


def googlenet(classes: int = 10) -> nn.Sequential:
    #                 in   1x1  3x3r 3x3 5x5r 5x5 pool  -> out
    a = Inception(64, 32, 48, 64, 8, 16, 16)        # 128 @ 28x28
    b = Inception(128, 64, 64, 96, 16, 48, 32)      # 240 @ 14x14
    c = Inception(240, 96, 48, 104, 8, 24, 32)      # 256 @ 14x14
    d = Inception(256, 128, 80, 160, 16, 64, 64)    # 416 @ 7x7
    e = Inception(416, 128, 96, 192, 24, 64, 64)    # 448 @ 7x7
    return nn.Sequential(
        conv_bn(1, 64, 3),
        a, nn.MaxPool2d(2),
        b, c, nn.MaxPool2d(2),
        d, e,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(e.out_channels, classes),
    )
