"""The original study's experiment plan: every experiment of the paper (its Table 1 rows, optimizer comparison,
overfitting study, augmentation and early stopping) and its presets, as plain settings for `RunConfig`.

An experiment that appears in several comparisons (the ANN is Table 1's first row, the optimizer comparison's Adam
and the overfitting study's baseline) is one run, trained once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError
from ..recipes import recipe_settings

# The paper's "random transforms" (its Fig 4a): small rotations, shifts and zooms, and flips.
PAPER_AUGMENT = {"affine": {"degrees": 10, "scale": 0.1, "translate": 0.1}, "flip": {}}

# Optimizer comparison: each optimizer at its usual default learning rate, plain (no momentum)
# for SGD and RMSprop as in Keras' defaults; same model, data and epochs for all four.
OPTIMIZERS = {"adam": ("Adam", {}), "rmsprop": ("RMSprop", {"lr": 1e-3, "momentum": 0.0}),
              "sgd": ("SGD", {"lr": 1e-2, "momentum": 0.0}), "adagrad": ("Adagrad", {"lr": 1e-2})}

GROUPS = {  # group -> what the report calls it
    "table1": "Table 1 models",
    "early_stopping": "Early stopping",
    "optimizers": "Optimizer comparison",
    "overfitting": "Overfitting study",
    "fine_tuning": "Fine-tuning",
    "beyond": "Beyond the paper",
}


@dataclass
class Experiment:
    key: str                      # run directory name (without the seed suffix); one key = one run
    label: str                    # how the report names it (Table 1's row name where there is one)
    group: str                    # a key of GROUPS
    settings: dict = field(default_factory=dict)


def plan(preset: dict) -> list[Experiment]:
    """The paper's experiments for one preset (see PRESETS for the keys it reads)."""
    e, ann_base, cnn_base = preset["epochs"], preset.get("ann", {}), preset.get("cnn", {})
    ann = lambda model="ann", **kw: {**ann_base, "model": model, "epochs": e["ann"], **kw}
    aug = {"augment": PAPER_AUGMENT}
    exps = [
        Experiment("ann", "ANN", "table1", ann()),
        Experiment("ann_bn", "ANN (modified)", "table1", ann("ann_bn")),
        Experiment("ann_bn_aug", "ANN (modified+data aug)", "table1", ann("ann_bn", epochs=e["ann_aug"], **aug)),
        Experiment("cnn", "CNN", "table1", {**cnn_base, "model": "cnn", "epochs": e["cnn"]}),
        Experiment("cnn_aug", "CNN (data aug)", "table1", {**cnn_base, "model": "cnn", "epochs": e["cnn_aug"], **aug}),
        Experiment("ann_early_stop", "ANN (early stopping)", "early_stopping",
                   ann(epochs=e["early_stop"], patience=preset["patience"])),
    ]
    for name, (label, extra) in OPTIMIZERS.items():
        key = "ann" if name == "adam" else f"ann_{name}"  # Adam at lr 1e-3 is the ANN row itself
        exps.append(Experiment(key, label, "optimizers", ann(optimizer=name, **extra)))
    for key, label in (("ann", "ANN"), ("ann_dropout", "ANN + dropout"), ("ann_batchnorm", "ANN + batch norm"),
                       ("ann_bn", "ANN (modified)")):
        exps.append(Experiment(key, label, "overfitting", ann(key)))
    # the Evaluation's fine-tuning: the modified ANN with augmentation, started from the trained modified ANN
    exps.append(Experiment("ann_bn_aug_tuned", "ANN (modified+data aug), fine-tuned", "fine_tuning",
                           ann("ann_bn", epochs=e["tuned"], init_from="@ann_bn", **aug)))
    return exps + beyond_the_paper(preset)


# The architectures train with the `fast` recipe's settings as they were with SGD, fixed here so
# that tuning the recipe does not move them. Not Muon: it holds filters at a fixed norm, which assumes a batch
# norm after each convolution, and a residual branch adds its convolution's output unnormalised.
ARCHITECTURE_SETTINGS = {
    "batch_size": 128, "optimizer": "sgd", "lr": 0.14, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
    "scheduler": "onecycle", "label_smoothing": 0.1, "augment": {"flip": {}}, "tta": "flip",
}


