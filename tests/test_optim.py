"""Optimizers by name: torch's fused kernels where it has them, with the same updates as the reference loop."""

import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.training.optim import create_optimizer

REFERENCE = {  # torch's default (for-loop) implementation with the settings create_optimizer passes
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=1e-3),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.01, weight_decay=1e-3, momentum=0.9, nesterov=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.01, weight_decay=1e-3),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01, weight_decay=1e-3, momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_optimizer_matches_torchs_reference_implementation(name):
    torch.manual_seed(0)
    start = torch.randn(50, 30)
    ours_param, ref_param = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    config = RunConfig(optimizer=name, lr=0.01, weight_decay=1e-3, momentum=0.9, nesterov=True)
    ours, ref = create_optimizer([ours_param], config), REFERENCE[name]([ref_param])
    assert ours.defaults.get("fused") is (None if name == "rmsprop" else True)  # RMSprop has no fused kernel
    for _ in range(5):
        grad = torch.randn(50, 30)
        ours_param.grad, ref_param.grad = grad.clone(), grad.clone()
        ours.step()
        ref.step()
    assert torch.allclose(ours_param, ref_param, atol=1e-6)
    assert not torch.equal(ours_param, start)
