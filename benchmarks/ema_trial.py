"""Does an exponential moving average of the weights beat the last weights? (validation split, one recipe)

    python benchmarks/ema_trial.py fast 0.99 --seeds 1

Trains the recipe as tune_recipe.py does (50,000 images, validation on the other 10,000) with the EMA probe
(benchmarks/probes/ema.py: torch.optim.swa_utils keeps an EMA of the parameters after every optimizer step), then
scores the EMA's weights on validation (batch-norm statistics re-estimated for them, the recipe's TTA) beside the
last weights'. A probe, not a feature: no recipe uses EMA (docs/EXPERIMENTS.md: it does not help at these
one-cycle budgets).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from probes.ema import ExponentialAverage
from tune_recipe import validation_config

from fashionlab.data import load_fashion_mnist, make_splits
from fashionlab.evaluation import loss_and_accuracy
from fashionlab.training.batchnorm import recalibrate_batchnorm
from fashionlab.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("decay", type=float)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_fashion_mnist()
    splits = make_splits(data, 10_000, 0)
    for seed in range(args.seeds):
        config = validation_config(args.recipe, seed)
        ema = ExponentialAverage(args.decay)
        with tempfile.TemporaryDirectory() as root:
            run = train(config, root=root, data=data, show_progress=False, hooks=ema)
            last, precision = run.history()[-1]["val_accuracy"], run.metrics()["precision"]
        average, device = ema.average.module, ema.device  # on the run's device, as the splits must be
        recalibrate_batchnorm(average, splits.train.to(device), config.bn_recalibration, config.batch_size,
                              precision, device)
        _, accuracy = loss_and_accuracy(average, splits.val.to(device), config.eval_batch_size, precision, device,
                                        config.tta)
        print(f"{args.recipe} seed {seed}, EMA decay {args.decay}: last weights {last:.4f}, EMA {accuracy:.4f}",
              flush=True)


if __name__ == "__main__":
    main()
