"""Probes: training options whose measurements show no gain, kept runnable outside the product.

Each probe is a `fashionlab.training.hooks.StepHooks` passed to `fashionlab.training.loop.train(..., hooks=...)`,
or a network registered in the model registry; none of them is a run setting. The benchmark scripts run as
`python benchmarks/X.py`, so `benchmarks/` is on the import path and they import these as `from probes.mixing
import CutMix`; a test puts `benchmarks/` on `sys.path` first.

- mixing.py: CutMix and mixup (soft targets from pairs of images)
- sam.py: sharpness-aware minimisation, from a fraction of the steps on
- progressive_resize.py: the first epochs on downscaled images
- ensemble.py: `NAME-xK`, K copies of a network trained side by side, each on its own loss
- ema.py: an exponential moving average of the weights
- architectures.py: resnet18, wrn16_4, vit_p7, fastnet, fastnet_large, fastnet_large_res
- options.py: the old setting names (cutmix=0.5, sam_rho=0.05, ...) turned into hooks, for key=value overrides

docs/EXPERIMENTS.md has their measurements.
"""
