"""Time to accuracy of each recipe on this machine, and the seed CNN's epoch: plain pipeline vs fashionlab.

    python benchmarks/time_to_accuracy.py                       # fast x5, mlp x5, standard x3 (best: --best-seeds)
    python benchmarks/time_to_accuracy.py --recipes fast --seeds 5 --best-seeds 1 --ablation
    python benchmarks/time_to_accuracy.py --recipes "" --best-seeds 1 --cnn-steps 0   # `best` alone
    python benchmarks/time_to_accuracy.py --device cuda --best-seeds 1 --cnn-steps 0   # the same recipes on a GPU
    python benchmarks/time_to_accuracy.py --budgets fast=45s,mlp=60s,standard=150s --seeds 2 --cnn-steps 0

`--budgets` trains each named recipe with `fashionlab train --budget` instead of its epochs: the accuracy it
reaches in that much training time on this machine (where its epochs take longer than the target).

Training seconds run from the first step to the last (augmentation included); data loading and the final
test evaluation are reported apart. Recipes train on all 60,000 training images and are scored once on
the 10,000 test images. GFLOP/s counts 3x the forward FLOPs (forward + backward) per 28x28 training image.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from epoch_speed import dataloader_epoch, in_memory_epoch, training_images, with_torch_dropout
from machine import describe

from fashionlab.config import RunConfig
from fashionlab.data import load_fashion_mnist, make_splits
from fashionlab.models import create_model, flops_per_image
from fashionlab.models.winograd import use_winograd
from fashionlab.recipes import TARGETS, recipe_settings
from fashionlab.training.loop import train
from fashionlab.training.precision import (
    bf16_supported,
    choose_precision,
    prepare_model,
    resolve_device,
    uses_winograd,
)

SEEDS = {"fast": 5, "mlp": 5, "standard": 3, "best": 1}

# (label, overrides) removing one technique at a time from the `fast` recipe
ABLATION = [
    ("fast recipe", {}),
    ("fp32 instead of bf16", {"precision": "fp32"}),
    ("no test-time augmentation", {"tta": "none"}),
    ("flip-and-shift test-time augmentation instead of flips", {"tta": "flip-shift"}),
    ("no label smoothing", {"label_smoothing": 0.0}),
    ("no flip augmentation", {"augment": {}}),
    ("with 2-pixel shifts (crop:padding=2) as well", {"augment": {"flip": {}, "crop": {"padding": 2}}}),
    ("constant lr instead of one-cycle", {"scheduler": "none", "lr": 0.02}),
    ("batch 256 at lr 0.2 instead of 128 at 0.14", {"batch_size": 256, "lr": 0.2}),
    ("SGD-Nesterov instead of Muon on the filters", {"optimizer": "sgd"}),
    ("SGD-Nesterov for 2.1 epochs (the recipe before Muon)", {"optimizer": "sgd", "epochs": 2.1}),
]


def run_recipe(name: str, seed: int, root: str, data, overrides: dict | None = None, device: str = "auto") -> dict:
    settings = {**recipe_settings(name), **(overrides or {}), "seed": seed, "device": device,
                "name": f"{name}-{seed}-{time.time_ns()}"}
    run = train(RunConfig.from_dict(settings), root=root, data=data, show_progress=False)
    return run.metrics()


def training_flops_per_image(settings: dict) -> float:
    """Forward FLOPs per 28x28 training image of the settings' network."""
    return flops_per_image(create_model(settings["model"]))


def summarise(label: str, results: list[dict], flops: float) -> str:
    acc = [r["accuracy"] for r in results]
    secs = [r["train_seconds"] for r in results]
    epochs = results[0]["epochs"]
    images_per_s = 60_000 * epochs / statistics.median(secs)
    gflops = 3 * flops * images_per_s / 1e9
    std = statistics.stdev(acc) if len(acc) > 1 else 0.0
    return (f"| {label} | {len(acc)} | {statistics.mean(acc):.2%} ± {std:.2%} | {min(acc):.2%} | "
            f"{statistics.median(secs):.1f} | {images_per_s:,.0f} | {gflops:.0f} | "
            f"{statistics.median(r['eval_seconds'] for r in results):.1f} |")


