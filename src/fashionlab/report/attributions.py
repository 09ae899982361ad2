"""The study report's "What the CNN looks at": attribution maps of the Table 1 CNN for a few test images of each
class and for its worst mistakes, drawn by the explain page's library functions (explain/attributions.py).

Kept cheap for the study's time budget: the images are chosen from the run's saved test predictions (nothing is
scored again), and the maps are Grad-CAM (one forward and backward pass per map; 14x14 for the paper's CNN) and
Integrated Gradients with 16 steps rather than the explain page's 32. Occlusion, a forward pass per 4x4 patch
position, would cost several times both together and is left to `fashionlab explain RUN`.
"""

from __future__ import annotations

import time

from ..artifacts import load_run_model
from ..explain.attributions import METHOD_TITLES, explain_items, methods_for, select_items
from ..explain.drawing import fig_attributions
from .build import test_images
from .html import Report
from .style import Entry

METHODS = ("gradcam", "integrated_gradients")
IG_STEPS = 16
PER_CLASS, WORST = 2, 6


def add_attributions(report: Report, entry: Entry, data) -> None:
    start = time.perf_counter()
    run = entry.run
    model, _ = load_run_model(run.path, device="cpu")
    methods = tuple(m for m in METHODS if m in methods_for(model))
    images, labels, probs = test_images(run, data)
    items = select_items(images, probs, labels, WORST, PER_CLASS)
    explain_items(model, items, methods, IG_STEPS)
    correct = [i for i in items if i.kind == "correct"]
    errors = [i for i in items if i.kind == "error"]
    names = " and ".join(METHOD_TITLES[m] for m in methods)
    s = report.section("What the CNN looks at")
    s.text(f"Attribution maps of {entry.label} ({run.name}): {names} of the logit of the predicted class and, for a "
           "mistake, of the true class. Red pixels raise that class's score, blue ones lower it (Grad-CAM is clipped "
           "at zero: red only); one colour scale per map (its 99th percentile). Grad-CAM weighs the last "
           "convolution's feature maps by their mean gradients and upsamples them to 28x28; Integrated Gradients "
           f"takes {IG_STEPS} steps from a black image. 'fashionlab explain RUN' draws them for any run, with "
           "occlusion too.")
    if correct:
        s.figure("cnn_attributions_correct",
                 fig_attributions(correct, methods, f"{entry.label}: each class's {PER_CLASS} most confident "
                                                    "correct test images", per_row=PER_CLASS),
                 f"Each class's {PER_CLASS} most confident correct test images (one class per row): what the CNN "
                 "keys on when it is right.")
    if errors:
        s.figure("cnn_attributions_errors",
                 fig_attributions(errors, methods, f"{entry.label}: its {len(errors)} highest-loss mistakes"),
                 f"The {len(errors)} test images whose true class got the lowest probability: the map of the wrong "
                 "answer, then of the true class.")
    s.text(f"This section ({sum(len(i.targets) for i in items)} maps and their figures) took "
           f"{time.perf_counter() - start:.1f} s here.")