def beyond_the_paper(preset: dict) -> list[Experiment]:
    """Recipes and the Evaluation section's architectures, each keeping the validation split for its curves."""
    keep_val = {"val_size": 10_000, **preset.get("beyond", {})}
    exps = [Experiment(f"recipe_{name}", f"recipe {name}", "beyond", {**recipe_settings(name), **keep_val})
            for name in preset["recipes"]]
    if preset.get("architectures") is None:
        return exps
    arch = {**ARCHITECTURE_SETTINGS, **keep_val, **preset.get("architectures", {})}
    # a transformer does not train with the conv nets' SGD at lr 0.2 (20% after 2 epochs): AdamW, as ViTs use
    adamw = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "nesterov": False}
    exps += [Experiment(model, model, "beyond", {**arch, "model": model, **(adamw if model == "vit" else {})})
             for model in ("resnet20", "googlenet", "vit")]
    return exps


# The paper's MLPs train in fp32, as the paper's did. `auto` precision times a few steps of each and keeps the
# faster, but for these small MLPs the two are within ~20% and the probe's pick flipped between studies on the
# same machine, moving Table 1's ANN rows by ~0.2 point (docs/REPORT.md); the CNNs' bf16 gain is large and stable.
# One thread each: on a CPU they train side by side, as many at once as there are cores (study/side_by_side.py).
PAPER_ANN = {"precision": "fp32", "threads": 1}

# The CNN rows of a preset that trains them for about an epoch: the `fast` recipe's optimizer (Muon on the filters,
# SGD with Nesterov momentum for the rest) with a one-cycle schedule. Chosen on the validation split, one epoch of the
# paper's CNN on 50,000 images: Adam one-cycle peaking at 2e-3 (batch 128) 87.30%, at 4e-3 (batch 64) 89.21%, this
# 91.31% (docs/EXPERIMENTS.md). Muon fits this network: a batch norm follows each convolution's ReLU, so the
# filters' scale does not matter, which is what Muon's fixed-norm updates assume.
SHORT_CNN = {"optimizer": "muon", "lr": 0.1, "muon_lr": 0.03, "momentum": 0.9, "nesterov": True,
             "weight_decay": 5e-4, "scheduler": "onecycle", "warmup": 0.15}

PRESETS = {
    # paper: the paper's own epoch counts (30/30/60/30/60) on all 50,000 training images.
    "paper": {"epochs": {"ann": 30, "ann_aug": 60, "cnn": 30, "cnn_aug": 60, "early_stop": 60, "tuned": 10},
              "patience": 5, "ann": PAPER_ANN, "recipes": ("fast", "standard", "mlp", "best"),
              "architectures": {"epochs": 15},
              "about": "the paper's epoch counts (30/30/60/30/60) on all 50,000 training images"},
    # quick (the default): every ANN experiment at the paper's own epochs (an epoch costs 1-3 s), the CNN rows on
    # all 50,000 images for the time left, with SHORT_CNN's optimizer and schedule; nothing beyond the paper.
    # `minutes`: the study's runs take this long by default on this CPU class, the CNN rows' epochs (in the ratio
    # 1.2 : 1.4) sized to fit; with setting up a fresh clone (~1.5 min) and writing the report (~1 min), `make study`
    # ends within 20 minutes on a 2-core CPU with bf16 products (or a GPU) and within 30 without (AVX2 only), where
    # a CNN epoch costs ~2 and ~6 minutes. `--budget 45m` gives the study another time.
    "quick": {"epochs": {"ann": 30, "ann_aug": 60, "cnn": 1.2, "cnn_aug": 1.4, "early_stop": 60, "tuned": 10},
              "patience": 5, "ann": PAPER_ANN, "cnn": SHORT_CNN, "recipes": (), "architectures": None,
              "scaled": ("cnn", "cnn_aug"), "minutes": {"bf16": 17, "fp32": 27},
              "about": "the ANN experiments at the paper's epochs; the CNN rows for the time left (27 minutes in "
                       "all without bf16 products, 17 with them: 1.25 and 1.46 epochs on a 2-core AVX2 CPU, not "
                       "30 and 60), trained with Muon and a one-cycle learning rate (not Adam at a constant 1e-3); "
                       "nothing beyond the paper (no recipes, no ResNet, GoogLeNet or ViT)"},
    # test: NOT for results - a tiny study (a few hundred images, 1 epoch) for the test suite.
    "test": {"epochs": {"ann": 1, "ann_aug": 1, "cnn": 1, "cnn_aug": 1, "early_stop": 3, "tuned": 1},
             "patience": 1, "hidden": True, "recipes": ("fast",), "scaled": ("cnn", "cnn_aug"),
             "beyond": {"train_limit": 300, "test_limit": 300, "val_size": 300, "batch_size": 50, "epochs": 1,
                        "threads": 2},
             "architectures": {},
             "ann": {"train_limit": 500, "test_limit": 300, "val_size": 300, "batch_size": 50, "precision": "fp32",
                     "threads": 1},
             "cnn": {"train_limit": 100, "test_limit": 300, "val_size": 300, "batch_size": 50, "precision": "fp32",
                     "threads": 2},
             "about": "a tiny study for the test suite; its numbers mean nothing"},
}


