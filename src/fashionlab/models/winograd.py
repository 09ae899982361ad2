"""3x3 convolutions by Winograd's minimal filtering, F(4x4, 3x3), for fp32 training on a CPU.

A CPU without bf16 matrix products (such as an AMD EPYC Zen 3 with AVX2 only) spends most of a convolutional network's
step in oneDNN's direct fp32 convolutions, already at the machine's arithmetic peak. Winograd's algorithm
(Lavin & Gray 2015) computes each 4x4 block of outputs from a 6x6 input tile with 36 multiplications per
input-output channel pair instead of 144: the input tiles and the filters are transformed once, the 36
tile positions become 36 independent matrix products (torch.bmm, MKL at full speed), and the products are
transformed back. The transforms cost in proportion to the input channels, the products to input x output
channels, so the trade pays only for wide layers on large enough maps (`pays`); other layers keep oneDNN's
direct convolution. Outputs differ
from the direct convolution's by ~1e-5 of their scale (fp32 rounding of the transforms); training is as
deterministic as before.

The backward pass reuses the transformed input tiles and filters saved by the forward pass: the filter
gradient is a second batch of 36 products, the input gradient a third, folded back onto the overlapping tiles.

The tile transforms run in winograd_transforms.c (compiled on first use by native.py: sums over channel
vectors, tiles gathered and scattered in the same pass) where the machine has a C compiler, and otherwise as
Kronecker-matrix products of torch operations, 10-20% slower steps and a narrower set of layers where
Winograd pays. The filter transforms are small and stay in torch.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from . import native

# Lavin & Gray's F(4x4, 3x3) matrices: Y = A^T [(G g G^T) * (B^T d B)] A for a 6x6 tile d and 3x3 filter g
_BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
_G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
_AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
TILE, OUT = 6, 4  # input tile and output block sizes

# Kronecker products transform a whole flattened tile in one matrix product: 36x36, 36x9 and 16x36
_MATRICES: dict = {}

# Where Winograd pays: (input x output channels at least, map side at least), from benchmarks/winograd_sweep.py
# on a 2-core EPYC Zen 3, AVX2 only (fp32, batch 128 and 256, forward and backward; docs/EXPERIMENTS.md). With the
# compiled transforms: 64x64 channels and up gain 1.25-2.8x on maps from 4x4 to 28x28, 32x64 gains
# 1.4-1.7x on 28x28 maps (whose 4x4 blocks fit exactly) but breaks even on 14x14 and 7x7, 32x32 never pays.
# With the torch-operation transforms: 128x128 gains 1.2-1.95x from 4x4 to 28x28, 64x64 to 96x96
# 1.3-1.75x on 28x28 only. Not on 3x3 maps in either (one 4x4 block for 9 outputs).
COMPILED_RULES = ((64 * 64, 4), (32 * 64, 28))
TORCH_RULES = ((128 * 128, 4), (64 * 64, 28))
MIN_CHANNEL_PRODUCT = min(product for product, _ in COMPILED_RULES + TORCH_RULES)
# A forward pass alone (evaluation) saves only the forward's products, so fewer layers gain: with the compiled
# transforms and the Makefile's malloc settings, the paper's CNN's 128x128 on 28x28 and 128x256 and 256x256 on 14x14
# maps take ~1.5x less time (benchmarks/winograd_sweep.py --forward-only; docs/EXPERIMENTS.md).
FORWARD_RULES = ((128 * 128, 14),)
FORWARD_SLICE_BYTES = 64 << 20

def _matrices(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    key = (dtype, device)
    if key not in _MATRICES:
        bt, g, at = (torch.tensor(m, dtype=torch.float64) for m in (_BT, _G, _AT))
        _MATRICES[key] = tuple(torch.kron(m, m).to(dtype=dtype, device=device) for m in (bt, g, at))
    return _MATRICES[key]


def _tiles(n: int) -> int:
    return -(-n // OUT)


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """The convolution's output (channels_last), with what its backward pass reuses: the transformed input
    tiles v, the transformed filters u and the transforms that ran."""
    n, c, h, w = x.shape
    k = weight.shape[0]
    _, gk, _ = _matrices(x.dtype, x.device)
    transforms = _NATIVE if _native_fits(x, k) else _TORCH
    v = transforms.input(x.permute(0, 2, 3, 1), n, h, w, c)  # NHWC view: no copy for channels_last
    u = (gk @ weight.reshape(k * c, 9).T).view(TILE * TILE, k, c).transpose(1, 2).contiguous()
    m = torch.bmm(v, u)  # 36, p, k
    return transforms.output(m, bias, n, h, w, k).permute(0, 3, 1, 2), v, u, transforms


class _WinogradConv3x3(torch.autograd.Function):
    """Stride 1, padding 1, no groups or dilation; input N,C,H,W in any memory format, output channels_last."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        out, v, u, transforms = _forward(x, weight, bias)
        ctx.save_for_backward(v, u)
        ctx.sizes = (*x.shape, weight.shape[0])  # n, c, h, w, k
        ctx.has_bias = bias is not None
        ctx.transforms = transforms
        return out

    @staticmethod
    def backward(ctx, grad_out):
        v, u = ctx.saved_tensors
        n, c, h, w, k = ctx.sizes
        transforms = ctx.transforms
        _, gk, _ = _matrices(grad_out.dtype, grad_out.device)
        dm = transforms.output_grad(grad_out.permute(0, 2, 3, 1), n, h, w, k)  # 36, p, k
        du = torch.bmm(v.transpose(1, 2), dm)  # 36, c, k
        grad_weight = (gk.T @ du.view(TILE * TILE, c * k)).view(3, 3, c, k).permute(3, 2, 0, 1).contiguous()
        dv = torch.bmm(dm, u.transpose(1, 2))  # 36, p, c
        grad_x = transforms.input_grad(dv, n, h, w, c).permute(0, 3, 1, 2)
        grad_bias = grad_out.sum((0, 2, 3)) if ctx.has_bias else None
        return grad_x, grad_weight, grad_bias


