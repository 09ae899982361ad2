"""How well `fashionlab labels` finds label errors that are known: flip a random 1% of the training labels, find.

    python benchmarks/label_noise.py [--seeds 0 1 2] [--folds 4] [--fraction 0.01] [--recipe fast]
                                     [--out out/label-noise] [--reuse] [--real out/labels/label_issues.csv]

For each seed, a seeded random `fraction` of the 60,000 training labels is moved, in memory, each to a random
other class; K models (the recipe's settings) give every image out-of-fold probabilities against the noisy
labels, and the finder ranks all images. Printed per seed and as mean ± std over the seeds: the precision and
recall among the top `fraction` of the ranking (as many images as were flipped, so the two are equal), and the
same for the set that cleanlab's find_label_issues flags, for the finder's default ranking and for the other
rankings of the same probabilities (ranking again costs nothing; training is the cost).

The data set's own label errors count against precision here: an image whose original label is already wrong
is a true find but not a flipped one. `--real` (the label_issues.csv of `fashionlab labels` on the clean labels)
counts how many of the top ranks that are not flips the clean run flags as well.
Anchor: Müller & Markert (2019) report a precision of 0.84 averaged over 29 data sets.

`--clean-oof OUT/out_of_fold.npz` trains nothing: it ranks the flipped labels with the out-of-fold probabilities
that `fashionlab labels` computed on the clean labels. An image's own label never reaches the model that scores
it, so the flips change only the other images' training labels (1% more noise); the figures it gives are an
approximation for many seeds at no cost, checked against a seed trained on the noisy labels.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fashionlab.data import load_fashion_mnist
from fashionlab.explain.label_issues import (
    flip_labels,
    out_of_fold_probs,
    precision_recall_at,
    rank_label_issues,
)

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

# (name, ranking method, flagged first): the first is what `fashionlab labels` uses
RANKINGS = (
    ("self-confidence (default)", "self_confidence", False),
    ("cleanlab flagged first, self-confidence", "self_confidence", True),
    ("cleanlab flagged first, normalized margin", "normalized_margin", True),
    ("normalized margin alone", "normalized_margin", False),
    ("confidence-weighted entropy alone", "confidence_weighted_entropy", False),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="out/label-noise")
    parser.add_argument("--reuse", action="store_true", help="rank saved out-of-fold probabilities again")
    parser.add_argument("--real", default=None, help="label_issues.csv of `fashionlab labels` on the clean labels")
    parser.add_argument("--clean-oof", default=None, metavar="NPZ",
                        help="train nothing: rank with these out-of-fold probabilities of the clean labels (the "
                             "out_of_fold.npz of `fashionlab labels`), an approximation (see the module docstring)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe(), flush=True)
    data = load_fashion_mnist()
    clean = np.asarray(data.train_labels, dtype=np.int64)
    real = set()
    if args.real:
        with open(args.real, newline="") as fh:
            real = {int(row["index"]) for row in csv.DictReader(fh)}
    results = {name: [] for name, _, _ in RANKINGS}
    flagged_scores, seconds = [], []
    for seed in args.seeds:
        noisy, flipped = flip_labels(clean, args.fraction, seed)
        assert (noisy[flipped] != clean[flipped]).all() and (noisy != clean).sum() == len(flipped)
        saved = Path(args.out) / f"seed-{seed}" / "out_of_fold.npz"
        if args.clean_oof:
            with np.load(args.clean_oof) as npz:
                probs = npz["probs"].astype(np.float32)
        elif args.reuse and saved.is_file():
            probs = np.load(saved)["probs"]
        else:
            start = time.perf_counter()
            oof = out_of_fold_probs(data, noisy, args.folds, args.recipe, seed, saved.parent / "folds", args.threads)
            seconds.append(time.perf_counter() - start)
            probs = oof.probs
            saved.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(saved, probs=probs, folds=oof.folds, flipped=flipped, noisy=noisy)
        k = len(flipped)
        print(f"seed {seed}: {k} labels flipped; out-of-fold accuracy against the noisy labels "
              f"{(probs.argmax(1) == noisy).mean():.4f}", flush=True)
        for name, method, first in RANKINGS:
            issues = rank_label_issues(noisy, probs, method, flagged_first=first)
            p, r = precision_recall_at(issues.ranking, flipped, k)
            results[name].append((p, r))
            extra = ""
            if real and method == "self_confidence":
                misses = [int(i) for i in np.setdiff1d(issues.ranking[:k], flipped)]
                also = sum(i in real for i in misses)
                extra = f"; of its {len(misses)} non-flips, {also} are flagged on the clean labels too"
            print(f"  {name}: top {k} precision {p:.3f}, recall {r:.3f}{extra}")
        issues = rank_label_issues(noisy, probs)
        n_flagged = int(issues.flagged.sum())
        hits = int(np.isin(np.flatnonzero(issues.flagged), flipped).sum())
        flagged_scores.append((hits / max(1, n_flagged), hits / k, n_flagged))
        print(f"  find_label_issues' own set: {n_flagged} flagged, precision {flagged_scores[-1][0]:.3f}, "
              f"recall {flagged_scores[-1][1]:.3f}", flush=True)

    def pm(values) -> str:
        values = np.asarray(values, dtype=float)
        return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"

    print(f"\n{describe()}")
    how = (f"ranked with the clean labels' out-of-fold probabilities ({args.clean_oof})" if args.clean_oof
           else f"{args.recipe}, {args.folds} folds trained on the noisy labels")
    print(f"{how}; {args.fraction:.1%} of the labels flipped, seeds {args.seeds}; mean ± std over the seeds")
    print(f"{'ranking':52s} {'precision@top':>15s} {'recall@top':>15s}")
    for name, _, _ in RANKINGS:
        ps, rs = zip(*results[name])
        print(f"{name:52s} {pm(ps):>15s} {pm(rs):>15s}")
    ps, rs, ns = zip(*flagged_scores)
    print(f"{'find_label_issues flagged set (' + pm(ns).split(' ')[0] + ' images)':52s} {pm(ps):>15s} {pm(rs):>15s}")
    if seconds:
        print(f"finder time per seed ({args.folds} folds, training and scoring): {pm(seconds)} s")


if __name__ == "__main__":
    main()
