"""Checkpoints: plain dicts of tensors and numbers, loadable with torch.load(weights_only=True).

Written to a temporary file and renamed, so a crash mid-write never leaves a broken checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import RunError
from ..runs import is_writer


def save_checkpoint(state: dict, path: Path) -> None:
    if not is_writer():  # under torchrun only rank 0 writes
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # a truncated or foreign file: say which and what to do
        raise RunError(f"checkpoint {path} cannot be read ({type(err).__name__}); it is damaged or not a "
                       "fashionlab checkpoint") from None


def load_weights_into(model: torch.nn.Module, weights: dict, problem: str, fix: str) -> None:
    """model.load_state_dict, with torch's many-line mismatch report cut to one line that says what to do."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise RunError(f"{problem} ({first}); {fix}") from None


def model_state(model: torch.nn.Module) -> dict:
    """A CPU copy of the weights, in the default memory format, independent of later training."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
