"""Real (small) training runs: results, exact resume, early stopping, divergence, fine-tuning."""

import json

import pytest
import torch

from fashionlab.errors import ConfigError, TrainingDiverged
from fashionlab.runs import open_run
from fashionlab.training import loop, precision
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.early_stopping import EarlyStopping
from fashionlab.training.loop import Interrupted, train


def weights(run):
    return load_checkpoint(run.model_path)["model"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_short_real_run_writes_a_finished_run(tmp_path, fmnist, tiny_config):
    run = train(tiny_config(), root=tmp_path, data=fmnist, show_progress=False)
    assert run.finished
    metrics = json.loads(run.metrics_path.read_text())
    assert metrics["accuracy"] > 0.70  # 2 epochs on 2,000 images; chance is 0.10
    assert metrics["n"] == 1000 and len(metrics["per_class"]) == 10
    assert sum(map(sum, metrics["confusion_matrix"])) == 1000
    assert metrics["epochs"] == 2 and metrics["train_seconds"] > 0
    history = run.history()
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "seconds"} <= history[0].keys()
    assert json.loads(run.config_path.read_text())["model"] == "ann"
    # checkpoints load with weights_only=True (load_checkpoint uses it)
    assert load_checkpoint(run.last_checkpoint)["progress"]["epoch"] == 2


@pytest.mark.parametrize("settings", [
    dict(model="ann_bn", augment="flip,crop"),
    # convolutions and Muon: on one host (torch 2.11, a 16-core Xeon) such runs differed while the MLP's
    # matched, which is what made its resume test fail there
    dict(model="fastnet_small", optimizer="muon", lr=0.05, train_limit=600, test_limit=200, val_size=200),
], ids=["mlp", "conv-muon"])
def test_same_seed_same_numbers(tmp_path, fmnist, tiny_config, settings):
    a = train(tiny_config(name="a", **settings), root=tmp_path, data=fmnist, show_progress=False)
    b = train(tiny_config(name="b", **settings), root=tmp_path, data=fmnist, show_progress=False)
    assert same_weights(weights(a), weights(b))
    assert a.metrics()["accuracy"] == b.metrics()["accuracy"]


@pytest.mark.parametrize("epochs, stop_epoch, stop_step", [(3, 0, 7), (3, 1, 0), (2.5, 2, 3)])
def test_resume_is_exact(tmp_path, fmnist, tiny_config, ctrl_c_at, epochs, stop_epoch, stop_step):
    """A run interrupted by Ctrl-C (mid-epoch, at an epoch's start, in a fractional last epoch) and resumed
    ends with identical weights."""
    settings = dict(epochs=epochs, model="ann_bn", augment="affine,erase", scheduler="onecycle", optimizer="adamw")
    straight = train(tiny_config(name="straight", **settings), root=tmp_path, data=fmnist, show_progress=False)

    ctrl_c_at(stop_epoch, stop_step)
    with pytest.raises(Interrupted, match="--resume"):
        train(tiny_config(name="broken", **settings), root=tmp_path, data=fmnist, show_progress=False)
    broken = open_run("broken", tmp_path)
    assert broken.state == "interrupted" and not broken.finished and not broken.metrics_path.exists()
    resumed = train(None, root=tmp_path, resume=broken.path, data=fmnist, show_progress=False)
    assert same_weights(weights(straight), weights(resumed))
    without_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert without_time(resumed.history()) == without_time(straight.history())


def test_fractional_epochs_end_part_way_through_the_last_epoch(tmp_path, fmnist, tiny_config, monkeypatch):
    """epochs=2.5 on 20 batches an epoch: 50 steps (2 whole epochs and the first 10 batches of a third), and the
    one-cycle schedule spans exactly those 50 steps."""
    steps = []
    real = loop.derive_seed
    monkeypatch.setattr(loop, "derive_seed", lambda seed, epoch, step: steps.append((epoch, step)) or
                        real(seed, epoch, step))
    run = train(tiny_config(epochs=2.5, scheduler="onecycle", optimizer="sgd", lr=0.1), root=tmp_path, data=fmnist,
                show_progress=False)
    assert len(steps) == 50 and steps[-1] == (2, 9)
    assert [row["epoch"] for row in run.history()] == [1, 2, 3]
    metrics = run.metrics()
    assert metrics["epochs"] == 2.5 and not metrics["stopped_early"]
    scheduler = load_checkpoint(run.last_checkpoint)["scheduler"]
    assert scheduler["total_steps"] == 50 and scheduler["last_epoch"] == 50
    # the report's per-epoch figures draw the last, partial epoch where it ended
    from fashionlab.report.figures import _series
    from fashionlab.report.style import Entry
    assert _series(Entry("tiny", [run]), "val_loss")[0] == [1, 2, 2.5]


