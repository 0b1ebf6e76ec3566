"""One table of a report: its numbers (for CSV) and its display form (for Markdown, LaTeX and HTML)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class MetricTable:
    """`numbers` holds unformatted values (CSV, other tools); `display` the formatted cells; `notes` the table's
    footnotes (the HTML shows each distinct note once, numbered)."""

    key: str
    title: str
    numbers: pd.DataFrame
    display: pd.DataFrame
    notes: list[str]
