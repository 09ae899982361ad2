"""A small Vision Transformer (Dosovitskiy et al. 2021) for 28x28 greyscale: 4x4 patches -> 49 tokens.

Pre-norm encoder blocks from torch's nn.TransformerEncoderLayer (its fused attention path), a class
token and learned position embeddings.
"""

import torch
from torch import nn


class ViT(nn.Module):
    def __init__(self, patch: int = 4, dim: int = 128, depth: int = 6, heads: int = 4, mlp_ratio: int = 2,
                 dropout: float = 0.1, classes: int = 10):
        super().__init__()
        tokens = (28 // patch) ** 2
        self.embed = nn.Linear(patch * patch, dim)  # patchify with reshapes: no convolution needed
        self.patch = patch
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * mlp_ratio, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        b, p = x.shape[0], self.patch
        x = x.reshape(b, 28 // p, p, 28 // p, p).permute(0, 1, 3, 2, 4).reshape(b, -1, p * p)
        x = torch.cat([self.cls.expand(b, -1, -1), self.embed(x)], 1) + self.pos
        return self.head(self.norm(self.encoder(x))[:, 0])


def vit() -> ViT:
    return ViT(patch=4)
