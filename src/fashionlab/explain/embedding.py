"""What a model learned: its penultimate-layer features of the test images, mapped to 2-D by t-SNE.

The features are the input of the last Linear layer (a forward pre-hook on it): the representation the
classifier separates linearly, so classes the net tells apart form their own clusters and confusable classes
touch. t-SNE (scikit-learn) keeps neighbourhoods, not distances: the size of a cluster and the gaps between
clusters mean little, which points sit next to which means a lot. A subsample (2,000 images by default, stratified
by class) keeps it to seconds on 2 cores; t-SNE's cost grows faster than linearly with the points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import Split, iterate_batches
from ..errors import ConfigError
from ..training.precision import prepare_input

SAMPLE = 2000
# scikit-learn's default is 1,000. For the `fast` recipe's features of 2,500 test images, 500 iterations (250 of
# early exaggeration, 250 more) and 1,000 leave the same share of each point's 10 nearest map neighbours in its
# class (89.3% both, 89.2% in the 128-D features themselves) in two thirds of the time
TSNE_ITERATIONS = 500


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier's last Linear layer (for an ensemble: its first member's; the members' features differ)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("this network has no Linear layer to take penultimate features from")
    members = getattr(model, "members", None)
    if members is not None:
        linears = [m for m in members[0].modules() if isinstance(m, nn.Linear)]
    return linears[-1]


@torch.no_grad()
def penultimate_features(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """(N, features) float32: what the last Linear layer receives for each image (eval mode, one view)."""
    captured = []
    hook = last_linear(model).register_forward_pre_hook(lambda m, args: captured.append(args[0].detach().float()))
    model.eval()
    try:
        device = next(model.parameters()).device
        for x, _ in iterate_batches(Split(images, torch.zeros(len(images), dtype=torch.long)), batch_size):
            model(prepare_input(x.to(device), model))
    finally:
        hook.remove()
    return torch.cat(captured).reshape(len(images), -1).cpu().numpy()


def stratified_sample(labels: np.ndarray, n: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """Sorted indices of about `n` images, the same share of each class (all of them when n >= len)."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picks.append(rng.choice(idx, size=max(1, round(n * len(idx) / len(labels))), replace=False))
    return np.sort(np.concatenate(picks))


@dataclass
class Embedding:
    indices: np.ndarray   # test indices of the points
    points: np.ndarray    # (n, 2)
    labels: np.ndarray
    predicted: np.ndarray
    features: int         # the penultimate layer's width


def embed(model: nn.Module, images: torch.Tensor, labels: np.ndarray, predicted: np.ndarray, n: int = SAMPLE,
          seed: int = 0, perplexity: float = 30.0, threads: int = 2) -> Embedding:
    """t-SNE of the penultimate features of a stratified sample of the images (PCA start: reproducible and keeps
    the global layout better than a random start)."""
    from sklearn.manifold import TSNE

    idx = stratified_sample(labels, n, seed)
    feats = penultimate_features(model, images[idx])
    perplexity = min(perplexity, max(2.0, (len(idx) - 1) / 3))  # t-SNE needs perplexity < points
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=TSNE_ITERATIONS,
                  random_state=seed, n_jobs=threads).fit_transform(feats.astype(np.float32))
    return Embedding(idx, points, labels[idx], predicted[idx], feats.shape[1])
