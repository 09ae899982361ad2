"""The study: its plan, presets, the exact train command of each run, and resume of a killed study."""

import shlex

import pytest

from fashionlab.cli import build_parser, config_from_args, main
from fashionlab.study.plan import Experiment, experiment_config, experiments, preset_differences
from fashionlab.study.runner import run_experiment
from fashionlab.training.loop import Interrupted


def test_plan_has_every_paper_experiment_and_trains_shared_runs_once():
    exps = experiments("quick")
    groups = {g: [e.label for e in exps if e.group == g] for g in ("table1", "optimizers", "overfitting")}
    assert groups["table1"] == ["ANN", "ANN (modified)", "ANN (modified+data aug)", "CNN", "CNN (data aug)"]
    assert groups["optimizers"] == ["Adam", "RMSprop", "SGD", "Adagrad"]
    assert groups["overfitting"] == ["ANN", "ANN + dropout", "ANN + batch norm", "ANN (modified)"]
    early = [e for e in exps if e.group == "early_stopping"]
    assert len(early) == 1 and early[0].settings["patience"] > 0
    # one key is one run: the same key must always mean the same config
    by_key = {}
    for e in exps:
        config = experiment_config(e, seed=0).to_dict()
        assert by_key.setdefault(e.key, config) == config, e.key
    assert len([k for k in by_key if not k.startswith(("recipe_", "resnet", "googlenet", "vit"))]) == 12
    assert [e.label for e in exps if e.group == "beyond"] == []  # the quick study spends its time on the paper's
    paper_plan = experiments("paper")
    assert {e.label for e in paper_plan if e.group == "beyond"} >= {"recipe standard", "recipe best", "resnet20"}
    assert all(e.settings["val_size"] == 10_000 for e in paper_plan if e.group == "beyond")  # curves need validation
    optimizers = {e.label: e.settings["optimizer"] for e in paper_plan if e.group == "beyond"}
    # the recipe's Muon assumes a batch norm after every convolution: the architectures keep SGD (ViT AdamW)
    assert optimizers == {"recipe fast": "muon", "recipe standard": "muon", "recipe mlp": "adamw",
                          "recipe best": "muon", "resnet20": "sgd", "googlenet": "sgd", "vit": "adamw"}
    for plan in (exps, paper_plan):  # the ANN experiments run at the paper's epochs in both
        epochs = {e.key: e.settings["epochs"] for e in plan}
        assert [epochs[k] for k in ("ann", "ann_bn", "ann_bn_aug", "ann_sgd", "ann_early_stop")] == [30, 30, 60, 30, 60]
    assert {e.key: e.settings["epochs"] for e in paper_plan}["cnn_aug"] == 60


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_the_paper_mlps_train_in_fp32_and_the_rest_choose(preset):
    """`auto`'s timing probe flipped between fp32 and bf16 for the MLPs from one study to the next."""
    precision = {e.key: experiment_config(e, seed=0).precision for e in experiments(preset)}
    assert all(precision[k] == "fp32" for k in precision if k.startswith("ann")), precision
    assert precision["cnn"] == "auto"


def test_quick_preset_differences_are_listed():
    rows = preset_differences("quick", "paper")
    # settings that do nothing in a config (Adam's Nesterov, a constant rate's warm-up) show as '-'
    short = ("optimizer muon, lr 0.1, weight_decay 0.0005, nesterov True, muon_lr 0.03, scheduler onecycle, "
             "warmup 0.15",
             "optimizer adam, lr 0.001, weight_decay 0.0, nesterov -, muon_lr -, scheduler none, warmup -")
    assert rows == [["cnn (CNN)", "epochs 1.2, " + short[0], "epochs 30, " + short[1]],
                    ["cnn_aug (CNN (data aug))", "epochs 1.4, " + short[0], "epochs 60, " + short[1]]]


def test_train_command_rebuilds_the_same_config():
    from fashionlab.config import train_command

    for exp in experiments("quick") + experiments("test"):
        config = experiment_config(exp, seed=1)
        args = build_parser().parse_args(shlex.split(train_command(config))[1:])
        assert config_from_args(args).to_dict() == config.to_dict(), exp.key


