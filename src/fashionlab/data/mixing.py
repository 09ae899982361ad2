"""Label-mixing augmentations on whole batches. CutMix (Yun et al. 2019): a rectangle of each chosen image is
replaced by the same rectangle of another image of the batch, and the label becomes the two labels weighed by
area. Mixup (Zhang et al. 2018): each image is blended with another, pixels and labels in the same proportion.

Unlike the augmentations in augment.py these change the labels too, so the loop calls them on (images, labels)
and trains on the soft targets they return (nn.CrossEntropyLoss takes class probabilities, label smoothing
included). The batch is already in random order, so each image's partner is its neighbour: no gather.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .augment import rectangles


def cutmix(x: torch.Tensor, y: torch.Tensor, p: float, num_classes: int,
           gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, soft targets (B, num_classes)). Each image is chosen with probability `p`; a chosen one takes
    a rectangle covering a uniform fraction of its area (CutMix's Beta(1, 1)), of the image's aspect, from
    the previous image in the batch."""
    b, _, h, w = x.shape
    dev = x.device
    fraction = torch.rand(b, generator=gen, device=dev)
    eh = (h * fraction.sqrt()).round().clamp(1, h)
    ew = (w * fraction.sqrt()).round().clamp(1, w)
    chosen = torch.rand(b, generator=gen, device=dev) < p
    mask = (rectangles(eh, ew, h, w, gen) & chosen[:, None, None])[:, None]
    mixed = torch.where(mask, x.roll(1, 0), x)
    taken = mask.flatten(1).float().mean(1)  # the exact share of pixels from the partner
    return mixed, _shared_targets(y, 1 - taken, num_classes)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, soft targets (B, num_classes)): image i becomes lam_i * image i + (1 - lam_i) * image i-1, with
    lam_i ~ Beta(alpha, alpha) drawn per image from torch's default generator (the loop seeds it each step),
    folded to >= 0.5 so each image stays mostly itself: its own label keeps the larger share."""
    lam = torch.distributions.Beta(float(alpha), float(alpha)).sample((x.shape[0],)).to(x.device)
    lam = torch.maximum(lam, 1 - lam)
    weight = lam[:, None, None, None].to(x.dtype)
    mixed = weight * x + (1 - weight) * x.roll(1, 0)
    return mixed, _shared_targets(y, lam, num_classes)


def _shared_targets(y: torch.Tensor, own: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Soft targets: each image's own label weighed `own` (B,), its partner's (the previous image's) the rest."""
    one_hot = F.one_hot(y, num_classes).float()
    return own[:, None] * one_hot + (1 - own[:, None]) * one_hot.roll(1, 0)
