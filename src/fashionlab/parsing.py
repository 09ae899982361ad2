"""Turning text from CSV files and command lines back into numbers."""

from __future__ import annotations

import math
import re

from .errors import ConfigError

UNITS = {"s": 1, "m": 60, "h": 3600}
_PART = r"(\d+(?:\.\d*)?|\.\d+)\s*([smh])"
_DURATION = re.compile(rf"\s*(?:{_PART}\s*)+")


def number_or_text(text: str):
    """int if it reads as one, else float if it reads as one, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_duration(text: str) -> float:
    """Seconds of a duration with its unit: `45s`, `5m`, `1.5h`, `1h30m`. A bare number is refused: minutes and
    seconds both make sense as a time budget, so the unit is never guessed."""
    if not isinstance(text, str):
        raise ConfigError(f"a duration must be text such as 30s, 5m or 1h, got {text!r}")
    if not _DURATION.fullmatch(text.lower()):
        shown = text.strip()[:40]
        if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", shown):
            raise ConfigError(f"duration {shown!r} has no unit; give a unit: 30s, 5m or 1h")
        raise ConfigError(f"duration {shown!r} is not a duration; give a number with a unit: 30s, 5m or 1h "
                          "(or parts such as 1h30m)")
    seconds = sum(float(number) * UNITS[unit] for number, unit in re.findall(_PART, text.lower()))
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"duration {text.strip()[:40]!r} must be longer than 0 s")
    return seconds


def duration_text(seconds: float) -> str:
    """`seconds` as a duration `parse_duration` reads, rounded up (to 0.1 s below a minute, to whole seconds below
    ten minutes, else to whole minutes): what an error message can offer as the least that works."""
    if seconds < 60:
        return f"{math.ceil(seconds * 10 - 1e-9) / 10:g}s"
    whole = math.ceil(seconds - 1e-9) if seconds < 600 else 60 * math.ceil(seconds / 60 - 1e-9)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"
