"""The label-error finder: flips, folds, the ranking on a problem with known flips, and the K-fold training."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlab.errors import ConfigError
from fashionlab.explain.label_issues import (
    flip_labels,
    fold_of,
    out_of_fold_probs,
    precision_recall_at,
    rank_label_issues,
    write_issues_csv,
)


def _blobs(n: int = 3000, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs in 20 dimensions: every label error is an outlier of its class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(classes, 20))
    labels = rng.integers(0, classes, size=n)
    return centres[labels] + rng.normal(0, 1, size=(n, 20)), labels


def test_flips_are_real_errors_and_seeded():
    labels = np.repeat(np.arange(10), 1000)
    noisy, flipped = flip_labels(labels, 0.01, seed=3)
    assert len(flipped) == 100 and (noisy[flipped] != labels[flipped]).all()
    assert (noisy != labels).sum() == 100 and set(np.unique(noisy)) <= set(range(10))
    again, flipped_again = flip_labels(labels, 0.01, seed=3)
    np.testing.assert_array_equal(again, noisy)
    assert not np.array_equal(flip_labels(labels, 0.01, seed=4)[1], flipped)


def test_folds_are_stratified():
    labels = np.repeat(np.arange(10), 40)
    which = fold_of(labels, 4, seed=0)
    assert set(which) == {0, 1, 2, 3}
    for k in range(4):
        assert (np.bincount(labels[which == k], minlength=10) == 10).all()
    with pytest.raises(ConfigError):
        fold_of(labels, 1)


def test_injected_flips_rank_first_on_blobs(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, labels = _blobs()
    noisy, flipped = flip_labels(labels, 0.02, seed=1)
    probs = cross_val_predict(LogisticRegression(max_iter=500), x, noisy, cv=4, method="predict_proba")
    issues = rank_label_issues(noisy, probs)
    precision, recall = precision_recall_at(issues.ranking, flipped, len(flipped))
    assert precision >= 0.95 and recall >= 0.95
    # cleanlab's flagged set holds no clean label and most flips; the ranking then goes on by self-confidence
    assert set(np.flatnonzero(issues.flagged)) <= set(flipped) and issues.flagged[flipped].mean() >= 0.85
    # the suggested label of a flipped image is its original one
    assert (issues.suggested[flipped] == labels[flipped]).mean() >= 0.95
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        ranked = rank_label_issues(noisy, probs, method, flagged_first=False).ranking
        assert precision_recall_at(ranked, flipped, len(flipped))[0] >= 0.9
    path = write_issues_csv(tmp_path / "issues.csv", issues, noisy, probs)
    rows = path.read_text().splitlines()
    assert rows[0].startswith("rank,index,given_label") and len(rows) == 1 + issues.flagged.sum()


def test_ranking_from_given_probabilities():
    labels = np.array([0, 1, 2, 0, 1, 2] * 20)
    probs = np.full((len(labels), 3), 0.05)
    probs[np.arange(len(labels)), labels] = 0.9
    wrong = np.array([4, 17, 33])
    for i, p in zip(wrong, (0.01, 0.02, 0.03)):  # confidently another class
        probs[i] = 0.5 - p / 2
        probs[i, labels[i]] = p
        probs[i, (labels[i] + 1) % 3] = 1 - p - probs[i, (labels[i] + 2) % 3]
    issues = rank_label_issues(labels, probs)
    assert list(issues.top(3)) == [4, 17, 33]
    assert precision_recall_at(issues.ranking, wrong, 3) == (1.0, 1.0)
    with pytest.raises(ConfigError):
        rank_label_issues(labels, probs, "vibes")


def test_out_of_fold_probabilities_from_k_runs(fmnist, tmp_path):
    oof = out_of_fold_probs(fmnist, folds=2, recipe=None, root=tmp_path, threads=1, limit=300, log=None,
                            model="ann", epochs=1, batch_size=50, precision="fp32")
    assert oof.probs.shape == (300, 10) and np.allclose(oof.probs.sum(1), 1, atol=1e-3)
    assert sorted(np.bincount(oof.folds)) == [150, 150] and len(oof.runs) == 2
    # each fold's run scored exactly its held-out images, in order
    for k, run in enumerate(oof.runs):
        saved = np.load(run / "test_predictions.npz")
        np.testing.assert_array_equal(saved["labels"], fmnist.train_labels[:300][oof.folds == k])


def test_labels_report_and_reuse(fmnist, tmp_path):
    from fashionlab.explain.label_issues import label_issues_report

    tiny = dict(recipe=None, folds=2, threads=1, limit=300, top=12, data=fmnist, log=None, model="ann", epochs=1,
                batch_size=50, precision="fp32")
    page, csv_path, issues = label_issues_report(tmp_path, **tiny)
    html = page.read_text()
    assert 'id="label_suspects"' in html and "How the probabilities were made" in html
    assert csv_path.read_text().startswith("rank,index,given_label") and len(issues.ranking) == 300
    first = (tmp_path / "out_of_fold.npz").stat().st_mtime_ns
    page, _, again = label_issues_report(tmp_path, reuse=True, **tiny)
    assert (tmp_path / "out_of_fold.npz").stat().st_mtime_ns == first  # ranked again, nothing trained
    np.testing.assert_array_equal(again.ranking, issues.ranking)
    assert "How the probabilities were made" in page.read_text()
    with pytest.raises(ConfigError, match="drop --reuse"):
        label_issues_report(tmp_path, reuse=True, **{**tiny, "folds": 3})
