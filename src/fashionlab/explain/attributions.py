"""Why a model answers: attribution maps from Captum for chosen images and classes.

Every method explains the logit of one class (the predicted one, and the true one when they differ):
- Integrated Gradients: the gradient averaged along the straight path from a black image (the baseline) to the
  image, times the difference; signed, per pixel, and its sum is the logit's change from the black image.
- Occlusion: how much the logit drops when a 4x4 patch is painted black, averaged over the patches (stride 2)
  that cover a pixel; positive where hiding the pixel lowers the class's score.
- Grad-CAM (convolutional nets only): the last convolution's feature maps weighed by the mean gradient of the
  logit over each map, summed and clipped at zero, upsampled to 28x28. For an ensemble the members' maps are
  summed before clipping, which is Grad-CAM of the mean logit.
The maps explain a single view of each image; a run with test-time augmentation averages its flipped view too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.augment import BACKGROUND
from ..errors import ConfigError
from ..models import is_convolutional
from ..training.precision import prepare_input

METHODS = ("integrated_gradients", "occlusion", "gradcam")
METHOD_TITLES = {"integrated_gradients": "Integrated Gradients", "occlusion": "Occlusion", "gradcam": "Grad-CAM"}
IG_STEPS = 32
OCCLUSION_WINDOW, OCCLUSION_STRIDE = 4, 2


@dataclass
class Item:
    """One image to explain: where it comes from, its true class when known, the model's answer."""
    image: torch.Tensor                  # (1, 28, 28) normalised
    source: str                          # "test #123" or a file name
    kind: str                            # "error", "correct" or "chosen"
    label: int | None
    predicted: int
    probs: np.ndarray
    maps: dict = field(default_factory=dict)  # (method, class) -> (28, 28) attribution

    @property
    def targets(self) -> list[int]:
        """The classes explained: the predicted one, then the true one when it differs."""
        return [self.predicted] + ([self.label] if self.label is not None and self.label != self.predicted else [])


def gradcam_layers(model: nn.Module) -> list[nn.Conv2d]:
    """The last convolution of the net (of each member, for an ensemble); empty for a net without one."""
    members = getattr(model, "members", None)  # an ensemble of nets (an nn.ModuleList of them), where there is one
    nets = list(members) if isinstance(members, nn.ModuleList) else [model]
    layers = []
    for net in nets:
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        if convs:
            layers.append(convs[-1])
    return layers


def methods_for(model: nn.Module) -> tuple[str, ...]:
    return METHODS if is_convolutional(model) else METHODS[:2]


def _forward(model: nn.Module):
    return lambda x: model(prepare_input(x, model))


def attribute(model: nn.Module, images: torch.Tensor, targets: list[int] | torch.Tensor,
              methods: tuple[str, ...] | None = None, ig_steps: int = IG_STEPS) -> dict[str, np.ndarray]:
    """Attribution maps (N, 28, 28) per method for `images` (N, 1, 28, 28) and one target class per image."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion

    model.eval()
    methods = methods or methods_for(model)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ConfigError(f"unknown attribution method(s) {', '.join(sorted(unknown))}; choose from "
                          f"{', '.join(METHODS)}")
    forward = _forward(model)
    x = images.detach().float().clone()
    target = torch.as_tensor(targets, dtype=torch.long)
    baseline = torch.full_like(x, BACKGROUND)
    out = {}
    if "integrated_gradients" in methods:
        ig = IntegratedGradients(forward)
        out["integrated_gradients"] = ig.attribute(x, baselines=baseline, target=target, n_steps=ig_steps,
                                                   internal_batch_size=256)
    if "occlusion" in methods:
        window, stride = OCCLUSION_WINDOW, OCCLUSION_STRIDE
        with torch.no_grad():
            out["occlusion"] = Occlusion(forward).attribute(
                x, sliding_window_shapes=(1, window, window), strides=(1, stride, stride), baselines=BACKGROUND,
                target=target, perturbations_per_eval=32)
    if "gradcam" in methods:
        layers = gradcam_layers(model)
        if not layers:
            raise ConfigError("Grad-CAM needs a convolutional network; this one has no Conv2d layer")
        total = 0
        for layer in layers:
            cam = LayerGradCam(forward, layer).attribute(x, target=target, relu_attributions=False)
            total = total + LayerAttribution.interpolate(cam.float(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
        out["gradcam"] = torch.relu(total)
    return {k: v.detach().float().sum(1).cpu().numpy() for k, v in out.items()}


def explain_items(model: nn.Module, items: list[Item], methods: tuple[str, ...] | None = None,
                  ig_steps: int = IG_STEPS) -> list[Item]:
    """Fill each item's `maps` for every method and each of its target classes (one batched call per method)."""
    methods = methods or methods_for(model)
    pairs = [(i, t) for i, item in enumerate(items) for t in item.targets]
    if not pairs:
        return items
    images = torch.stack([items[i].image for i, _ in pairs])
    maps = attribute(model, images, [t for _, t in pairs], methods, ig_steps)
    for n, (i, t) in enumerate(pairs):
        for method in methods:
            items[i].maps[(method, t)] = maps[method][n]
    return items


def select_items(images: torch.Tensor, probs: np.ndarray, labels: np.ndarray, worst: int = 6,
                 correct_per_class: int = 1) -> list[Item]:
    """The `worst` highest-loss errors, then for each class its `correct_per_class` most confident correct
    images: what a reader wants to see first (how it fails) and a reference (what it keys on when right)."""
    pred = probs.argmax(1)
    loss = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
    wrong = np.flatnonzero(pred != labels)
    chosen = [(int(i), "error") for i in wrong[np.argsort(-loss[wrong], kind="stable")][:worst]]
    conf = probs.max(1)
    for c in range(probs.shape[1]):
        right = np.flatnonzero((pred == labels) & (labels == c))
        chosen += [(int(i), "correct") for i in right[np.argsort(-conf[right], kind="stable")][:correct_per_class]]
    return [Item(images[i], f"test #{i}", kind, int(labels[i]), int(pred[i]), probs[i]) for i, kind in chosen]


def items_from_spec(specs: list[str], images: torch.Tensor, probs: np.ndarray, labels: np.ndarray,
                    model: nn.Module, mean: float, std: float, tta: str = "none") -> list[Item]:
    """`--images`: test indices ("17", "4023") and image files (prepared as `fashionlab predict` prepares them,
    scored with the run's test-time augmentation `tta` like the test images)."""
    from ..serving.preprocess import prepare_file
    from .outputs import predict_logits

    items = []
    for spec in specs:
        if spec.strip().isdigit():
            i = int(spec)
            if not 0 <= i < len(labels):
                raise ConfigError(f"--images: test index {i} is outside 0..{len(labels) - 1}")
            items.append(Item(images[i], f"test #{i}", "chosen", int(labels[i]), int(probs[i].argmax()), probs[i]))
            continue
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"--images: '{spec}' is neither a test index nor an image file")
        pixels = prepare_file(path).pixels
        x = (torch.from_numpy(pixels.astype(np.float32) / 255.0) - mean) / std
        x = x[None]
        logits = predict_logits(model, x[None], tta=tta)
        p = np.exp(logits[0] - logits[0].max())
        p /= p.sum()
        items.append(Item(x, path.name, "chosen", None, int(p.argmax()), p))
    return items
