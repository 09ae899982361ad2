"""The report's calibration section: how sure each model is, before and after temperature scaling.

Built from each run's saved test predictions alone (no model is run again, so it adds no time to a study): the
temperature is cross-fitted on the test set's two halves (fit on one, score the other), the way `fashionlab
explain` fits it for a run without a validation split. The saved probabilities are float16, so the smallest
ones are rounded to 0 and floored at 1e-12 before their logs are taken; `fashionlab explain RUN` recomputes
the logits and fits on the validation split where the run has one.
"""

from __future__ import annotations

import numpy as np

from ..explain.calibration import as_logits, calibrate
from .html import Report
from .style import Entry


def add_calibration(report: Report, entries: list[Entry]) -> None:
    runs = list({e.run.path: (e.label, e.run) for e in entries}.values())
    rows = []
    for label, run in runs:
        if not run.predictions_path.is_file():
            continue
        with np.load(run.predictions_path) as saved:
            probs, labels = saved["probs"].astype(np.float64), saved["labels"].astype(np.int64)
        if len(labels) < 100:  # too few images for 15 bins to say anything
            continue
        c = calibrate(as_logits(probs, is_probs=True), labels).calibration
        rows.append([label, f"{c.ece_before:.2%}", f"{c.ece_after:.2%}", f"{c.temperature:.2f}",
                     "over-confident" if c.temperature > 1.05 else "under-confident" if c.temperature < 0.95
                     else "about right"])
    if not rows:
        return
    section = report.section("How sure each model is")
    section.text("Expected calibration error (ECE: the image-weighted gap between accuracy and confidence over 15 "
                 "confidence bins) on the test set, before and after temperature scaling (softmax(logits / T)). T is "
                 "fitted on one random half of the test set and scored on the other, both ways, from the saved "
                 "test predictions; T > 1: the model was over-confident. 'fashionlab explain RUN' draws the "
                 "reliability diagrams and saves the temperature with the run.")
    section.table("Calibration on the test set", ["Model", "ECE before", "ECE after (cross-fitted)",
                                                  "T (all test images)", "The model was"], rows, name="calibration")