def test_unknown_preset_and_bad_seeds_are_one_line(tmp_path, capsys):
    assert main(["study", "--preset", "huge", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'huge'; choose from paper, quick" in err and err.count("\n") == 1
    assert main(["study", "--preset", "test", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_interrupted_experiment_resumes_from_its_checkpoint(tmp_path, fmnist, ctrl_c_at, capsys):
    exp = Experiment("tiny", "tiny", "table1", {"model": "ann", "epochs": 2, "train_limit": 400, "batch_size": 50,
                                                "test_limit": 200, "precision": "fp32"})
    ctrl_c_at(1, 0)  # as the second epoch begins
    with pytest.raises(Interrupted):
        run_experiment(exp, 0, tmp_path, fmnist, show_progress=False)
    run = run_experiment(exp, 0, tmp_path, fmnist, show_progress=False)
    assert "tiny-s0: resuming from its checkpoint" in capsys.readouterr().err
    assert run.finished and [r["epoch"] for r in run.history()] == [1, 2]
    mtime = run.metrics_path.stat().st_mtime_ns
    assert run_experiment(exp, 0, tmp_path, fmnist, show_progress=False).path == run.path
    assert "tiny-s0: finished earlier, reused" in capsys.readouterr().err
    assert run.metrics_path.stat().st_mtime_ns == mtime


def test_table1_reports_mean_and_std_over_seeds():
    from fashionlab.study.table1 import table1_rows

    run = {"accuracy": 0.87, "precision_mean": 0.8, "recall_mean": 0.8, "f1_mean": 0.8, "train_seconds": 10,
           "epochs": 30}
    row = table1_rows([("ANN", [run, {**run, "accuracy": 0.89, "train_seconds": 20}])])[0]
    assert row[:4] == ["ANN", "15.0 s", "88.00% ± 1.41%", "0.800 ± 0.000"]
    assert row[6:] == ["30", "88.43%", "0.888", "4.5 minutes (30)"]


def test_a_study_budget_too_small_says_the_least_that_works_as_a_duration():
    from fashionlab.config import RunConfig
    from fashionlab.errors import ConfigError
    from fashionlab.study.estimate import Estimates, fit_to_budget

    configs = {key: RunConfig(epochs=1) for key in ("ann", "cnn", "cnn_aug")}
    estimates = Estimates(seconds={"ann": 600.0, "cnn": 120.0, "cnn_aug": 180.0})
    with pytest.raises(ConfigError, match="a budget of 5m is too small here: the experiments other than the CNN rows "
                                          "alone take about 10m on this CPU; give at least 11m"):
        fit_to_budget(configs, ("cnn", "cnn_aug"), estimates, 300, seeds=1)
    # 97% of 30 min less the ANN's 10 min leaves 3.82 times the CNN rows' 5 min
    assert fit_to_budget(configs, ("cnn", "cnn_aug"), estimates, 1800, seeds=1) == {"cnn": 3.82, "cnn_aug": 3.82}


@pytest.mark.parametrize("has_bf16, minutes", [(False, 27), (True, 17)])
def test_the_quick_study_takes_its_own_time_for_the_cpu_class(monkeypatch, has_bf16, minutes):
    from fashionlab.study import runner

    monkeypatch.setattr(runner, "bf16_supported", lambda device: has_bf16)
    assert runner.default_budget("quick") == 60 * minutes
    assert runner.default_budget("paper") is None and runner.default_budget("test") is None  # their own epochs


def test_a_budgeted_plan_is_kept_so_that_the_same_study_resumes_its_runs(tmp_path):
    from fashionlab.study.runner import _budget_epochs

    saved = tmp_path / "budget.json"
    fits = iter([{"cnn": 1.1, "cnn_aug": 1.3}, {"cnn": 1.2, "cnn_aug": 1.4}, {"cnn": 2.0, "cnn_aug": 2.3},
                 {"cnn": 0.5, "cnn_aug": 0.6}])
    first = _budget_epochs(saved, 1620, 1, lambda: next(fits))
    assert first == {"cnn": 1.1, "cnn_aug": 1.3}
    assert _budget_epochs(saved, 1620, 1, lambda: next(fits)) == first  # the machine's speed moved: same plan
    assert _budget_epochs(saved, 1620, 2, lambda: next(fits)) == {"cnn": 1.2, "cnn_aug": 1.4}  # other seeds: refit
    assert _budget_epochs(saved, 3600, 2, lambda: next(fits)) == {"cnn": 2.0, "cnn_aug": 2.3}  # other budget
    saved.write_text("{not json")
    assert _budget_epochs(saved, 3600, 2, lambda: next(fits)) == {"cnn": 0.5, "cnn_aug": 0.6}  # unreadable: refit


def test_the_differences_from_the_paper_show_the_epochs_the_runs_trained():
    rows = {row[0]: row for row in preset_differences("quick", "paper", {"cnn": 1.09})}
    assert "epochs 1.09" in rows["cnn (CNN)"][1] and "epochs 30" in rows["cnn (CNN)"][2]
    assert "epochs 1.4" in rows["cnn_aug (CNN (data aug))"][1]  # no size given: the preset's own
