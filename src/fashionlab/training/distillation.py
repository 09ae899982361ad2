"""Knowledge distillation (Hinton et al., 2015): the student also learns to match a trained teacher's softened
outputs, computed on the very images the student sees after augmentation (the "consistent" teaching of Beyer et
al., 2022, "Knowledge distillation: a good teacher is patient and consistent").

Per image: (1 - weight) * the recipe's own loss + weight * T^2 * KL(teacher_T || student_T), where _T is the
softmax at temperature T; the T^2 keeps the gradient's scale independent of T.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..artifacts import load_run_model
from .hooks import StepHooks
from .precision import autocast, bf16_supported, prepare_convolutions, prepare_input


class Teacher(StepHooks):
    """A finished run's network, frozen in eval mode, that turns each training batch's loss into a distillation
    loss (the loop's `criterion` hook)."""

    def __init__(self, source: str, weight: float, temperature: float, device: torch.device):
        self.model, record = load_run_model(source, device=str(device))
        for p in self.model.parameters():
            p.requires_grad_(False)
        # the teacher's own precision where this machine has it (a bf16 teacher on an fp32-only CPU runs in fp32)
        self.precision = record["precision"] if bf16_supported(device) or record["precision"] != "bf16" else "fp32"
        prepare_convolutions(self.model, self.precision, device, record["config"].get("winograd", True))
        self.device, self.weight, self.temperature = device, weight, temperature

    def criterion(self, criterion: nn.CrossEntropyLoss, x: torch.Tensor, step: int = 0) -> Callable:
        """`criterion` for this batch `x`, with the teacher's term added."""
        with torch.inference_mode(), autocast(self.device, self.precision):
            teacher = self.model(prepare_input(x, self.model)).float()
        target = F.log_softmax(teacher / self.temperature, dim=1)

        def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            student = F.log_softmax(logits / self.temperature, dim=1)
            match = F.kl_div(student, target, log_target=True, reduction="none").sum(1) * self.temperature ** 2
            if criterion.reduction == "mean":
                match = match.mean()
            return (1 - self.weight) * criterion(logits, targets) + self.weight * match

        return loss
