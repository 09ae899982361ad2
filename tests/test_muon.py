"""The Muon optimizer: orthogonalised filter updates, SGD for the rest, exact resume."""

import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.models import create_model
from fashionlab.runs import open_run
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.loop import Interrupted, train
from fashionlab.training.muon import as_matrix, from_matrix, orthogonalise
from fashionlab.training.optim import create_optimizer, create_scheduler


def with_singular_values(rows: int, cols: int, values: torch.Tensor) -> torch.Tensor:
    u, _ = torch.linalg.qr(torch.randn(rows, len(values)))
    v, _ = torch.linalg.qr(torch.randn(cols, len(values)))
    return u @ torch.diag(values) @ v.T


@pytest.mark.parametrize("rows, cols", [(32, 288), (288, 32)])
def test_orthogonalise_evens_out_the_singular_values(rows, cols):
    torch.manual_seed(0)
    spread = torch.logspace(0, -1.3, 32)  # largest / smallest = 20
    [result] = orthogonalise([with_singular_values(rows, cols, spread)])
    assert result.shape == (rows, cols)
    singular = torch.linalg.svdvals(result)
    assert singular.min() > 0.5 and singular.max() < 1.3  # every direction moves about as much


def newton_schulz_on_x(matrix: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """The textbook quintic iteration X <- aX + (bG + cG^2)X on the matrix itself, in float64."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix.double()
    x = x / x.norm()
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


@pytest.mark.parametrize("rows, cols", [(128, 1152), (16, 9), (10, 10)])
def test_gram_space_iteration_equals_the_iteration_on_the_matrix(rows, cols):
    torch.manual_seed(0)
    matrix = torch.randn(rows, cols)
    expected = newton_schulz_on_x(matrix)
    [result] = orthogonalise([matrix])
    assert torch.allclose(result.double(), expected, atol=1e-4)


def test_banks_of_equal_height_are_orthogonalised_together_as_each_alone():
    torch.manual_seed(0)
    matrices = [torch.randn(*shape) for shape in [(32, 144), (16, 9), (32, 288), (288, 32), (9, 16)]]
    together = orthogonalise(matrices)
    for matrix, result in zip(matrices, together):
        assert torch.allclose(result.double(), newton_schulz_on_x(matrix), atol=1e-4)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_filter_bank_is_a_matrix_without_a_copy(memory_format):
    bank = torch.randn(32, 16, 3, 3).contiguous(memory_format=memory_format)
    matrix, order = as_matrix(bank)
    assert matrix.shape == (32, 144) and matrix.data_ptr() == bank.data_ptr()
    assert torch.equal(from_matrix(matrix, bank, order), bank)
    # the same rows as flatten(1), their columns permuted: what orthogonalisation commutes with
    assert torch.equal(matrix.sort(1).values, bank.flatten(1).sort(1).values)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_muon_step_is_the_textbook_update_of_each_filter_bank(memory_format):
    torch.manual_seed(0)
    shapes = [(16, 1, 3, 3), (32, 16, 3, 3), (32, 8, 3, 3)]
    banks = [torch.nn.Parameter(torch.randn(s).contiguous(memory_format=memory_format)) for s in shapes]
    reference = [p.detach().double().clone() for p in banks]
    buffers = [torch.zeros_like(p) for p in reference]
    optimizer = create_optimizer(banks, RunConfig(optimizer="muon", lr=0.1, muon_lr=0.05, momentum=0.9))
    for _ in range(3):
        grads = [torch.randn(p.shape).contiguous(memory_format=memory_format) for p in banks]
        for p, g in zip(banks, grads):
            p.grad = g
        optimizer.step()
        for i, (w, g) in enumerate(zip(reference, grads)):
            buffers[i] = 0.9 * buffers[i] + g.double()
            update = g.double() + 0.9 * buffers[i]  # Nesterov
            w = w * len(w) ** 0.5 / w.norm()        # held at norm sqrt(out_channels)
            reference[i] = w - 0.05 * newton_schulz_on_x(update.flatten(1)).view_as(w)
    for p, w in zip(banks, reference):
        assert torch.allclose(p.double(), w, atol=1e-4)


def test_muon_takes_the_filter_banks_and_sgd_the_rest():
    model = create_model("fastnet_small")
    optimizer = create_optimizer(model.parameters(), RunConfig(optimizer="muon", lr=0.1, muon_lr=0.02))
    muon, sgd = optimizer.param_groups
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {id(p) for p in muon["params"]} == {id(c.weight) for c in convs}  # the greyscale stem's too
    assert muon["muon"] and (muon["lr"], sgd["lr"]) == (0.02, 0.1)
    assert all(p.ndim < 4 for p in sgd["params"])


def test_without_filters_muon_is_sgd_with_nesterov_momentum():
    torch.manual_seed(0)
    start = torch.randn(50, 30)
    ours_param, ref_param = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    ours = create_optimizer([ours_param], RunConfig(optimizer="muon", lr=0.01, weight_decay=1e-3, momentum=0.9))
    ref = torch.optim.SGD([ref_param], lr=0.01, weight_decay=1e-3, momentum=0.9, nesterov=True)
    for _ in range(5):
        grad = torch.randn(50, 30)
        ours_param.grad, ref_param.grad = grad.clone(), grad.clone()
        ours.step()
        ref.step()
    assert torch.allclose(ours_param, ref_param, atol=1e-6) and not torch.equal(ours_param, start)


def test_muon_lowers_the_loss_and_keeps_filter_norms_fixed():
    torch.manual_seed(0)
    model = create_model("fastnet_small")
    config = RunConfig(optimizer="muon", lr=0.05, muon_lr=0.02, scheduler="onecycle", epochs=1)
    optimizer = create_optimizer(model.parameters(), config)
    scheduler = create_scheduler(optimizer, config, steps_per_epoch=20)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    muon = optimizer.param_groups[0]
    assert muon["momentum"] == config.momentum  # one-cycle leaves Muon's momentum alone
    for p in muon["params"]:  # rescaled to sqrt(out_channels) before each step, then moved by ~lr of that
        assert p.norm().item() == pytest.approx(len(p) ** 0.5, rel=0.05)


def test_muon_run_resumes_exactly(tmp_path, fmnist, tiny_config, ctrl_c_at):
    settings = dict(model="fastnet_small", optimizer="muon", lr=0.05, scheduler="onecycle", epochs=2,
                    train_limit=600, test_limit=200, val_size=200)
    straight = train(tiny_config(name="straight", **settings), root=tmp_path, data=fmnist, show_progress=False)
    ctrl_c_at(1, 2)
    with pytest.raises(Interrupted):
        train(tiny_config(name="broken", **settings), root=tmp_path, data=fmnist, show_progress=False)
    resumed = train(None, root=tmp_path, resume=open_run("broken", tmp_path).path, data=fmnist,
                    show_progress=False)
    a, b = load_checkpoint(straight.model_path)["model"], load_checkpoint(resumed.model_path)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
