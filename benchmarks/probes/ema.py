"""An exponential moving average (EMA) of the weights, kept beside the run's own, as a step hook.

torch.optim.swa_utils' AveragedModel is a copy of the model taken at the first step; after every optimizer step
it moves each parameter `1 - decay` of the way to the model's. Buffers (batch-norm statistics) are not averaged:
the averaged weights need statistics of their own, re-estimated after training (training/batchnorm.py).
"""

from __future__ import annotations

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fashionlab.training.hooks import StepHooks, TrainingStart


class ExponentialAverage(StepHooks):
    """After training, `average.module` is the EMA network (on the run's device)."""

    def __init__(self, decay: float):
        self.decay = decay
        self.average: AveragedModel | None = None
        self.device = None
        self._handle = None

    def start(self, run: TrainingStart) -> None:
        if self._handle is not None:  # a resumed run starts again: one update per step, not two
            self._handle.remove()
        model, self.device = run.model, run.device
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=False)
        self._handle = run.optimizer.register_step_post_hook(lambda *_: self.average.update_parameters(model))
