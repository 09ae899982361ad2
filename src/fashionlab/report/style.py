"""One look for every figure: the Agg backend, a colour per model kept across figures, PNG output."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")  # no display here; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

# tab10, then four darker tones: the study has eleven distinct runs and each keeps its colour everywhere.
PALETTE = list(plt.get_cmap("tab10").colors) + ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]

plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                     "axes.spines.right": False, "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8})


@dataclass
class Entry:
    """One model in a report: its label, its runs (one per seed) and the colour it has in every figure."""
    label: str
    runs: list                      # fashionlab.runs.Run, finished
    group: str = "runs"
    key: str = ""                   # what decides the colour: the same run keeps one colour in every group
    color: str | tuple = field(default="C0")

    @property
    def run(self):
        """The first seed's run: the one drawn in per-epoch figures."""
        return self.runs[0]

    def metrics(self) -> list[dict]:
        return [r.metrics() for r in self.runs]


def assign_colors(entries: list[Entry]) -> None:
    by_key: dict[str, object] = {}
    for e in entries:
        key = e.key or e.label
        if key not in by_key:
            by_key[key] = PALETTE[len(by_key) % len(PALETTE)]
        e.color = by_key[key]


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