class _TorchTransforms:
    """The tile transforms as Kronecker-matrix products over gathered tiles: any dtype and device."""

    @staticmethod
    def input(x: torch.Tensor, n: int, h: int, w: int, c: int) -> torch.Tensor:
        """NHWC image -> [36, P, C] transformed tiles; 6x6 tiles overlapping by 2 cover the zero-padded image."""
        bk, _, _ = _matrices(x.dtype, x.device)
        th, tw = _tiles(h), _tiles(w)
        padded = F.pad(x, (0, 0, 1, OUT * tw + 1 - w, 1, OUT * th + 1 - h))
        tiles = padded.unfold(1, TILE, OUT).unfold(2, TILE, OUT)  # n, th, tw, c, 6, 6 (a view)
        tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(TILE * TILE, n * th * tw * c)
        return (bk @ tiles).view(TILE * TILE, n * th * tw, c)

    @staticmethod
    def output(m: torch.Tensor, bias: torch.Tensor | None, n: int, h: int, w: int, k: int) -> torch.Tensor:
        """[36, P, K] products -> NHWC output (4x4 blocks, cropped), plus bias."""
        _, _, ak = _matrices(m.dtype, m.device)
        th, tw = _tiles(h), _tiles(w)
        y = (ak @ m.view(TILE * TILE, -1)).view(OUT, OUT, n, th, tw, k)
        y = y.permute(2, 3, 0, 4, 1, 5).reshape(n, OUT * th, OUT * tw, k)[:, :h, :w].contiguous()
        return y if bias is None else y.add_(bias)

    @staticmethod
    def output_grad(dy: torch.Tensor, n: int, h: int, w: int, k: int) -> torch.Tensor:
        """NHWC output gradient in 4x4 blocks, transposed through A: [36, P, K]."""
        _, _, ak = _matrices(dy.dtype, dy.device)
        th, tw = _tiles(h), _tiles(w)
        dy = F.pad(dy, (0, 0, 0, OUT * tw - w, 0, OUT * th - h))
        dy = dy.reshape(n, th, OUT, tw, OUT, k).permute(2, 4, 0, 1, 3, 5).reshape(OUT * OUT, -1)
        return (ak.T @ dy).view(TILE * TILE, n * th * tw, k)

    @staticmethod
    def input_grad(dv: torch.Tensor, n: int, h: int, w: int, c: int) -> torch.Tensor:
        """[36, P, C] tile gradients -> NHWC input gradient, overlapping tiles summed."""
        bk, _, _ = _matrices(dv.dtype, dv.device)
        th, tw = _tiles(h), _tiles(w)
        dtiles = (bk.T @ dv.view(TILE * TILE, -1)).view(TILE, TILE, n, th, tw, c)
        return _fold(dtiles, n, th, tw, c)[:, 1:1 + h, 1:1 + w]


def _fold(dtiles: torch.Tensor, n: int, th: int, tw: int, c: int) -> torch.Tensor:
    """Sum the 6x6 tile gradients onto the padded image (N,H,W,C): each tile's last two rows and columns
    overlap the next tile's first two, so the 4x4 cores are copied and the overlaps added in three passes."""
    out = dtiles.new_zeros(n, OUT * th + OUT, OUT * tw + OUT, c)

    def blocks(row: int, col: int) -> torch.Tensor:  # the image from (row, col) on, as n, th, 4, tw, 4, c
        return out[:, row:row + OUT * th, col:col + OUT * tw].unflatten(1, (th, OUT)).unflatten(3, (tw, OUT))

    def part(rows: slice, cols: slice) -> torch.Tensor:
        return dtiles[rows, cols].permute(2, 3, 0, 4, 1, 5)

    core, edge = slice(0, OUT), slice(OUT, TILE)
    blocks(0, 0).copy_(part(core, core))
    blocks(OUT, 0)[:, :, :2].add_(part(edge, core))
    blocks(0, OUT)[:, :, :, :, :2].add_(part(core, edge))
    blocks(OUT, OUT)[:, :, :2, :, :2].add_(part(edge, edge))
    return out


