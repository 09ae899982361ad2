import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fashionlab.models import create_model, native
from fashionlab.models.winograd import WinogradConv2d, torch_transforms, use_direct, use_winograd, winograd_conv3x3
from fashionlab.training.loop import train


@pytest.mark.parametrize("n, c, k, h, w, bias", [
    (2, 3, 5, 7, 9, True),     # sizes that are not multiples of the 4x4 block
    (3, 4, 4, 28, 28, False),  # the paper's CNN's map size
    (2, 8, 6, 14, 14, True),   # 14 = 3.5 blocks: the last block's outputs are cropped
    (1, 2, 3, 1, 3, True),     # smaller than one tile
])
def test_matches_the_direct_convolution_and_its_gradients_in_float64(n, c, k, h, w, bias):
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(k, c, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(k, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = (x, weight) + ((b,) if bias else ())
    ours, direct = winograd_conv3x3(x, weight, b), F.conv2d(x, weight, b, padding=1)
    grad = torch.randn_like(direct)
    for got, want in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(direct, inputs, grad)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours, direct, rtol=1e-10, atol=1e-10)


def test_fp32_error_is_a_rounding_error_of_the_outputs_scale():
    torch.manual_seed(0)
    x = torch.randn(16, 128, 28, 28).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(128, 128, 3, 3) * 0.03
    ours, direct = winograd_conv3x3(x, weight), F.conv2d(x, weight, padding=1)
    assert (ours - direct).abs().max() < 1e-4 * direct.abs().max()
    assert ours.is_contiguous(memory_format=torch.channels_last)


def test_only_wide_3x3_convolutions_change_and_the_state_dict_stays():
    model = create_model("cnn")  # 1->128 (too narrow), 128->128, 128->256, 256->256
    keys = list(model.state_dict())
    assert use_winograd(model) == 3
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [type(m) for m in convs] == [nn.Conv2d, WinogradConv2d, WinogradConv2d, WinogradConv2d]
    assert list(model.state_dict()) == keys
    use_direct(model)
    assert all(type(m) is nn.Conv2d for m in model.modules() if isinstance(m, nn.Conv2d))
    assert use_winograd(create_model("fastnet_small")) == 4  # 32->64, 64->64, 64->128, 128->128
    assert use_winograd(create_model("ann")) == 0


@pytest.mark.parametrize("c, k, h, compiled, torch_ops", [
    (128, 128, 4, True, True), (128, 128, 3, False, False), (64, 64, 28, True, True), (64, 64, 14, True, False),
    (64, 128, 7, True, False), (32, 64, 28, True, False), (32, 64, 14, False, False), (40, 40, 28, False, False),
])
def test_it_is_used_where_it_pays(c, k, h, compiled, torch_ops):
    conv = nn.Conv2d(c, k, 3, padding=1)
    x = torch.randn(2, c, h, h)
    direct = conv(x)
    use_winograd(conv)
    if native.library() is not None:
        assert torch.equal(conv(x), direct) != compiled
    with torch_transforms():  # the fallback's transforms cost more: only wider layers gain
        assert torch.equal(conv(x), direct) != torch_ops


def test_without_gradients_only_wide_layers_on_large_maps_use_it():
    torch.manual_seed(0)
    conv = nn.Conv2d(128, 128, 3, padding=1)
    x = torch.randn(4, 128, 10, 10)
    direct = conv(x)
    use_winograd(conv)
    with torch.no_grad():
        assert torch.equal(conv(x), direct)  # a forward pass alone does not gain on 10x10 maps
    assert not torch.equal(conv(x), direct)  # with gradients: Winograd, equal to ~1e-6
    torch.testing.assert_close(conv(x), direct, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(native.library() is None, reason="forward passes alone use Winograd with the compiled transforms")
def test_without_gradients_a_large_batch_goes_through_in_slices(monkeypatch):
    from fashionlab.models import winograd

    torch.manual_seed(0)
    conv = nn.Conv2d(128, 128, 3, padding=1)
    x = torch.randn(7, 128, 14, 14).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        direct = conv(x)
        use_winograd(conv)
        whole = conv(x)
        slices = []
        real = winograd._forward
        monkeypatch.setattr(winograd, "_forward", lambda x, w, b: slices.append(len(x)) or real(x, w, b))
        monkeypatch.setattr(winograd, "FORWARD_SLICE_BYTES", 3 * 36 * 16 * 128 * 4)  # three images' tiles
        sliced = conv(x)
    assert slices == [3, 3, 1]
    assert not torch.equal(whole, direct)  # Winograd ran
    torch.testing.assert_close(whole, direct, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sliced, whole, rtol=0, atol=0)
    assert sliced.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("winograd", [True, False])
def test_fp32_training_uses_it_unless_turned_off(tmp_path, fmnist, tiny_config, monkeypatch, winograd):
    from fashionlab.training import precision
    calls = []
    monkeypatch.setattr(precision, "use_winograd", lambda model: calls.append(model))
    run = train(tiny_config(model="cnn", train_limit=256, test_limit=100, epochs=1, batch_size=64,
                            winograd=winograd, bn_recalibration=0), root=tmp_path, data=fmnist, show_progress=False)
    assert run.finished and len(calls) == int(winograd)


def test_gradients_through_a_network_match_the_direct_convolutions():
    # no max-pool or ReLU here: their ties make a network's gradients jump under any 1e-5 change of its
    # activations (the paper's CNN's do by up to 5% for a 1e-5 perturbation of conv 2, with either algorithm)
    torch.manual_seed(0)
    direct = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.Tanh(), nn.Conv2d(128, 256, 3, padding=1), nn.Tanh(),
                           nn.Flatten(), nn.LazyLinear(10))
    x = torch.randn(8, 128, 14, 14).contiguous(memory_format=torch.channels_last)
    direct(x)
    winograd = copy.deepcopy(direct)
    assert use_winograd(winograd) == 2
    for model in (direct, winograd):
        nn.functional.cross_entropy(model(x), torch.arange(8)).backward()
    for a, b in zip(direct.parameters(), winograd.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-4 * a.grad.abs().max().item())


def test_a_training_run_with_it_learns(tmp_path, fmnist, tiny_config):
    # eight steps of the seed CNN: 36-53% over three seeds either way, so no closer comparison is possible here
    run = train(tiny_config(model="cnn", train_limit=512, test_limit=200, epochs=1, batch_size=64, lr=3e-3),
                root=tmp_path, data=fmnist, show_progress=False)
    assert run.metrics()["accuracy"] > 0.25
