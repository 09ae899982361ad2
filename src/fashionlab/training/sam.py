"""Sharpness-aware minimisation (SAM; Foret et al., ICLR 2021): each step's gradient is taken at the weights
moved `rho` up the loss's own gradient (the worst nearby point, to first order), then applied to the weights
where they were, so training prefers minima whose neighbourhood is low too. It costs a second forward and
backward pass, so a run may use it for its last steps only: SAM late in training finds flatter minima about as
well as SAM all along (Zhou et al., ICLR 2025, "Sharpness-aware minimization efficiently selects flatter minima
late in training").
"""

from __future__ import annotations

import torch


class SharpnessAware:
    def __init__(self, params, rho: float):
        self.params = [p for p in params if p.requires_grad]
        self.rho = rho
        self.moves: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def ascend(self) -> None:
        """Move the weights `rho` along their current gradient (norm over all of them) and clear the gradients."""
        with_grad = [p for p in self.params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in with_grad]))
        scale = self.rho / (norm + 1e-12)
        self.moves = [(p, p.grad * scale) for p in with_grad]
        for p, move in self.moves:
            p.add_(move)
            p.grad = None

    @torch.no_grad()
    def restore(self) -> None:
        """Put the weights back where `ascend` found them; their gradients stay (those of the moved weights)."""
        for p, move in self.moves:
            p.sub_(move)
        self.moves = []
