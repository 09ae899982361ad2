"""A report as a list of sections of blocks (text, figure, table), written as one self-contained HTML file.

Figures are saved as PNG beside the report and embedded as base64, so report.html can be mailed alone.
To add a section: `section = report.section("Title")`, then `.text()`, `.figure()`, `.table()` on it.
"""

from __future__ import annotations

import base64
import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ..runs import write_atomic
from ..tables import format_table
from .style import png_bytes


@dataclass
class Section:
    title: str
    report: Report
    blocks: list[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")

    def text(self, text: str) -> Section:
        self.blocks.append({"kind": "text", "text": text})
        return self

    def code(self, text: str, summary: str | None = None) -> Section:
        """Preformatted text, folded under `summary` when one is given."""
        self.blocks.append({"kind": "code", "text": text, "summary": summary})
        return self

    def figure(self, name: str, fig, caption: str) -> Section:
        """Save `fig` as OUT/figures/NAME.png and embed it."""
        data = png_bytes(fig)
        path = self.report.out / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.report.figures.append(path)
        self.blocks.append({"kind": "figure", "name": name, "caption": caption, "file": f"figures/{name}.png",
                            "src": "data:image/png;base64," + base64.b64encode(data).decode()})
        return self

    def table(self, caption: str, header: list[str], rows: list[list], name: str | None = None) -> Section:
        """A table; with `name` also written as OUT/NAME.csv and OUT/NAME.md."""
        rows = [[str(c) for c in r] for r in rows]
        if name:
            with open(self.report.out / f"{name}.csv", "w", newline="") as fh:
                csv.writer(fh).writerows([header, *rows])
            write_atomic(self.report.out / f"{name}.md", f"{caption}\n\n{format_table(header, rows)}\n")
        self.blocks.append({"kind": "table", "caption": caption, "header": header, "rows": rows, "name": name})
        return self


@dataclass
class Report:
    out: Path
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def __post_init__(self):
        self.out = Path(self.out)
        self.out.mkdir(parents=True, exist_ok=True)

    def section(self, title: str) -> Section:
        section = Section(title, self)
        self.sections.append(section)
        return section

    def write(self) -> Path:
        env = Environment(loader=PackageLoader("fashionlab.report", "."), autoescape=select_autoescape(["html"]))
        html = env.get_template("template.html").render(report=self)
        path = self.out / "report.html"
        write_atomic(path, html)
        return path