class _NativeTransforms:
    """The same four transforms in winograd_transforms.c (fp32, CPU): sums instead of matrix products,
    tiles gathered and scattered in place; 2-5x faster than _TorchTransforms on an AVX2-only EPYC."""

    @staticmethod
    def input(x: torch.Tensor, n: int, h: int, w: int, c: int) -> torch.Tensor:
        return _native_tiles("input_transform", x, n, h, w, c)

    @staticmethod
    def output(m: torch.Tensor, bias: torch.Tensor | None, n: int, h: int, w: int, k: int) -> torch.Tensor:
        y = m.new_empty(n, h, w, k)
        native.run("output_transform", [m, None if bias is None else bias.contiguous(), y], n, h, w, k)
        return y

    @staticmethod
    def output_grad(dy: torch.Tensor, n: int, h: int, w: int, k: int) -> torch.Tensor:
        return _native_tiles("output_grad_transform", dy, n, h, w, k)

    @staticmethod
    def input_grad(dv: torch.Tensor, n: int, h: int, w: int, c: int) -> torch.Tensor:
        dx = dv.new_zeros(n, h, w, c)
        native.run("input_grad_transform", [dv.contiguous(), dx], n, h, w, c)
        return dx


def _native_tiles(transform: str, image: torch.Tensor, n: int, h: int, w: int, channels: int) -> torch.Tensor:
    """NHWC image -> [36, P, channels] by one of the compiled transforms."""
    image = image.contiguous()
    tiles = image.new_empty(TILE * TILE, n * _tiles(h) * _tiles(w), channels)
    native.run(transform, [image, tiles], n, h, w, channels)
    return tiles


_TORCH, _NATIVE = _TorchTransforms(), _NativeTransforms()


_torch_only = False


@contextlib.contextmanager
def torch_transforms():
    """Within it, the transforms are torch operations even where the compiled ones could run (benchmarks)."""
    global _torch_only
    before, _torch_only = _torch_only, True
    try:
        yield
    finally:
        _torch_only = before


def _native_fits(x: torch.Tensor, out_channels: int) -> bool:
    return x.dtype == torch.float32 and x.device.type == "cpu" and _compiled(x.shape[1], out_channels)


def _compiled(in_channels: int, out_channels: int) -> bool:
    """Whether the compiled transforms run: they take channel counts divisible by their vector width, 8."""
    return (not _torch_only and in_channels % 8 == 0 and out_channels % 8 == 0
            and native.library() is not None)


def winograd_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=1) for 3x3 filters, by Winograd F(4x4, 3x3)."""
    return _WinogradConv3x3.apply(x, weight, bias)


def winograd_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The same without gradients (evaluation), in slices of images: an evaluation batch of 1,000 would need ~1 GB
    of tiles at once; slices keep each layer's tile buffers near FORWARD_SLICE_BYTES and reuse them."""
    n, c, h, w = x.shape
    per_image = TILE * TILE * _tiles(h) * _tiles(w) * max(c, weight.shape[0]) * x.element_size()
    size = max(1, FORWARD_SLICE_BYTES // per_image)
    if n <= size:
        return _forward(x, weight, bias)[0]
    out = torch.cat([_forward(x[i:i + size], weight, bias)[0] for i in range(0, n, size)])
    return out.contiguous(memory_format=torch.channels_last)  # a no-op: the slices are channels_last


class WinogradConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters and state dict) whose fp32 passes on a CPU use Winograd where it pays
    (`pays`): training steps, and forward passes without gradients (evaluation) on its wide layers. Under autocast,
    on a GPU and while exporting, it is the plain convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu") and not torch.jit.is_tracing()
                and not torch.jit.is_scripting() and not torch.onnx.is_in_onnx_export()):
            training = torch.is_grad_enabled()
            if pays(self, *x.shape[-2:], forward_only=not training):
                convolve = winograd_conv3x3 if training else winograd_forward
                return convolve(x, self.weight, self.bias)
        return super().forward(x)


def pays(conv: nn.Conv2d, height: int, width: int, forward_only: bool = False) -> bool:
    """For an fp32 CPU pass of an eligible convolution on height x width maps: a training step, or a forward pass
    alone (evaluation), where only wide layers gain and only with the compiled transforms."""
    compiled = _compiled(conv.in_channels, conv.out_channels)
    if forward_only:
        rules = FORWARD_RULES if compiled else ()
    else:
        rules = COMPILED_RULES if compiled else TORCH_RULES
    product, size = conv.in_channels * conv.out_channels, min(height, width)
    return any(product >= least and size >= side for least, side in rules)


def eligible(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and conv.in_channels * conv.out_channels >= MIN_CHANNEL_PRODUCT)


def use_winograd(model: nn.Module) -> int:
    """Turn the model's wide 3x3 convolutions into WinogradConv2d in place (parameters untouched); returns
    how many. The class changes, not the module, so optimizers and state dicts are unaffected."""
    changed = 0
    for module in model.modules():
        if eligible(module):
            module.__class__ = WinogradConv2d
            changed += 1
    return changed


def use_direct(model: nn.Module) -> None:
    """Undo use_winograd (for a copy that leaves training: export, serving)."""
    for module in model.modules():
        if type(module) is WinogradConv2d:
            module.__class__ = nn.Conv2d
