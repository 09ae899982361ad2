"""How many validation and test images have a near-copy among the images a network trains on.

    python benchmarks/near_duplicates.py [--split-seed 0]

Recipes are chosen on a validation split carved out of the 60,000 training images and reported on the
10,000 test images. If the training set holds near-copies of its own images (the same garment photographed
twice, re-cropped), a validation image often has a twin in the 50,000 the network trained on, while a test
image has fewer: validation accuracy then runs above test accuracy. This counts, for each validation image
(against the other 50,000) and each test image (against all 60,000), the distance to its nearest training
image (root-mean-square pixel difference on the 0-1 scale) and whether that neighbour has the same label.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fashionlab.data import load_fashion_mnist
from fashionlab.data.dataset import split_indices

THRESHOLDS = (0.02, 0.05, 0.10, 0.15)  # rms pixel difference: 0.02 is a near-copy, 0.15 a similar garment


def nearest(queries: np.ndarray, pool: np.ndarray, chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index of and rms distance to its nearest row of `pool` (flattened images, 0-1)."""
    q, p = torch.from_numpy(queries), torch.from_numpy(pool)
    p_sq = (p * p).sum(1)
    index, distance = [], []
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2, one matrix product per chunk
        d2 = (block * block).sum(1, keepdim=True) - 2 * block @ p.T + p_sq
        best = d2.min(1)
        index.append(best.indices)
        distance.append(best.values.clamp_min(0).div(q.shape[1]).sqrt())
    return torch.cat(index).numpy(), torch.cat(distance).numpy()


def report(name: str, distance: np.ndarray, same_label: np.ndarray) -> str:
    cells = []
    for t in THRESHOLDS:
        near = distance < t
        agree = f"{same_label[near].mean():.1%}" if near.any() else "-"
        cells.append(f"{near.mean():.2%} ({agree})")
    return f"| {name} | {len(distance):,} | {np.median(distance):.3f} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-seed", type=int, default=0, help="the validation split's seed (RunConfig's)")
    args = parser.parse_args()
    data = load_fashion_mnist()
    train = data.train_images.reshape(len(data.train_images), -1).astype(np.float32) / 255
    test = data.test_images.reshape(len(data.test_images), -1).astype(np.float32) / 255
    fit_idx, val_idx = split_indices(len(train), 10_000, args.split_seed)

    val_nn, val_d = nearest(train[val_idx], train[fit_idx])
    test_nn, test_d = nearest(test, train)
    val_same = data.train_labels[fit_idx][val_nn] == data.train_labels[val_idx]
    test_same = data.test_labels == data.train_labels[test_nn]

    print("nearest training image: share of images closer than each rms distance (in brackets: share of those "
          "whose neighbour has the same label)\n")
    print("| images | count | median distance | " + " | ".join(f"< {t}" for t in THRESHOLDS) + " |")
    print("|---|---:|---:|" + "---:|" * len(THRESHOLDS))
    print(report("validation vs the other 50,000 training images", val_d, val_same))
    print(report("test vs all 60,000 training images", test_d, test_same))


if __name__ == "__main__":
    main()
