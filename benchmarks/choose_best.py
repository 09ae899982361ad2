"""Choose the `best` recipe's settings on the validation split, then score the choice once on the test set.

    python benchmarks/choose_best.py --device cuda [--seeds 3] [--budget-seconds 340] [--max-epochs 28]

Every candidate (a few overrides of `best`) trains on 50,000 images and is scored on the 10,000-image
validation split, the recipe's test-time augmentation included. Candidates that cost more than --max-epochs of
`fastnet_large`'s epochs do not fit `best`'s 60-minute target on the 2-core CPU (a 2-core EPYC Zen 4 with
AVX512-BF16: 112-131 s per 60,000-image epoch of `fastnet_large`, 48-52 min for 26 epochs) and run once, for
reference. `fastnet_large` and the wider networks are probes (benchmarks/probes/architectures.py, and here).
The fitting candidate with the highest mean validation accuracy then trains on all 60,000 images and is
scored on the test set, once per --test-seeds. A 45-epoch run takes 44-72 s on an H200 against ~78 min on
the CPU, which is why this runs on a GPU when one is lent.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time

import probes.architectures  # noqa: F401  (registers fastnet_large, a candidate and the cost unit)
from machine import describe
from time_to_accuracy import run_recipe
from tune_recipe import validation_score

from fashionlab.data import load_fashion_mnist
from fashionlab.models import register
from fashionlab.models.fastnet import fastnet

MUON = {"optimizer": "muon", "muon_lr": 0.02}
PRUNE = {"prune": 0.7}

# fastnet_large's blocks made wider, registered here only: candidates for `best`. Their bf16 training step at
# batch 256 on a 2-core EPYC Zen 4 with AVX512-BF16, relative to fastnet_large's (435-460 ms,
# `step_speed.time_steps`): x1.5, x2.1 (32-128-384-384: x2.4).
WIDER = {"fastnet_w80": ((80, 320, 320), 1.5), "fastnet_w96": ((96, 384, 384), 2.1)}
for _name, (_widths, _) in WIDER.items():
    register(_name, f"fastnet_large widened to 32-{'-'.join(map(str, _widths))} (a choose_best.py candidate)")(
        functools.partial(fastnet, stem=32, widths=_widths))
CPU_COST = {"fastnet_large": 1.0, "fastnet_large_ceil": 1.04, **{name: cost for name, (_, cost) in WIDER.items()}}

# (label, overrides of `best`); each names its network, optimizer and length, so the list means the same
# whatever the recipe now holds. Muon at 26 epochs is what a comparison of SGD and Muon at 26 and 45 epochs on
# an H200 chooses (docs/EXPERIMENTS.md); the wider candidates ask whether pruning's saved steps buy a wider
# network, their epochs keeping the CPU's time near fastnet_large's 26 (26 x 1.0): 18 x 1.5, 13 x 2.1. The
# recipe's last max-pool rounding up (`ceil`) is chosen on one CPU seed: its row confirms it over more seeds.
ALL_CANDIDATES = {  # --candidates picks by these keys
    "unpruned": ("fastnet_large, 26 epochs (the recipe before pruning)",
                 {"model": "fastnet_large", **MUON, "epochs": 26}),
    "pruned": ("fastnet_large, 26 epochs' steps, pruning 0.7",
               {"model": "fastnet_large", **MUON, "epochs": 26, **PRUNE}),
    "ceil": ("fastnet_large_ceil, 26 epochs' steps, pruning 0.7 (the recipe)",
             {"model": "fastnet_large_ceil", **MUON, "epochs": 26, **PRUNE}),
    "w80": ("32-80-320-320, 18 epochs' steps, pruning 0.7", {"model": "fastnet_w80", **MUON, "epochs": 18, **PRUNE}),
    "w96": ("32-96-384-384, 13 epochs' steps, pruning 0.7", {"model": "fastnet_w96", **MUON, "epochs": 13, **PRUNE}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, default=3, help="validation seeds per fitting candidate")
    parser.add_argument("--test-seeds", type=int, default=1)
    parser.add_argument("--max-epochs", type=float, default=28,
                        help="longest run that fits the CPU's hour, in fastnet_large's epochs")
    parser.add_argument("--budget-seconds", type=float, default=340,
                        help="start no validation run after this many seconds (the choice is made on what ran)")
    parser.add_argument("--candidates", default=",".join(ALL_CANDIDATES),
                        help=f"comma-separated, from {', '.join(ALL_CANDIDATES)}")
    args = parser.parse_args()
    unknown = set(args.candidates.split(",")) - set(ALL_CANDIDATES)
    if unknown:
        parser.error(f"unknown candidate(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL_CANDIDATES)}")
    candidates = [ALL_CANDIDATES[key] for key in args.candidates.split(",")]

    def fits(overrides: dict) -> bool:  # in fastnet_large's epochs on the CPU
        return overrides["epochs"] * CPU_COST[overrides["model"]] <= args.max_epochs

    data = load_fashion_mnist()
    print(f"# {describe()}", flush=True)
    scores: dict[str, list[float]] = {label: [] for label, _ in candidates}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        for seed in range(args.seeds):
            for label, overrides in candidates:
                if (seed and not fits(overrides)) or time.perf_counter() - start > args.budget_seconds:
                    continue
                # a folder per run: the runs of one seed share the name s{seed}
                accuracy, seconds = validation_score("best", seed, {**overrides, "device": args.device},
                                                     tempfile.mkdtemp(dir=root), data)
                scores[label].append(accuracy)
                print(f"validation | {label} | seed {seed} | {accuracy:.2%} | {seconds:.1f} s", flush=True)

        print("\n| candidate (validation, 50,000 training images) | fits the CPU hour | seeds | mean | per seed |")
        print("|---|---|---:|---:|---|")
        for label, overrides in candidates:
            runs = scores[label]
            if runs:
                fit = "yes" if fits(overrides) else "no (reference)"
                print(f"| {label} | {fit} | {len(runs)} | {statistics.mean(runs):.2%} | "
                      f"{' / '.join(f'{a:.2%}' for a in runs)} |")

        # compared over the seeds every fitting candidate finished, should the budget cut a round short
        fitting = [(label, overrides) for label, overrides in candidates
                   if scores[label] and fits(overrides)]
        common = min(len(scores[label]) for label, _ in fitting)
        chosen, overrides = max(fitting, key=lambda item: statistics.mean(scores[item[0]][:common]))
        print(f"\nchosen on validation (seeds 0-{common - 1}): {chosen} {overrides}", flush=True)
        for seed in range(args.test_seeds):
            metrics = run_recipe("best", seed, root, data, overrides, args.device)
            print(f"test | {chosen} | seed {seed} | {metrics['accuracy']:.2%} | "
                  f"{metrics['train_seconds']:.1f} s training", flush=True)


if __name__ == "__main__":
    main()
