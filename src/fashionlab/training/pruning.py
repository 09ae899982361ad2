"""Skip images the network has already learned: InfoBatch (Qin et al., ICLR 2024) on in-memory batches.

Every training image keeps its latest training loss as a score (free: the step computes it anyway). At the
start of each epoch after the first, each image scoring below the mean is skipped with probability `prune`;
the well-learned images that stay have their loss scaled by 1 / (1 - prune), so the expected gradient is
unchanged. An epoch that starts in the last `full_data_tail` of the steps keeps every image (InfoBatch's
annealing; it decides by epoch, as here).

A run's length stays `epochs` x (steps of a full-data epoch), so the schedule is fixed before the first
step: the steps pruning saves buy more passes over the images still being learned, and a recipe that prunes
is given fewer `epochs` (the `standard` recipe: docs/EXPERIMENTS.md).
"""

from __future__ import annotations

import torch

from . import distributed

FULL_DATA_TAIL = 0.125  # InfoBatch's default: its delta = 0.875 of training prunes, the rest does not


class Pruner:
    def __init__(self, n: int, probability: float, seed: int, device: torch.device, batch_size: int = 1,
                 full_data_tail: float = FULL_DATA_TAIL):
        self.probability, self.seed, self.batch_size = probability, seed, batch_size
        self.full_data_tail = full_data_tail
        self.scores = torch.zeros(n, device=device)    # each image's latest training loss
        self.trained = torch.zeros(n, dtype=torch.bool, device=device)  # in the current epoch (DDP merge)
        self.weights = torch.ones(n, device=device)    # the current epoch's loss weight of each image
        self.order: torch.Tensor | None = None         # the current epoch's images, in order; None between epochs
        self.steps_done = 0                             # steps of the finished epochs

    def prunes(self, first_step: int, steps: int) -> bool:
        """Whether an epoch starting at step `first_step` of `steps` may skip images (not in the full-data tail)."""
        return first_step < (1 - self.full_data_tail) * steps

    def start_epoch(self, order: torch.Tensor, epoch: int, prune: bool) -> torch.Tensor:
        """The epoch's images: `order` less the skipped ones, or all of them where that would leave less than a
        batch (the epoch would take no step). Kept as it was when resuming mid-epoch."""
        if self.order is not None:
            return self.order
        self.weights.fill_(1.0)
        if epoch > 0 and prune:
            scores = self.scores.cpu()
            learned = scores < scores.mean()
            draw = torch.rand(len(scores), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            skipped = learned & (draw < self.probability)
            if len(order) - int(skipped[order].sum()) >= self.batch_size:
                self.weights[(learned & ~skipped).to(self.weights.device)] = 1 / (1 - self.probability)
                order = order[~skipped[order]]
        self.order = order
        return order

    def weigh(self, losses: torch.Tensor, images: torch.Tensor, remember: bool = True) -> torch.Tensor:
        """The step's loss from per-image `losses` of `images` (indices), remembering them as scores (not those of
        a hook's second pass: the scores are the losses at the weights being trained)."""
        images = images.to(self.scores.device, non_blocking=True)
        if remember:
            self.scores[images] = losses.detach()
            self.trained[images] = True
        return (losses * self.weights[images]).mean()

    def end_epoch(self, steps: int) -> None:
        # DDP: each rank scored its own shard of every batch; every rank needs all scores to skip alike
        self.scores = distributed.merge_updates(self.scores, self.trained)
        self.trained.zero_()
        self.steps_done += steps
        self.order = None

    def state_dict(self) -> dict:
        return {"scores": self.scores.cpu(), "trained": self.trained.cpu(), "weights": self.weights.cpu(),
                "order": self.order, "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        device = self.scores.device
        self.scores, self.trained = state["scores"].to(device), state["trained"].to(device)
        self.weights, self.order = state["weights"].to(device), state["order"]
        self.steps_done = state["steps_done"]
