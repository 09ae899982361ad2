"""Muon for convolution filters, SGD with Nesterov momentum for every other parameter.

Muon (K. Jordan, 2024; the optimizer of the CIFAR-10 speedrun airbench94_muon) replaces each filter bank's
Nesterov momentum, seen as an out_channels x (in_channels * k * k) matrix, by the nearest semi-orthogonal
matrix before the step: every direction of the update moves by the same amount, not only the few that
dominate the gradient. Three quintic Newton-Schulz iterations approximate that matrix cheaply (run on the
small Gram matrix, `orthogonalise`): the optimizer step of `fastnet_small` costs ~3 ms more than SGD's on 2
cores, ~6% of a training step (benchmarks/layer_costs.py).

As in airbench94_muon, each filter bank is held at a fixed norm (sqrt(out_channels)) instead of being
decayed: that assumes a batch norm follows it, which makes its scale irrelevant (true of every convolution in
`fastnet*` and the paper's CNN, not of the ResNets' residual branches: train those with sgd). `fastnet`'s stem has
no batch norm of its own, but ReLU, the next convolution and its max-pool all scale with it, so the batch norm
after them makes the stem's scale (weights and bias together) irrelevant too. The stem's filters
over the one greyscale channel are a 16 x 9 matrix, and Muon suits them too: +0.16 point of validation
accuracy for the `fast` recipe over SGD steps for them (docs/EXPERIMENTS.md). Biases, batch-norm
parameters and linear layers take SGD steps at the group's own `lr`, `momentum` and `weight_decay`.
"""

from __future__ import annotations

import torch
from torch.optim.sgd import sgd

# the quintic's coefficients from Muon: chosen to push small singular values up fast, not to converge exactly
_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalise(matrices: list[torch.Tensor], steps: int = 3) -> list[torch.Tensor]:
    """Approximately U V^T for each matrix = U S V^T (singular values to roughly 0.7-1.2).

    Each quintic iteration X <- p(G) X, with G = X X^T and p(G) = aI + bG + cG^2, multiplies X on the left
    by a polynomial in G; the polynomials all commute, so the iterations can run on the small Gram matrix
    alone (G <- p(G) G p(G)) while their product Q is kept, and X is touched twice: G = X X^T at the start,
    Q X at the end. For a conv's m x n filter matrix (m = out channels <= n = in channels x 9) that is two
    m x m x n products instead of two per iteration, cheap enough to do in fp32: ~30% faster than bf16
    iterations on X for `fastnet_small` on 2 cores, and exact where they rounded to ~2%. The iterations of
    matrices with the same m run as one batch: `fastnet_small`'s seven banks have four sizes of G, and on a
    CPU these small products cost more in calls than in arithmetic.
    """
    xs = []
    for matrix in matrices:
        x = matrix.float()
        x = x if x.size(0) <= x.size(1) else x.T
        xs.append(x / (x.norm() + 1e-7))
    by_size: dict[int, list[int]] = {}
    for i, x in enumerate(xs):
        by_size.setdefault(len(x), []).append(i)
    results = [None] * len(xs)
    for indices in by_size.values():
        grams = torch.stack([xs[i] @ xs[i].T for i in indices])
        products = _gram_polynomial(grams, steps)
        for i, product in zip(indices, products):
            results[i] = product @ xs[i]
    return [r if m.size(0) <= m.size(1) else r.T for r, m in zip(results, matrices)]


def _gram_polynomial(gram: torch.Tensor, steps: int) -> torch.Tensor:
    """Q = p_k(G_k) ... p_1(G_1) for a batch of Gram matrices (B, m, m): the quintic iterations' product."""
    a, b, c = _NS_COEFFICIENTS
    product = None
    for step in range(steps):
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G^2
        poly.diagonal(dim1=1, dim2=2).add_(a)                     # + a I
        product = poly if product is None else torch.bmm(poly, product)
        if step < steps - 1:
            gram = torch.bmm(torch.bmm(poly, gram), poly)
    return product


def as_matrix(bank: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """A filter bank (out, in, k, k) as an out x (in k k) matrix, a view in whatever order its memory holds
    (channels_last: out x (k k in)), and the permutation that undoes it. Orthogonalisation commutes with
    permuting columns, so no copy is needed."""
    order = (0, *sorted(range(1, bank.dim()), key=lambda d: -bank.stride(d)))
    return bank.permute(order).reshape(len(bank), -1), order


def from_matrix(matrix: torch.Tensor, bank: torch.Tensor, order: tuple) -> torch.Tensor:
    shape = [bank.size(d) for d in order]
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return matrix.reshape(shape).permute(inverse)


def is_filter_bank(param: torch.Tensor) -> bool:
    """A convolution's weight: what Muon updates."""
    return param.ndim == 4


class Muon(torch.optim.Optimizer):
    """Param groups with `muon: True` take Muon steps (`lr`, `momentum`, Nesterov); the others fused SGD."""

    def __init__(self, param_groups: list[dict], ns_steps: int = 3):
        defaults = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.0, muon=False, ns_steps=ns_steps)
        super().__init__(param_groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["muon"]:
                self._muon_step(params, group)
            elif params:
                self._sgd_step(params, group)

    def _muon_step(self, params: list[torch.Tensor], group: dict) -> None:
        if not params:
            return
        momentum = group["momentum"]
        for p in params:
            if "momentum_buffer" not in self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)
        grads = [p.grad for p in params]
        buffers = [self.state[p]["momentum_buffer"] for p in params]
        # the element-wise work for all filter banks at once: a handful of kernels instead of several per bank
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(buffers, grads)
        updates = torch._foreach_add(grads, buffers, alpha=momentum) if group["nesterov"] else buffers
        scales = torch._foreach_reciprocal(torch._foreach_norm(params))
        torch._foreach_mul_(scales, [len(p) ** 0.5 for p in params])
        torch._foreach_mul_(params, scales)
        matrices, orders = zip(*(as_matrix(u) for u in updates))
        steps = [from_matrix(m, p, order) for m, p, order in
                 zip(orthogonalise(list(matrices), group["ns_steps"]), params, orders)]
        torch._foreach_add_(params, steps, alpha=-group["lr"])

    def _sgd_step(self, params: list[torch.Tensor], group: dict) -> None:
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        sgd(params, [p.grad for p in params], buffers, fused=True, weight_decay=group["weight_decay"],
            momentum=group["momentum"], lr=group["lr"], dampening=0.0, nesterov=group["nesterov"],
            maximize=False)
        for p, buffer in zip(params, buffers):  # sgd() creates the buffers on the first step
            if buffer is not None:
                self.state[p]["momentum_buffer"] = buffer
