"""Seconds per training epoch of the seed networks, fp32 vs bf16, and the in-memory loader vs a DataLoader.

    python benchmarks/epoch_speed.py [--cnn-steps 20] [--threads 2]

An epoch is 50,000 images at batch size 128 (the seed's split). `ann` and `ann_bn` epochs are timed whole;
the CNN is timed over --cnn-steps batches after warm-up and scaled to an epoch (it costs minutes per
epoch). The loader comparison trains the same `ann` for one epoch fed by (a) fashionlab's in-memory
batches and (b) a per-sample torch Dataset + DataLoader, the usual tutorial pipeline, and prints the ratio.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from fashionlab.data import epoch_order, iterate_batches, load_fashion_mnist, make_splits
from fashionlab.models import create_model
from fashionlab.training.precision import autocast, prepare_input, prepare_model

BATCH = 128


def step_fn(model, precision):
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


def in_memory_epoch(model, train, precision, max_steps=None) -> float:
    """Seconds for one epoch (or max_steps batches scaled to one epoch) with fashionlab's loader."""
    step = step_fn(model, precision)
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
    """The tutorial pipeline: one (image, label) per __getitem__, collated into batches by DataLoader."""

    def __init__(self, split):
        self.images, self.labels = split.images, split.labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def dataloader_epoch(model, train, precision) -> float:
    step = step_fn(model, precision)
    loader = torch.utils.data.DataLoader(PerSample(train), batch_size=BATCH, shuffle=True, drop_last=True)
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
    train = make_splits(load_fashion_mnist()).train
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"batch {BATCH}, {time.strftime('%Y-%m-%d %H:%M')}")
    print("| model | fp32 s/epoch | bf16 s/epoch | bf16 speed-up |")
    print("|---|---:|---:|---:|")
    for name in ("ann", "ann_bn", "cnn"):
        steps = args.cnn_steps if name == "cnn" else None
        times = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            times[precision] = in_memory_epoch(prepare_model(create_model(name), "cpu"), train, precision, steps)
        label = f"{name} (scaled from {steps} batches)" if steps else name
        print(f"| {label} | {times['fp32']:.1f} | "
              f"{times['bf16']:.1f} | {times['fp32'] / times['bf16']:.2f}x |", flush=True)

    torch.manual_seed(0)
    ours = in_memory_epoch(create_model("ann"), train, "fp32")
    torch.manual_seed(0)
    theirs = dataloader_epoch(create_model("ann"), train, "fp32")
    print("\n| loader (ann, fp32, one epoch) | seconds |")
    print("|---|---:|")
    print(f"| per-sample Dataset + DataLoader | {theirs:.2f} |")
    print(f"| fashionlab in-memory batches | {ours:.2f} |")
    print(f"| speed-up | {theirs / ours:.1f}x |")


if __name__ == "__main__":
    main()
