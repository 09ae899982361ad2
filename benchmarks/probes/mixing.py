"""Label-mixing augmentations on whole batches, as step hooks. CutMix (Yun et al. 2019): a rectangle of each chosen
image is replaced by the same rectangle of another image of the batch, and the label becomes the two labels weighed
by area. Mixup (Zhang et al. 2018): each image is blended with another, pixels and labels in the same proportion.

They run after the run's augmentation and return soft targets (B, classes), which nn.CrossEntropyLoss takes as
class probabilities, label smoothing included; accuracy is still counted against the images' own labels. The batch
is already in random order, so each image's partner is its neighbour: no gather.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fashionlab.data import CLASSES
from fashionlab.data.augment import rectangles
from fashionlab.errors import ConfigError
from fashionlab.training.hooks import StepHooks

NUM_CLASSES = len(CLASSES)  # Fashion-MNIST's 10


def cutmix(x: torch.Tensor, y: torch.Tensor, p: float, num_classes: int = NUM_CLASSES,
           gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, soft targets (B, num_classes)). Each image is chosen with probability `p`; a chosen one takes
    a rectangle covering a uniform fraction of its area (CutMix's Beta(1, 1)), of the image's aspect, from
    the previous image in the batch. `gen` None: torch's default generator, which the loop seeds every step."""
    b, _, h, w = x.shape
    dev = x.device
    fraction = torch.rand(b, generator=gen, device=dev)
    eh = (h * fraction.sqrt()).round().clamp(1, h)
    ew = (w * fraction.sqrt()).round().clamp(1, w)
    chosen = torch.rand(b, generator=gen, device=dev) < p
    mask = (rectangles(eh, ew, h, w, gen) & chosen[:, None, None])[:, None]
    mixed = torch.where(mask, x.roll(1, 0), x)
    taken = mask.flatten(1).float().mean(1)  # the exact share of pixels from the partner
    return mixed, shared_targets(y, 1 - taken, num_classes)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float,
          num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, soft targets (B, num_classes)): image i becomes lam_i * image i + (1 - lam_i) * image i-1, with
    lam_i ~ Beta(alpha, alpha) drawn per image from torch's default generator (the loop seeds it each step),
    folded to >= 0.5 so each image stays mostly itself: its own label keeps the larger share."""
    lam = torch.distributions.Beta(float(alpha), float(alpha)).sample((x.shape[0],)).to(x.device)
    lam = torch.maximum(lam, 1 - lam)
    weight = lam[:, None, None, None].to(x.dtype)
    mixed = weight * x + (1 - weight) * x.roll(1, 0)
    return mixed, shared_targets(y, lam, num_classes)


def shared_targets(y: torch.Tensor, own: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Soft targets: each image's own target weighed `own` (B,), its partner's (the previous image's) the rest.
    `y`: class indices (B,), or targets another hook already softened (B, num_classes)."""
    one_hot = F.one_hot(y, num_classes).float() if y.dim() == 1 else y.float()
    return own[:, None] * one_hot + (1 - own[:, None]) * one_hot.roll(1, 0)


class CutMix(StepHooks):
    """CutMix on every training batch: each image takes a rectangle of its neighbour with probability `p`."""

    def __init__(self, p: float):
        if not 0 <= p <= 1:
            raise ConfigError(f"cutmix must be a probability in [0, 1], got {p}")
        self.p = p

    def batch(self, x, y, step):
        return cutmix(x, y, self.p)


class Mixup(StepHooks):
    """Mixup on every training batch, each image's share drawn from Beta(alpha, alpha)."""

    def __init__(self, alpha: float):
        if not alpha > 0:
            raise ConfigError(f"mixup's alpha must be more than 0, got {alpha}")
        self.alpha = alpha

    def batch(self, x, y, step):
        return mixup(x, y, self.alpha)
