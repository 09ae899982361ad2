"""Sharpness-aware minimisation (SAM; Foret et al., ICLR 2021) as a step hook: each step's gradient is taken at the
weights moved `rho` up the loss's own gradient (the worst nearby point, to first order), then applied to the
weights where they were, so training prefers minima whose neighbourhood is low too. It costs a second forward and
backward pass, so a run may use it for its last steps only: SAM late in training finds flatter minima about as
well as SAM all along (Zhou et al., ICLR 2025, "Sharpness-aware minimization efficiently selects flatter minima
late in training").
"""

from __future__ import annotations

import torch

from fashionlab.errors import ConfigError
from fashionlab.training.hooks import StepHooks, TrainingStart


class SharpnessAware(StepHooks):
    """SAM with radius `rho` from step `start_fraction` x (the run's steps) on; plain steps before it."""

    def __init__(self, rho: float, start_fraction: float = 0.0):
        if not rho > 0:
            raise ConfigError(f"sam_rho must be more than 0, got {rho}")
        if not 0 <= start_fraction < 1:
            raise ConfigError(f"sam_from must be a fraction of the steps in [0, 1), got {start_fraction}")
        self.rho, self.start_fraction = rho, start_fraction
        self.params: list[torch.nn.Parameter] = []
        self.first_step = 0.0
        self.moves: list[tuple[torch.Tensor, torch.Tensor]] = []

    def start(self, run: TrainingStart) -> None:
        self.params = [p for p in run.model.parameters() if p.requires_grad]
        self.first_step = self.start_fraction * run.steps

    def before_optimizer_step(self, recompute, step: int) -> None:
        """Replace the gradients by those at the weights moved up them (the second pass, on the same batch)."""
        if step < self.first_step:
            return
        self.ascend()
        try:
            recompute()
        finally:
            self.restore()

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
