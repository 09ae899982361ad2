"""Ensembles (`NAME-xK`): what the registry builds, what the loop trains, and that the rest sees one network."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fashionlab.config import RunConfig
from fashionlab.data import make_splits
from fashionlab.errors import ConfigError
from fashionlab.serving.export import export_onnx
from fashionlab.artifacts import load_run_model
from fashionlab.evaluation import evaluate_run
from fashionlab.models import Ensemble, count_parameters, create_model
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.loop import train


def test_an_ensemble_is_k_independent_copies():
    torch.manual_seed(0)
    ensemble = create_model("fastnet_small-x3")
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    assert count_parameters(ensemble) == 3 * count_parameters(create_model("fastnet_small"))
    first, second = (next(m.parameters()) for m in ensemble.members[:2])
    assert not torch.equal(first, second)  # each starts from its own random weights

    x = torch.randn(4, 1, 28, 28)
    assert ensemble.train()(x).shape == (3, 4, 10)  # training: every member's logits, for its own loss
    ensemble.eval()
    expected = torch.stack([member(x) for member in ensemble.members]).mean(0)
    assert torch.allclose(ensemble(x), expected)


@pytest.mark.parametrize("name, message", [
    ("fastnet_small-x1", "needs 2 to 16 members, e.g. fastnet_small-x2"),
    ("fastnet_small-x17", "needs 2 to 16 members"),
    ("resnet9000-x2", "unknown model 'resnet9000-x2'.*NAME-xK"),
])
def test_bad_ensemble_names_say_what_to_do(name, message):
    with pytest.raises(ConfigError, match=message):
        create_model(name)
    with pytest.raises(ConfigError, match=message):
        RunConfig(model=name).validate()


def test_each_member_trains_exactly_as_it_would_alone(tmp_path, fmnist, tiny_config):
    """The loop adds the members' losses, so member 0 (drawn first from the seeded generator, so with the
    single run's starting weights) must end with the single run's weights to the bit. AdamW and batch norm:
    per-parameter steps and per-member statistics, no coupling between members."""
    settings = dict(model="ann_bn", optimizer="adamw", augment="flip,crop", label_smoothing=0.1)
    alone = train(tiny_config(name="alone", **settings), root=tmp_path, data=fmnist, show_progress=False)
    pair = train(tiny_config(name="pair", **{**settings, "model": "ann_bn-x2"}), root=tmp_path, data=fmnist,
                 show_progress=False)
    single = load_checkpoint(alone.model_path)["model"]
    both = load_checkpoint(pair.model_path)["model"]
    assert both.keys() == {f"members.{i}.{key}" for i in (0, 1) for key in single}
    assert all(torch.equal(both[f"members.0.{key}"], value) for key, value in single.items())
    assert not all(torch.equal(both[f"members.1.{key}"], value) for key, value in single.items())
    # the history reports the members' mean loss, on the single run's scale
    assert abs(pair.history()[0]["train_loss"] - alone.history()[0]["train_loss"]) < 0.5


def test_a_trained_ensemble_loads_scores_and_exports_as_one_network(tmp_path, fmnist, tiny_config):
    run = train(tiny_config(model="ann-x2", tta="flip", test_limit=0), root=tmp_path, data=fmnist,
                show_progress=False)
    model, record = load_run_model(run.name, tmp_path)
    assert isinstance(model, Ensemble) and record["model_name"] == "ann-x2"
    assert evaluate_run(run.name, "test", tmp_path)["accuracy"] == run.metrics()["accuracy"]

    x = make_splits(fmnist, 0, 0, train_limit=1, test_limit=500).test.images
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    session = ort.InferenceSession(str(export_onnx(run.name, tmp_path / "pair.onnx", tmp_path)),
                                   providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"image": x.numpy()})[0] - expected).max() < 1e-4
