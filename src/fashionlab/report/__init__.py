"""Reports: figures (one function per figure of the paper), HTML with embedded PNGs, tables."""

from .build import add_runs_section, build_runs_report, cpu_name
from .html import Report, Section
from .study_report import build_study_report
from .style import Entry, assign_colors

__all__ = ["Entry", "Report", "Section", "add_runs_section", "assign_colors", "build_runs_report",
           "build_study_report", "cpu_name"]
