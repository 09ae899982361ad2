"""Score a recipe (with overrides) on the validation split: how recipes are chosen, never on the test set.

    python benchmarks/tune_recipe.py fast epochs=3 lr=0.1 [--seeds 2] [--variant relu]
    python benchmarks/tune_recipe.py best cutmix=0.5 sam_rho=0.05 sam_from=0.7 model='"fastnet_large_ceil-x2"'

Trains on 50,000 images and reports validation accuracy (the recipe's TTA included) and training seconds.
The key=value overrides are run settings (RunConfig's) or probe options (benchmarks/probes/options.py: cutmix,
mixup, sam_rho, sam_from, low_res_size, low_res_epochs, full_data_tail), which become step hooks of the
training loop; model=NAME-xK trains an ensemble of K NAMEs, each member on its own loss. The networks of
probes/architectures.py (resnet18, wrn16_4, vit_p7, fastnet, fastnet_large, fastnet_large_res) may be named.
--variant changes the recipe's network: `relu`, `hardswish` or `silu` put that activation where it has GELU,
`dirac` initialises each convolution (but the first) as the identity on its first channels, as airbench does,
`ceil` makes the last max-pool round up (7x7 -> 4x4: the default 3x3 drops the seventh row and column),
`up32`, `up36`, `up40` upscale each 28x28 image (bilinear) to that size in front of the network: every feature map
grows with it (36: 18x18 after the first pool instead of 14x14), ~(size/28)^2 the FLOPs.
--full-data-tail F keeps every image in the epochs that start in the last F of the steps of a pruned recipe
(InfoBatch's 0.125 otherwise): the probe option full_data_tail=F.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import probes.architectures  # noqa: F401  (registers the set-aside networks, so overrides may name them)
from probes.ensemble import split_ensemble_name
from probes.options import PROBE_OPTIONS, hooks_from, run_settings
from torch import nn

from fashionlab.config import RunConfig
from fashionlab.data import load_fashion_mnist
from fashionlab.evaluation import evaluate_run
from fashionlab.models import create_model, register
from fashionlab.recipes import recipe_settings
from fashionlab.runs import open_run
from fashionlab.training.loop import train


def parse_override(text: str):
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def replace_gelu(model: nn.Module, activation: type[nn.Module]) -> nn.Module:
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.GELU):
                setattr(module, name, activation())
    return model


def dirac_init(model: nn.Module) -> nn.Module:
    for conv in model.modules():
        if isinstance(conv, nn.Conv2d) and conv.in_channels > 1:
            nn.init.dirac_(conv.weight.data[:conv.in_channels])
    return model


def ceil_last_pool(model: nn.Module) -> nn.Module:
    [*_, last] = (m for m in model.modules() if isinstance(m, nn.MaxPool2d))
    last.ceil_mode = True
    return model


def upscaled(size: int):
    return lambda model: nn.Sequential(nn.Upsample(size=(size, size), mode="bilinear", align_corners=False), model)


VARIANTS = {"relu": lambda m: replace_gelu(m, nn.ReLU), "hardswish": lambda m: replace_gelu(m, nn.Hardswish),
            "silu": lambda m: replace_gelu(m, nn.SiLU), "dirac": dirac_init, "ceil": ceil_last_pool,
            **{f"up{size}": upscaled(size) for size in (32, 36, 40)}}


def register_variant(model: str, variant: str) -> str:
    name = f"{model}+{variant}"
    factory = lambda: VARIANTS[variant](create_model(model))  # noqa: E731
    register(name, f"{model} with the {variant} change (tune_recipe.py)")(factory)
    return name


def validation_config(recipe: str, seed: int, overrides: dict | None = None) -> RunConfig:
    """The recipe trained on 50,000 images and scored on the 10,000-image validation split (the test set: one
    image, unread). Probe options among `overrides` are left out: `hooks_from(overrides)` is their hook."""
    return RunConfig.from_dict({**recipe_settings(recipe), "val_size": 10_000, **run_settings(overrides or {}),
                                "seed": seed, "name": f"s{seed}", "test_limit": 1})


def validation_score(recipe: str, seed: int, overrides: dict | None, root: str, data) -> tuple[float, float]:
    """Validation accuracy (the recipe's TTA) and training seconds of one run (its name is s{seed}: one run per
    seed and root). Per-epoch validation inside training runs without TTA: `best`'s 10 views of 10,000 images
    cost ~50 s on a 2-core EPYC Zen 4 with AVX512-BF16, about half an epoch's steps, after each of its ~60 pruned
    epochs. The recipe's TTA scores the finished network once. Probe options among `overrides` train as hooks."""
    tta = validation_config(recipe, seed, overrides).tta
    config = validation_config(recipe, seed, {**(overrides or {}), "tta": "none"})
    hooks = hooks_from(overrides or {})
    train(config, root=root, data=data, show_progress=False, hooks=hooks)
    accuracy = evaluate_run(config.name, "val", root, config.data_dir, config.device, tta)["accuracy"]
    return accuracy, open_run(config.name, root).history()[-1]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*",
                        help=f"key=value (JSON values): run settings, or probe options ({', '.join(PROBE_OPTIONS)})")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="change the recipe's network (see above)")
    parser.add_argument("--full-data-tail", type=float,
                        help="fraction of the steps left unpruned at the end (the probe option full_data_tail)")
    parser.add_argument("--root", help="keep the runs here (e.g. to distil from one later); a temporary folder "
                                       "otherwise")
    args = parser.parse_args()
    overrides = dict(parse_override(o) for o in args.overrides)
    if args.full_data_tail is not None:
        overrides["full_data_tail"] = args.full_data_tail
    if args.variant:
        model = overrides.get("model", recipe_settings(args.recipe)["model"])
        # an ensemble's members take the variant: NAME+relu-xK, so the name still says NAME-xK (EnsembleLoss)
        base, k = split_ensemble_name(model) or (model, 0)
        overrides["model"] = register_variant(base, args.variant) + (f"-x{k}" if k else "")
    data = load_fashion_mnist()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root or scratch
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            accuracy, seconds = validation_score(args.recipe, seed, overrides, root, data)
            print(f"{args.recipe} {args.overrides} {args.variant or ''} seed {seed}: "
                  f"val_accuracy {accuracy:.4f} train_seconds {seconds:.1f}", flush=True)


if __name__ == "__main__":
    main()