def test_early_stopping_counts_patience():
    stopper = EarlyStopping(patience=2)
    assert stopper.update(1.0, 1) and not stopper.should_stop
    assert not stopper.update(1.1, 2) and not stopper.should_stop
    assert stopper.update(0.9, 3) and stopper.best_epoch == 3
    assert not stopper.update(0.95, 4)
    assert not stopper.update(0.91, 5) and stopper.should_stop
    maximise = EarlyStopping(patience=1, mode="max")
    maximise.update(0.5, 1)
    assert not maximise.update(0.4, 2) and maximise.should_stop


def test_early_stopping_restores_best_weights(tmp_path, fmnist, tiny_config):
    # a learning rate this high makes validation loss bounce, so patience 1 stops the run
    run = train(tiny_config(epochs=12, patience=1, lr=0.02), root=tmp_path, data=fmnist, show_progress=False)
    metrics = run.metrics()
    losses = [row["val_loss"] for row in run.history()]
    best = losses.index(min(losses)) + 1
    assert metrics["best_epoch"] == best
    assert metrics["stopped_early"] and metrics["epochs"] == best + 1 < 12
    assert same_weights(weights(run), load_checkpoint(run.best_checkpoint)["model"])
    assert not same_weights(weights(run), load_checkpoint(run.last_checkpoint)["model"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, fmnist, tiny_config, nan_weights_at):
    nan_weights_at(1, 3)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2, batch 4.*lower --lr"):
        train(tiny_config(epochs=3), root=tmp_path, data=fmnist, show_progress=False)
    run = open_run("tiny", tmp_path)
    assert run.state == "failed" and not run.finished
    last = load_checkpoint(run.last_checkpoint)
    assert last["progress"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_init_from_starts_from_the_other_runs_weights(tmp_path, fmnist, tiny_config):
    base = train(tiny_config(name="base"), root=tmp_path, data=fmnist, show_progress=False)
    tuned = train(tiny_config(name="tuned", epochs=1, lr=1e-12, init_from=str(base.path)), root=tmp_path,
                  data=fmnist, show_progress=False)
    a, b = weights(base), weights(tuned)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a if "running" not in k)
    assert tuned.metrics()["accuracy"] > 0.7


@pytest.mark.skipif(not precision.bf16_supported(torch.device("cpu")),
                    reason="this CPU has no bf16 matrix products (AVX512-BF16 or AMX)")
def test_bf16_precision_trains(tmp_path, fmnist, tiny_config):
    run = train(tiny_config(model="cnn", precision="bf16", train_limit=400, test_limit=200, epochs=1,
                            batch_size=50), root=tmp_path, data=fmnist, show_progress=False)
    assert run.metrics()["precision"] == "bf16"


def test_bf16_on_a_cpu_without_it_gets_a_clear_error(tmp_path, fmnist, tiny_config, monkeypatch):
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    with pytest.raises(ConfigError, match="^precision bf16 is not supported on this cpu device; use --precision fp32$"):
        train(tiny_config(precision="bf16"), root=tmp_path, data=fmnist, show_progress=False)


@pytest.mark.parametrize("has_bf16", [False, True])
def test_a_recipe_on_a_cpu_without_bf16_says_which_time_target_applies(tmp_path, fmnist, tiny_config, monkeypatch,
                                                                      capsys, has_bf16):
    monkeypatch.setattr(loop, "bf16_supported", lambda device: has_bf16)
    train(tiny_config(recipe="fast", model="ann", epochs=1), root=tmp_path, data=fmnist, show_progress=False)
    said = "`fast` trains in fp32: its time target here is 45 s (30 s with bf16 products" in capsys.readouterr().err
    assert said == (not has_bf16)


def test_a_run_whose_weights_no_longer_fit_its_model_gets_a_clear_error(tmp_path, fmnist, tiny_config):
    from fashionlab.artifacts import load_run_model
    from fashionlab.errors import RunError
    from fashionlab.training.checkpoint import save_checkpoint

    run = train(tiny_config(epochs=1), root=tmp_path, data=fmnist, show_progress=False)
    record = load_checkpoint(run.model_path)
    record["model"] = {k: v for k, v in record["model"].items() if not k.startswith("1.")}  # a layer gone
    save_checkpoint(record, run.model_path)
    with pytest.raises(RunError, match="do not fit the current 'ann' network.*train it again"):
        load_run_model(run.path)
