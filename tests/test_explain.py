"""The explain page and its parts: failures, attributions, calibration, the t-SNE map, and the CLI's errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from fashionlab.cli import main
from fashionlab.config import RunConfig
from fashionlab.errors import RunError
from fashionlab.explain.attributions import attribute, gradcam_layers, methods_for
from fashionlab.explain.calibration import (
    calibrate,
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    load_temperature,
    reliability_bins,
)
from fashionlab.explain.embedding import penultimate_features, stratified_sample
from fashionlab.explain.failures import confused_pairs, highest_loss, per_class_accuracy
from fashionlab.models import create_model


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, fmnist):
    """A fully connected and a convolutional run on 300 images, 1 epoch, 1 thread (a few seconds each)."""
    from fashionlab.training.loop import train

    root = tmp_path_factory.mktemp("runs")
    for model in ("ann", "fastnet_small"):
        config = RunConfig.from_dict(dict(model=model, epochs=1, batch_size=50, train_limit=300, test_limit=200,
                                          threads=1, precision="fp32", name=f"tiny-{model}"))
        train(config, root=root, data=fmnist, show_progress=False)
    train(config.replace(model="ann", val_size=0, name="tiny-ann-all"), root=root, data=fmnist, show_progress=False)
    return root


PARTS = ("where-it-fails", "why-it-answers", "how-sure-it-is", "what-it-learned", "time-per-part")
FIGURES = ("highest_loss", "confusion_and_accuracy", "confused_pairs", "attributions_errors", "attributions_correct",
           "reliability", "embedding")


@pytest.mark.parametrize("model", ["ann", "fastnet_small"])
def test_page_has_every_part(tiny_runs, fmnist, tmp_path, model):
    from fashionlab.explain.page import explain_run

    torch.set_num_threads(1)
    page = explain_run(f"tiny-{model}", tmp_path / "page", root=tiny_runs, data=fmnist, sample=120, thumbnails=5)
    html = page.read_text()
    for part in PARTS:
        assert f'<section id="{part}">' in html
    for name in FIGURES:
        assert (tmp_path / "page" / "figures" / f"{name}.png").stat().st_size > 5000
        assert f'<figure id="{name}"><img src="data:image/png;base64,' in html  # embedded: the page travels alone
    assert ("Grad-CAM: the last convolution" in html) == (model == "fastnet_small")
    assert ("Grad-CAM is left out" in html) == (model == "ann")
    assert "Integrated Gradients" in html and "Occlusion" in html
    saved = json.loads((tiny_runs / f"tiny-{model}" / "calibration.json").read_text())
    assert saved["fitted_on"] == "validation" and saved["images_scored"] == 200
    assert set(saved) >= {"temperature", "fitted_on", "ece_before", "ece_after"}
    assert load_temperature(tiny_runs / f"tiny-{model}") == pytest.approx(saved["temperature"])
    assert load_temperature(f"tiny-{model}", root=tiny_runs) == pytest.approx(saved["temperature"])
    for table in ("highest_loss", "confused_pairs", "calibration", "embedding_neighbours", "timings"):
        assert (tmp_path / "page" / f"{table}.csv").is_file()


def test_chosen_images_by_index_and_file(tiny_runs, fmnist, tmp_path):
    from PIL import Image

    from fashionlab.explain.page import explain_run

    photo = tmp_path / "boot.png"
    Image.fromarray(fmnist.test_images[0]).save(photo)
    page = explain_run("tiny-fastnet_small", tmp_path / "chosen", root=tiny_runs, data=fmnist, sample=60,
                       images=["3", str(photo)])
    html = page.read_text()
    assert 'id="attributions_chosen"' in html and 'id="attributions_errors"' not in html


def _calibrated_logits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is the true label distribution: labels are drawn from it, so T = 1 is calibrated."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(n, 10))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = (rng.random((n, 1)) > probs.cumsum(1)).sum(1)
    return logits, labels


def test_temperature_scaling_fixes_an_over_confident_model():
    logits, labels = _calibrated_logits(20_000)
    over = logits * 5  # the same ranking, far too sure
    fit, score = slice(0, 10_000), slice(10_000, None)
    t = fit_temperature(over[fit], labels[fit], is_probs=False)
    assert t == pytest.approx(5, rel=0.1)
    before = expected_calibration_error(calibrated_probabilities(over[score], 1.0, is_probs=False), labels[score])
    after = expected_calibration_error(calibrated_probabilities(over[score], t, is_probs=False), labels[score])
    assert before > 0.2 and after < 0.03
    result = calibrate(over[score], labels[score], over[fit], labels[fit])
    assert result.calibration.fitted_on == "validation"
    assert result.calibration.ece_after < result.calibration.ece_before / 5


def test_without_validation_the_test_halves_are_cross_fitted():
    logits, labels = _calibrated_logits(4000, seed=1)
    result = calibrate(logits * 3, labels)
    c = result.calibration
    assert c.fitted_on == "test-halves" and len(c.half_temperatures) == 2
    assert all(t == pytest.approx(3, rel=0.15) for t in c.half_temperatures)
    assert c.ece_after < c.ece_before and "half" in c.description
    # each half is scored with the other half's temperature, not with the one saved for later use
    order = np.random.default_rng(0).permutation(4000)
    first = order[:2000]
    expected = calibrated_probabilities(logits[first] * 3, c.half_temperatures[1], is_probs=False)
    np.testing.assert_allclose(result.probs_after[first], expected, rtol=1e-5, atol=1e-6)


def test_a_run_without_validation_split_is_calibrated_on_test_halves(tiny_runs, fmnist):
    from fashionlab.explain.calibration import calibrate_run

    result = calibrate_run("tiny-ann-all", root=tiny_runs, data=fmnist)
    saved = json.loads((tiny_runs / "tiny-ann-all" / "calibration.json").read_text())
    assert saved["fitted_on"] == result.calibration.fitted_on == "test-halves"
    assert len(saved["half_temperatures"]) == 2 and saved["images_fitted"] == 100


def test_calibrated_probabilities_take_logits_or_probabilities():
    logits, _ = _calibrated_logits(50)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(calibrated_probabilities(logits, 2.0), calibrated_probabilities(probs, 2.0),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(calibrated_probabilities(probs, 1.0), probs, rtol=1e-4, atol=1e-6)
    cooled = calibrated_probabilities(logits, 0.5)
    assert (cooled.argmax(1) == logits.argmax(1)).all() and (cooled.max(1) >= probs.max(1) - 1e-6).all()
    with pytest.raises(ValueError):
        calibrated_probabilities(logits, 0)


def test_load_temperature(tmp_path):
    assert load_temperature(tmp_path) == 1.0 and load_temperature(tmp_path, default=None) is None
    (tmp_path / "calibration.json").write_text('{"temperature": 1.7}')
    assert load_temperature(tmp_path) == 1.7
    (tmp_path / "calibration.json").write_text("{nope")
    with pytest.raises(RunError, match="not a calibration file"):
        load_temperature(tmp_path)
    with pytest.raises(RunError, match="no run 'absent'"):
        load_temperature("absent", root=tmp_path)


def test_reliability_bins_and_ece():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    bins = reliability_bins(probs, labels, bins=10)
    assert bins.counts.sum() == 4 and bins.counts[9] == 2 and bins.counts[5] == 2
    # top bin: confidence .95, accuracy .5; middle: .55 vs 1
    assert bins.ece == pytest.approx((2 * 0.45 + 2 * 0.45) / 4)


def test_failures():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[.9, .1, 0], [.2, .8, 0], [.7, .3, 0], [.05, .95, 0], [0, .4, .6], [.1, .6, .3]]) + 1e-3
    worst = highest_loss(probs, labels, 3)
    assert [f.index for f in worst] == [1, 2, 5] and worst[0].predicted == 1  # a tie (2, 5): lower index first
    pairs = confused_pairs(probs, labels, k=5)
    assert (pairs[0].a, pairs[0].b, pairs[0].a_as_b, pairs[0].b_as_a) == (0, 1, 1, 1)
    assert pairs[0].examples_a_as_b == [1] and pairs[0].examples_b_as_a == [2]
    np.testing.assert_allclose(per_class_accuracy(labels, probs.argmax(1), 3), [0.5, 0.5, 0.5])


def test_integrated_gradients_add_up_and_gradcam_finds_the_last_convolution():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    for name in ("ann", "fastnet_small"):
        model = create_model(name).eval()
        maps = attribute(model, x, [1, 2, 3], ig_steps=64)
        assert set(maps) == set(methods_for(model)) and all(m.shape == (3, 28, 28) for m in maps.values())
        with torch.no_grad():  # completeness: IG sums to the logit's change from the (black) baseline
            change = model(x)[range(3), [1, 2, 3]] - model(torch.full_like(x, x.new_tensor(-0.2860 / 0.3530)))[
                range(3), [1, 2, 3]]
        np.testing.assert_allclose(maps["integrated_gradients"].sum((1, 2)), change.numpy(), rtol=0.05, atol=2e-3)
    cnn = create_model("cnn")
    assert gradcam_layers(cnn) == [[m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)][-1]]
    assert gradcam_layers(create_model("ann")) == []


def test_penultimate_features_and_sample():
    x = torch.randn(5, 1, 28, 28)
    assert penultimate_features(create_model("fastnet_small"), x).shape == (5, 128)
    assert penultimate_features(create_model("ann"), x).shape == (5, 98)
    labels = np.repeat(np.arange(10), 100)
    idx = stratified_sample(labels, 200)
    assert len(idx) == 200 and (np.bincount(labels[idx]) == 20).all()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["explain", "nope", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["explain", "nope", "--runs-dir", str(tmp_path), "--thumbnails", "-1"]) == 2
    assert re.search(r"--thumbnails must be at least 0", capsys.readouterr().err)
    assert main(["labels", "--folds", "1", "--out", str(tmp_path / "labels")]) == 2
    err = capsys.readouterr().err
    assert "--folds must be at least 2" in err and err.count("\n") == 1


def test_study_report_calibration_section(tiny_runs, tmp_path):
    from fashionlab.report import Entry, Report
    from fashionlab.report.calibration import add_calibration
    from fashionlab.runs import open_run

    report = Report(tmp_path, "t")
    add_calibration(report, [Entry("ANN", [open_run("tiny-ann", tiny_runs)]),
                             Entry("fastnet", [open_run("tiny-fastnet_small", tiny_runs)])])
    (section,) = report.sections
    table = section.blocks[-1]
    assert section.title == "How sure each model is" and [r[0] for r in table["rows"]] == ["ANN", "fastnet"]
    assert (tmp_path / "calibration.csv").is_file()
