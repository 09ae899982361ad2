"""Seconds per training epoch of the seed networks, fp32 (direct and Winograd convolutions) vs bf16, and the
in-memory loader vs a DataLoader.

    python benchmarks/epoch_speed.py [--cnn-steps 20] [--threads 2]

An epoch is 50,000 images at batch size 128 (the paper's split). `ann` and `ann_bn` epochs are timed whole;
the CNN is timed over --cnn-steps batches after warm-up and scaled to an epoch (it costs minutes per
epoch). The loader comparison trains the same `ann` for one epoch fed by (a) fashionlab's in-memory
batches and (b) a per-sample torch Dataset + DataLoader, the usual tutorial pipeline, and prints the ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from machine import cpu_precision, describe
from PIL import Image
from torch import nn

from fashionlab.config import RunConfig
from fashionlab.data import MEAN, STD, epoch_order, iterate_batches, load_fashion_mnist, make_splits, split_indices
from fashionlab.models import create_model
from fashionlab.models.winograd import use_winograd
from fashionlab.training.optim import create_optimizer
from fashionlab.training.precision import autocast, prepare_input, prepare_model

BATCH = 128


def step_fn(model, precision, package_optimizer: bool):
    """A training step with the paper's Adam: fashionlab's (fused, training/optim.py) or torch's default."""
    if package_optimizer:
        opt = create_optimizer(model.parameters(), RunConfig(optimizer="adam", lr=1e-3))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    device = torch.device("cpu")

    def step(x, y):
        with autocast(device, precision):
            logits = model(prepare_input(x, model))
        loss = nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def in_memory_epoch(model, train, precision, max_steps=None, package_optimizer=True) -> float:
    """Seconds for one epoch (or max_steps batches scaled to one epoch) with fashionlab's loader."""
    step = step_fn(model, precision, package_optimizer)
    batches = iterate_batches(train, BATCH, epoch_order(len(train), 0, 0), drop_last=True)
    warm = [next(batches) for _ in range(2)]
    for x, y in warm:
        step(x, y)
    n_steps, total = 0, len(train) // BATCH
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
        n_steps += 1
        if max_steps and n_steps >= max_steps:
            break
    return (time.perf_counter() - start) * total / n_steps


class PerSample(torch.utils.data.Dataset):
    """The usual tutorial pipeline, as torchvision's FashionMNIST + ToTensor() + Normalize() do it: each
    __getitem__ makes a PIL image from the uint8 array, converts it to a float tensor and normalises it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).float().div(255).unsqueeze(0)
        return (x - MEAN) / STD, int(self.labels[i])


def training_images(data) -> tuple[np.ndarray, np.ndarray]:
    """The 50,000 training images of the paper's split as the files hold them (uint8), with their labels."""
    train_idx, _ = split_indices(len(data.train_labels), 10_000, 0)
    return data.train_images[train_idx], data.train_labels[train_idx]


def replace_dropouts(model: nn.Module, make) -> nn.Module:
    """`model` with every dropout layer (torch's or fashionlab's) replaced by `make(layer)`."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.Dropout):
                setattr(module, name, make(child))
    return model


def with_torch_dropout(model: nn.Module) -> nn.Module:
    """`model` with torch's own nn.Dropout in place of fashionlab's (models/dropout.py), as plain code has it."""
    return replace_dropouts(model, lambda layer: nn.Dropout(layer.p))


def dataloader_epoch(model, images: np.ndarray, labels: np.ndarray, precision) -> float:
    """Seconds for one epoch over uint8 `images` fed through PerSample + DataLoader, torch's default Adam."""
    step = step_fn(model, precision, package_optimizer=False)
    loader = torch.utils.data.DataLoader(PerSample(images, labels), batch_size=BATCH, shuffle=True, drop_last=True)
    start = time.perf_counter()
    for x, y in loader:
        step(x, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cnn-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_fashion_mnist()
    train = make_splits(data).train
    print(f"# {describe()}; batch {BATCH}")
    print("| model | fp32 s/epoch | fp32, Winograd 3x3 | bf16 s/epoch | bf16 speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name in ("ann", "ann_bn", "cnn"):
        steps = args.cnn_steps if name == "cnn" else None
        times = {}
        for precision in ("fp32", "fp32-winograd", "bf16") if cpu_precision() == "bf16" else ("fp32", "fp32-winograd"):
            torch.manual_seed(0)
            model = prepare_model(create_model(name), "cpu")
            if precision == "fp32-winograd" and not use_winograd(model):
                continue  # no convolution wide enough
            times[precision] = in_memory_epoch(model, train, precision.removesuffix("-winograd"), steps)
        label = f"{name} (scaled from {steps} batches)" if steps else name
        winograd = f"{times['fp32-winograd']:.1f}" if "fp32-winograd" in times else "—"
        bf16 = (f"{times['bf16']:.1f} | {times['fp32'] / times['bf16']:.2f}x" if "bf16" in times
                else "— | no bf16 products on this CPU")
        print(f"| {label} | {times['fp32']:.1f} | {winograd} | {bf16} |", flush=True)

    torch.manual_seed(0)
    ours = in_memory_epoch(create_model("ann"), train, "fp32", package_optimizer=False)  # loaders alone differ
    torch.manual_seed(0)
    theirs = dataloader_epoch(create_model("ann"), *training_images(data), "fp32")
    print("\n| loader (ann, fp32, one epoch) | seconds |")
    print("|---|---:|")
    print(f"| per-sample Dataset + DataLoader | {theirs:.2f} |")
    print(f"| fashionlab in-memory batches | {ours:.2f} |")
    print(f"| speed-up | {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()
