"""The whole data set as in-memory tensors, and batches sliced from a shuffled index.

No per-sample Dataset/DataLoader: one epoch is a permutation and a loop of tensor slices, which is
what makes small models fast on a CPU (see benchmarks/epoch_speed.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .dataset import MEAN, STD, FashionMNIST, split_indices


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> normalised float32 (N, 1, 28, 28)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div_(255.0)  # copy: source may be read-only
    return x.sub_(MEAN).div_(STD).unsqueeze(1)


@dataclass
class Split:
    images: torch.Tensor  # (N, 1, 28, 28) float32, normalised
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class Splits:
    train: Split
    val: Split | None
    test: Split


def make_splits(data: FashionMNIST, val_size: int = 10_000, split_seed: int = 0,
                train_limit: int | None = None, test_limit: int | None = None) -> Splits:
    """Train/validation from the 60,000 training images (seeded), test kept apart for final evaluation.

    `train_limit`/`test_limit` take the first N of each (after the split) for quick experiments and tests.
    """
    train_idx, val_idx = split_indices(len(data.train_labels), val_size, split_seed)
    if train_limit:
        train_idx = train_idx[:train_limit]
        val_idx = val_idx[:max(1, min(len(val_idx), train_limit // 5))] if len(val_idx) else val_idx
    test_n = test_limit or len(data.test_labels)
    make = lambda imgs, labels: Split(to_tensor(imgs), torch.from_numpy(labels.astype(np.int64)))  # noqa: E731
    val = make(data.train_images[val_idx], data.train_labels[val_idx]) if len(val_idx) else None
    return Splits(train=make(data.train_images[train_idx], data.train_labels[train_idx]), val=val,
                  test=make(data.test_images[:test_n], data.test_labels[:test_n]))


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The sample order of one epoch, a pure function of (seed, epoch) so a resumed run sees the same."""
    if not shuffle:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def iterate_batches(split: Split, batch_size: int, order: torch.Tensor | None = None, start: int = 0,
                    drop_last: bool = False, stop: int | None = None):
    """Yield (images, labels) slices in `order` (all of `split`'s images or some), batch numbers `start` up to
    `stop` (default: all)."""
    n = len(split) if order is None else len(order)
    end = num_batches(n, batch_size, drop_last)
    for b in range(start, end if stop is None else min(stop, end)):
        if order is None:
            sl = slice(b * batch_size, min(n, (b + 1) * batch_size))
            yield split.images[sl], split.labels[sl]
        else:
            idx = order[b * batch_size:(b + 1) * batch_size].to(split.images.device)
            yield split.images.index_select(0, idx), split.labels.index_select(0, idx)
