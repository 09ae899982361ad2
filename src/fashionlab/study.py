"""The seed report's experiment plan, its presets, and the runner that reproduces it.

Every experiment is an ordinary run directory under OUT/runs, so a study can be inspected, resumed and
re-used: a finished run with the planned config is kept, an unfinished one resumes from its checkpoint.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import RunConfig
from .data import load_fashion_mnist
from .errors import ConfigError
from .runs import Run, open_run
from .tables import duration, format_table

# The seed report's Table 1, for comparison beside ours.
SEED_TABLE1 = {
    "ANN": ("4.5 minutes", 0.8843, 0.891, 0.890, 0.888, 30),
    "ANN (modified)": ("5 minutes", 0.8994, 0.901, 0.901, 0.901, 30),
    "ANN (modified+data aug)": ("14 minutes", 0.8705, 0.872, 0.871, 0.870, 60),
    "CNN": ("9 minutes", 0.9239, 0.926, 0.926, 0.926, 30),
    "CNN (data aug)": ("20 minutes", 0.9142, 0.917, 0.916, 0.916, 60),
}

# The seed's "random transforms" (its Fig 4a): small rotations, shifts and zooms, and flips.
SEED_AUGMENT = {"affine": {"degrees": 10, "scale": 0.1, "translate": 0.1}, "flip": {}}


@dataclass
class Experiment:
    key: str                      # run directory name (without the seed suffix)
    label: str                    # how the report names it (Table 1's row name where there is one)
    group: str                    # table1 | optimizers | overfitting | early_stopping
    settings: dict = field(default_factory=dict)


def plan(epochs: dict) -> list[Experiment]:
    """The seed's experiments; `epochs` maps "ann", "ann_aug", "cnn", "cnn_aug", "compare" to counts."""
    return [
        Experiment("ann", "ANN", "table1", {"model": "ann", "epochs": epochs["ann"]}),
        Experiment("ann_bn", "ANN (modified)", "table1", {"model": "ann_bn", "epochs": epochs["ann"]}),
        Experiment("ann_bn_aug", "ANN (modified+data aug)", "table1",
                   {"model": "ann_bn", "epochs": epochs["ann_aug"], "augment": SEED_AUGMENT}),
        Experiment("cnn", "CNN", "table1", {"model": "cnn", "epochs": epochs["cnn"]}),
        Experiment("cnn_aug", "CNN (data aug)", "table1",
                   {"model": "cnn", "epochs": epochs["cnn_aug"], "augment": SEED_AUGMENT}),
    ]


PRESETS = {
    # quick: every experiment, on a 2-core CPU in minutes; the CNN trains for fewer epochs.
    "quick": {"epochs": {"ann": 10, "ann_aug": 10, "cnn": 1, "cnn_aug": 1, "compare": 10},
              "settings": {}},
    # paper: the seed's own epoch counts (30/30/60/30/60).
    "paper": {"epochs": {"ann": 30, "ann_aug": 60, "cnn": 30, "cnn_aug": 60, "compare": 30},
              "settings": {}},
}


def experiments(preset: str) -> list[Experiment]:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; choose from {', '.join(PRESETS)}")
    return plan(PRESETS[preset]["epochs"])


def run_experiment(exp: Experiment, seed: int, preset: str, root: Path, data, data_dir=None,
                   show_progress=None) -> Run:
    """Train one experiment unless a finished run with the same config exists; resume an unfinished one."""
    from .training.loop import train

    config = RunConfig.from_dict({**PRESETS[preset]["settings"], **exp.settings, "seed": seed,
                                  "name": f"{exp.key}-s{seed}", "data_dir": data_dir})
    try:
        existing = open_run(config.name, root)
    except Exception:
        existing = None
    if existing is not None and existing.config().to_dict() == config.to_dict():
        if existing.finished:
            print(f"[study] {config.name}: finished earlier, reused", file=sys.stderr)
            return existing
        print(f"[study] {config.name}: resuming", file=sys.stderr)
        return train(config, root=root, resume=existing.path, data=data, show_progress=show_progress)
    print(f"[study] {config.name}: training {exp.label}", file=sys.stderr)
    return train(config, root=root, overwrite=existing is not None, data=data, show_progress=show_progress)


def mean_std(values: list[float], fmt) -> str:
    """"mean" for one value, "mean ± sample std" for several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return fmt(mean)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{fmt(mean)} ± {fmt(std)}"


def table1(rows: list[tuple[str, list[dict]]]) -> str:
    """The seed's Table 1 for our runs (mean ± std over seeds), with the seed's figures beside."""
    out = []
    for label, metrics in rows:
        stat = lambda key, fmt, metrics=metrics: mean_std([m[key] for m in metrics], fmt)
        seed = SEED_TABLE1.get(label)
        out.append([label, duration(sum(m["train_seconds"] for m in metrics) / len(metrics)),
                    stat("accuracy", lambda v: f"{v:.2%}"), stat("precision_mean", lambda v: f"{v:.3f}"),
                    stat("recall_mean", lambda v: f"{v:.3f}"), stat("f1_mean", lambda v: f"{v:.3f}"),
                    metrics[0]["epochs"] if len({m["epochs"] for m in metrics}) == 1 else "varies",
                    f"{seed[1]:.2%} / {seed[4]:.3f} / {seed[0]}" if seed else "-"])
    return format_table(["Model", "Training time", "Accuracy", "Precision (mean)", "Recall (mean)",
                         "F1 Score (mean)", "Epochs", "Seed: accuracy / F1 / time"], out, "lrrrrrrl")


def run_study(preset: str = "quick", out: str | Path = "out/study", seeds: int = 1, data_dir=None,
              show_progress=None) -> str:
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    exps = experiments(preset)
    out = Path(out)
    root = out / "runs"
    data = load_fashion_mnist(data_dir)
    results = []
    for exp in exps:
        runs = [run_experiment(exp, seed, preset, root, data, data_dir, show_progress) for seed in range(seeds)]
        results.append((exp, runs))
    text = table1([(exp.label, [r.metrics() for r in runs]) for exp, runs in results if exp.group == "table1"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.md").write_text(text + "\n")
    print("Table 1: Key metrics after training (test set)\n" + text)
    return text