def cnn_epoch_comparison(data, steps: int) -> None:
    """One epoch of the seed CNN: plain fp32 per-sample DataLoader vs fashionlab (in-memory, auto precision,
    Winograd convolutions where it trains in fp32 on the CPU), with the ablations between them."""
    train_split = make_splits(data).train
    torch.manual_seed(0)
    plain = dataloader_epoch_scaled(with_torch_dropout(create_model("cnn")), data, steps)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    precision = choose_precision("auto", prepare_model(create_model("cnn"), cpu), cpu, 128)
    torch.manual_seed(0)
    torch_dropout = in_memory_epoch(prepare_model(with_torch_dropout(create_model("cnn")), cpu), train_split,
                                    precision, steps)
    torch.manual_seed(0)
    ours = direct = in_memory_epoch(prepare_model(create_model("cnn"), cpu), train_split, precision, steps)
    print("\n| seed CNN, one epoch of 50,000 images, batch 128 | seconds |")
    print("|---|---:|")
    print(f"| plain PyTorch: per-sample DataLoader, fp32, NCHW, nn.Dropout | {plain:.0f} |")
    print(f"| fashionlab but with nn.Dropout: in-memory batches, {precision}, channels_last | {torch_dropout:.0f} |")
    print(f"| fashionlab: the same with its cheaper dropout mask | {direct:.0f} |")
    if uses_winograd(precision, cpu, winograd=True):
        torch.manual_seed(0)
        model = prepare_model(create_model("cnn"), cpu)
        use_winograd(model)
        ours = in_memory_epoch(model, train_split, precision, steps)
        print(f"| fashionlab: the same with Winograd 3x3 convolutions | {ours:.0f} |")
    print(f"| speed-up (plain / fashionlab) | {plain / ours:.2f}x |")


def dataloader_epoch_scaled(model, data, steps: int) -> float:
    """The plain pipeline over `steps` batches, scaled to an epoch (a whole fp32 CNN epoch takes many minutes)."""
    images, labels = training_images(data)
    dataloader_epoch(model, images[: 2 * 128], labels[: 2 * 128], "fp32")  # warm-up, as the in-memory timing has
    seconds = dataloader_epoch(model, images[: steps * 128], labels[: steps * 128], "fp32")
    return seconds * len(labels) / (steps * 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="fast,mlp,standard", help="comma-separated recipe names")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per recipe (default: 5 fast/mlp, 3 standard)")
    parser.add_argument("--best-seeds", type=int, default=0, help="also run the 60-minute `best` recipe this often")
    parser.add_argument("--ablation", action="store_true", help="also remove one technique at a time from `fast`")
    parser.add_argument("--ablation-seeds", type=int, default=2)
    parser.add_argument("--cnn-steps", type=int, default=20,
                        help="batches timed for the CNN epoch comparison (0 = skip it)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto (a GPU if torch sees one), cpu or cuda")
    parser.add_argument("--budgets", default="", help="RECIPE=DURATION,...: train those recipes to a time budget")
    args = parser.parse_args()
    budgets = dict(item.split("=", 1) for item in args.budgets.split(",") if item)
    bf16 = bf16_supported(resolve_device(args.device))  # which of a recipe's time targets applies here
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    data = load_fashion_mnist()
    load_seconds = time.perf_counter() - start
    print(f"# {describe()}; data loading {load_seconds:.1f} s")
    print("| recipe | seeds | test accuracy (mean ± std) | min | median training s | images/s | GFLOP/s "
          "| test eval s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    # dict.fromkeys: `--recipes best --best-seeds 1` runs `best` once, not twice
    recipes = list(dict.fromkeys([r for r in args.recipes.split(",") if r] + (["best"] if args.best_seeds else [])))
    with tempfile.TemporaryDirectory() as root:
        for name in recipes:
            seeds = args.best_seeds if name == "best" else (args.seeds or SEEDS[name])
            overrides = {"budget": budgets[name]} if name in budgets else None
            results = [run_recipe(name, seed, root, data, overrides, device=args.device)
                       for seed in range(args.first_seed, args.first_seed + seeds)]
            flops = training_flops_per_image(recipe_settings(name))
            target = TARGETS[name]
            label = f"{name} (target ≥ {target.accuracy:.1%} in ≤ {target.time_target(bf16)} s)"
            if name in budgets:
                label += f", trained to a {budgets[name]} budget ({results[0]['epochs']:.2f} epochs)"
            print(summarise(label, results, flops), flush=True)
        if args.ablation:
            print("\n| ablation of `fast` | seeds | test accuracy (mean ± std) | min | median training s | images/s "
                  "| GFLOP/s | test eval s |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for label, overrides in ABLATION:
                results = [run_recipe("fast", seed, root, data, overrides, args.device)
                           for seed in range(args.ablation_seeds)]
                flops = training_flops_per_image({**recipe_settings("fast"), **overrides})
                print(summarise(label, results, flops), flush=True)
    if args.cnn_steps:
        cnn_epoch_comparison(data, args.cnn_steps)


if __name__ == "__main__":
    main()
