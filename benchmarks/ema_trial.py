"""Does an exponential moving average of the weights beat the last weights? (validation split, one recipe)

    python benchmarks/ema_trial.py fast 0.99 --seeds 1

Trains the recipe as tune_recipe.py does (50,000 images, validation on the other 10,000) while
torch.optim.swa_utils keeps an EMA of the parameters after every optimizer step, then scores the EMA's
weights on validation (batch-norm statistics re-estimated for them, the recipe's TTA) beside the last
weights'. A probe, not a feature: the training loop is patched from outside, and no recipe uses EMA
(docs/BENCHMARKS.md: it did not help at these one-cycle budgets).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tune_recipe import validation_config

from fashionlab.data import load_fashion_mnist, make_splits
from fashionlab.evaluation import loss_and_accuracy
from fashionlab.training import loop
from fashionlab.training.batchnorm import recalibrate_batchnorm


def with_ema(decay: float) -> dict:
    """Patch the loop so the next run keeps an EMA of its model; returns where to find it afterwards."""
    held = {}
    prepare, create_optimizer = loop.prepare_model, loop.create_optimizer

    def prepare_model(model, device):
        held["model"] = prepare(model, device)
        held["ema"] = AveragedModel(held["model"], multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
        return held["model"]

    def optimizer_with_ema(params, config):
        optimizer = create_optimizer(params, config)
        optimizer.register_step_post_hook(lambda *_: held["ema"].update_parameters(held["model"]))
        return optimizer

    loop.prepare_model, loop.create_optimizer = prepare_model, optimizer_with_ema
    return held


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
    held = with_ema(args.decay)
    for seed in range(args.seeds):
        config = validation_config(args.recipe, seed)
        with tempfile.TemporaryDirectory() as root:
            run = loop.train(config, root=root, data=data, show_progress=False)
            last, precision = run.history()[-1]["val_accuracy"], run.metrics()["precision"]
        ema, cpu = held["ema"].module, torch.device("cpu")
        recalibrate_batchnorm(ema, splits.train, config.bn_recalibration, config.batch_size, precision, cpu)
        _, accuracy = loss_and_accuracy(ema, splits.val, config.eval_batch_size, precision, cpu, config.tta)
        print(f"{args.recipe} seed {seed}, EMA decay {args.decay}: last weights {last:.4f}, EMA {accuracy:.4f}",
              flush=True)


if __name__ == "__main__":
    main()
