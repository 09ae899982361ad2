"""Score a recipe (with overrides) on the validation split: how recipes were chosen, never on the test set.

    python benchmarks/tune_recipe.py fast epochs=3 lr=0.1 [--seeds 2]

Trains on 50,000 images and reports validation accuracy (the recipe's TTA included) and training seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from fashionlab.config import RunConfig
from fashionlab.data import load_fashion_mnist
from fashionlab.recipes import recipe_settings
from fashionlab.runs import open_run
from fashionlab.training.loop import train


def parse_override(text: str):
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="key=value (JSON values)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    overrides = dict(parse_override(o) for o in args.overrides)
    data = load_fashion_mnist()
    with tempfile.TemporaryDirectory() as root:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            settings = {**recipe_settings(args.recipe), "val_size": 10_000, **overrides, "seed": seed,
                        "name": f"s{seed}", "test_limit": 1}
            run = train(RunConfig.from_dict(settings), root=root, data=data, show_progress=False)
            last = open_run(run.path).history()[-1]
            print(f"{args.recipe} {args.overrides} seed {seed}: val_accuracy {last['val_accuracy']:.4f} "
                  f"train_seconds {last['seconds']:.1f}", flush=True)


if __name__ == "__main__":
    main()
