"""Is an ensemble of shorter `best` runs worth more than one long run in the same time? (validation split)

    python benchmarks/ensemble_trial.py --members 2 --epochs 13 [--first-seed 0] [--separate] [--root DIR]

Trains `best` as the ensemble probe `NAME-xK` of the recipe's network (benchmarks/probes/ensemble.py: K = --members,
side by side in one run, each on its own loss, each for --epochs; the recipe's other settings unchanged) on
50,000 images, then scores each member and the ensemble (the mean of the members' logits, as the probe's Ensemble
predicts) on the 10,000-image validation split, under several test-time augmentations. With --separate each
member is its own run of `best` (seeds first-seed, first-seed+1, ...: own starting weights, batches and
augmentations). A finished run already in --root is scored, not trained again, so an interrupted trial resumes
where it stopped. Per-epoch validation inside training runs without TTA (10 views of 10,000 images cost ~50 s on
a 2-core EPYC Zen 4 with AVX512-BF16); the TTA variants are scored here, once, at the end, followed by how many
of the members' errors are the same images (the recipe's TTA).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from machine import describe
from probes.ensemble import EnsembleLoss, ensemble_name
from tune_recipe import validation_config

from fashionlab.artifacts import load_run_model
from fashionlab.data import CLASSES, load_fashion_mnist, make_splits
from fashionlab.evaluation import SHIFTS, shifted
from fashionlab.recipes import RECIPES
from fashionlab.runs import open_run
from fashionlab.training.loop import train
from fashionlab.training.precision import autocast, prepare_input


def views(x: torch.Tensor, shifts: list[tuple[int, int]]) -> list[torch.Tensor]:
    """The image, its mirror, and both moved by each of `shifts` (pixels, the border black)."""
    both = [x, x.flip(3)]
    return both + [shifted_by(v, dx, dy) for v in both for dx, dy in shifts]


def shifted_by(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    for _ in range(abs(dx)):
        x = shifted(x, int(np.sign(dx)), 0)
    for _ in range(abs(dy)):
        x = shifted(x, 0, int(np.sign(dy)))
    return x


AXES = list(SHIFTS)  # the recipe's flip-shift TTA (evaluation.tta_views)
DIAGONALS = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
TTAS = {
    "none": None,
    "flip (2 views)": [],
    "flip-shift, the recipe's (10 views)": AXES,
    "flip + 1-px shifts in 8 directions (18 views)": AXES + DIAGONALS,
    "flip + 1- and 2-px shifts on the axes (18 views)": AXES + [(2 * dx, 2 * dy) for dx, dy in AXES],
}


@torch.no_grad()
def member_logits(model: torch.nn.Module, images: torch.Tensor, shifts, precision: str) -> np.ndarray:
    """(N, classes) logits of one network, averaged over the TTA views."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), 1000):
        x = images[start:start + 1000].to(device)
        batch = [x] if shifts is None else views(x, shifts)
        with autocast(device, precision):
            out.append((sum(model(prepare_input(v, model)).float() for v in batch) / len(batch)).cpu())
    return torch.cat(out).numpy()


def shared_errors(logits: list[np.ndarray], labels: np.ndarray) -> str:
    """Why an ensemble gains little: how many of its members' errors (the recipe's TTA) are the same images, with
    the same wrong answer, and the pairs of classes the ensemble confuses most."""
    answers = [z.argmax(1) for z in logits]
    wrong = [a != labels for a in answers]
    all_wrong = np.logical_and.reduce(wrong)
    same_answer = all_wrong & np.all([a == answers[0] for a in answers], axis=0)
    ensemble = np.mean(logits, axis=0).argmax(1)
    missed = ensemble != labels
    pairs = Counter(tuple(sorted((CLASSES[t], CLASSES[s]))) for t, s in zip(labels[missed], ensemble[missed]))
    top = pairs.most_common(4)
    return (f"\nerrors with the recipe's TTA: members {' / '.join(str(w.sum()) for w in wrong)}, made by every member "
            f"{all_wrong.sum()}, of those with the same wrong answer {same_answer.sum()}; the ensemble's "
            f"{missed.sum()} errors, most often between "
            + ", ".join(f"{a} and {b} ({n})" for (a, b), n in top))


def trained(config, root: Path, data, hooks=None) -> str:
    """The run `config` names, trained into `root` (with `hooks`) unless a finished one is already there."""
    run_dir = root / config.name
    if not (run_dir.is_dir() and open_run(run_dir).finished):
        train(config, root=root, data=data, show_progress=False, hooks=hooks)
    last = open_run(run_dir).history()[-1]
    print(f"{config.name}: {last['seconds']:.0f} s training, last epoch's validation (no TTA) "
          f"{last['val_accuracy']:.2%}", flush=True)
    return config.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=13)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--separate", action="store_true",
                        help="train each member as its own run (seeds first-seed, first-seed+1, ...) instead of "
                             "the ensemble probe (NAME-xK: one run, the members side by side)")
    parser.add_argument("--root", default="ensemble-trial", help="where the runs are kept")
    parser.add_argument("--val-images", type=int, default=10_000, help="score on the first N (a quick check)")
    args = parser.parse_args()
    data = load_fashion_mnist()
    print(f"# {describe()}", flush=True)
    root = Path(args.root)
    overrides = {"epochs": args.epochs, "tta": "none"}
    if args.separate:
        seeds = range(args.first_seed, args.first_seed + args.members)
        configs = [validation_config("best", seed, overrides) for seed in seeds]
        for config in configs:
            config.name = f"best-{args.epochs:g}ep-s{config.seed}"
        members = [load_run_model(trained(config, root, data), root) for config in configs]
        labels = [f"member seed {seed}" for seed in seeds]
    else:
        network = ensemble_name(RECIPES["best"]["model"], args.members)  # registered: RunConfig and loading see it
        config = validation_config("best", args.first_seed, {**overrides, "model": network})
        config.name = f"best-x{args.members}-{args.epochs:g}ep-s{args.first_seed}"
        ensemble, record = load_run_model(trained(config, root, data, EnsembleLoss()), root)
        members = [(member, record) for member in ensemble.members]
        labels = [f"member {i}" for i in range(args.members)]

    record = members[0][1]["config"]
    val = make_splits(data, record["val_size"], record["split_seed"]).val
    images, labels_true = val.images[:args.val_images], val.labels[:args.val_images].numpy()
    print(f"\n| TTA | {' | '.join(labels)} | ensemble of {args.members} |\n|---|" + "---:|" * (args.members + 1))
    for label, shifts in TTAS.items():
        # an ensemble predicts with its members' mean logits (probes/ensemble.py), TTA's views averaged after
        logits = [member_logits(model, images, shifts, rec["precision"]) for model, rec in members]
        scores = [(z.argmax(1) == labels_true).mean() for z in logits]
        ensemble_score = (np.mean(logits, axis=0).argmax(1) == labels_true).mean()
        print(f"| {label} | {' | '.join(f'{s:.2%}' for s in scores)} | {ensemble_score:.2%} |", flush=True)
        if shifts == AXES:
            recipe_tta = logits
    print(shared_errors(recipe_tta, labels_true))


if __name__ == "__main__":
    main()