def experiments(preset: str) -> list[Experiment]:
    if preset not in PRESETS:
        shown = [p for p in PRESETS if not PRESETS[p].get("hidden")]
        raise ConfigError(f"unknown preset '{preset}'; choose from {', '.join(shown)}")
    return plan(PRESETS[preset])


def experiment_config(exp: Experiment, seed: int, data_dir=None, root=None) -> RunConfig:
    """The run's settings; `init_from = "@KEY"` names another experiment's run of the same seed under `root`."""
    settings = {**exp.settings, "seed": seed, "name": f"{exp.key}-s{seed}", "data_dir": data_dir}
    source = settings.get("init_from")
    if isinstance(source, str) and source.startswith("@"):
        settings["init_from"] = str(Path(root or ".") / f"{source[1:]}-s{seed}")
    return RunConfig.from_dict(settings)


def preset_differences(a: str = "quick", b: str = "paper", epochs: dict | None = None) -> list[list[str]]:
    """Rows [run, its settings in preset a, the same settings in b] for every run whose config differs; `epochs`
    {key: epochs} gives the epochs a's runs were trained for where a budget sized them."""
    rows = []
    plan_b = {(x.key, x.group): x for x in experiments(b)}
    seen = set()
    for x in experiments(a):
        if x.key in seen:
            continue
        seen.add(x.key)
        sa, sb = experiment_config(x, 0).to_dict(), experiment_config(plan_b[(x.key, x.group)], 0).to_dict()
        if epochs and x.key in epochs:
            sa["epochs"] = epochs[x.key]
        keys = [k for k in sa if sa[k] != sb[k] and (_applies(k, sa) or _applies(k, sb))]
        if keys:
            show = lambda s, keys=keys: ", ".join(f"{k} {_shown(k, s)}" for k in keys)
            rows.append([f"{x.key} ({x.label})", show(sa), show(sb)])
    return rows


def _applies(key: str, settings: dict) -> bool:
    """Whether a setting does anything in these settings (Adam has no Nesterov, a constant rate no warm-up)."""
    if key == "muon_lr":
        return settings["optimizer"] == "muon"
    if key in ("momentum", "nesterov"):
        return settings["optimizer"] in ("sgd", "muon", "rmsprop")
    if key == "warmup":
        return settings["scheduler"].startswith("onecycle")
    return True


def _shown(key: str, settings: dict) -> str:
    if not _applies(key, settings):
        return "-"
    if key in ("train_limit", "test_limit") and not settings[key]:
        return "all"
    return str(settings[key])


