"""The Evaluation section's architectures and the recipe networks: shapes, parameter counts, a training step."""

import pytest
import torch

from fashionlab.models import count_parameters, create_model, flops_per_image


def conv(n_in, n_out, k=3, bias=False):
    return n_in * n_out * k * k + (n_out if bias else 0)


def bn(n):
    return 2 * n


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def preact_resnet(widths, blocks, stem):
    total, n_in = conv(1, stem), stem
    for i, (w, count) in enumerate(zip(widths, blocks)):
        for j in range(count):
            total += bn(n_in) + conv(n_in, w) + bn(w) + conv(w, w)
            if n_in != w or (i > 0 and j == 0):
                total += conv(n_in, w, k=1)
            n_in = w
    return total + bn(n_in) + linear(n_in, 10)


def inception(n_in, c1, c3r, c3, c5r, c5, pool):
    cb = lambda i, o, k: conv(i, o, k) + bn(o)
    return (cb(n_in, c1, 1) + cb(n_in, c3r, 1) + cb(c3r, c3, 3) + cb(n_in, c5r, 1) + cb(c5r, c5, 3)
            + cb(c5, c5, 3) + cb(n_in, pool, 1))


def vit(patch, dim, depth, mlp_ratio):
    tokens = (28 // patch) ** 2
    block = 2 * bn(dim) + linear(dim, 3 * dim) + linear(dim, dim) + linear(dim, dim * mlp_ratio) + \
        linear(dim * mlp_ratio, dim)
    return linear(patch * patch, dim) + dim + (tokens + 1) * dim + depth * block + bn(dim) + linear(dim, 10)


def fastnet(stem, widths):
    group = lambda i, o: conv(i, o) + bn(o) + conv(o, o) + bn(o)
    return (conv(1, stem, bias=True) + group(stem, widths[0]) + group(widths[0], widths[1])
            + group(widths[1], widths[2]) + linear(widths[2], 10, bias=False))


EXPECTED = {
    "resnet20": preact_resnet([16, 32, 64], [3, 3, 3], 16),
    "googlenet": (conv(1, 64) + bn(64) + inception(64, 32, 48, 64, 8, 16, 16) + inception(128, 64, 64, 96, 16, 48, 32)
                  + inception(240, 96, 48, 104, 8, 24, 32) + inception(256, 128, 80, 160, 16, 64, 64)
                  + inception(416, 128, 96, 192, 24, 64, 64) + linear(448, 10)),
    "vit": vit(4, 128, 6, 2),
    "fastnet_small": fastnet(16, (32, 64, 128)),
    "fastnet_large_ceil": fastnet(32, (64, 256, 256)),  # ceil_mode adds no parameters
    "mlp_wide": linear(784, 1024) + bn(1024) + linear(1024, 1024) + bn(1024) + linear(1024, 10),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_count(name):
    assert count_parameters(create_model(name)) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_and_a_training_step_that_learns(name):
    torch.manual_seed(0)
    model = create_model(name)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    assert model.eval()(x).shape == (16, 10)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert losses[-1] < losses[0]


def test_flops_are_counted_for_attention_too():
    # 49 tokens + class token, 6 blocks: attention and MLP matmuls dominate; far above the embedding alone
    assert flops_per_image(create_model("vit")) > 50e6
    assert flops_per_image(create_model("fastnet_large_ceil")) > flops_per_image(create_model("fastnet_small")) * 5
