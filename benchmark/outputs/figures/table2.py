"""Table 2 of the blog: the paper, the reproduction study and this run side by side, per attribute and headline
metric (`benchmark.outputs.headline`), as Markdown and LaTeX. A reference the source does not report reads
"not reported" (never 0); one that does not exist for a cell reads "—"; this run's value carries its 95% CI.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.core.atomic import write_text
from benchmark.outputs.figures.run_files import CannotMake, RunFiles
from benchmark.outputs.headline import headline
from benchmark.outputs.numbers import format_number
from benchmark.outputs.report.table import MetricTable
from benchmark.outputs.report.tables import to_latex, to_markdown

COLUMNS = {"paper": "Paper", "reproduction-study": "Reproduction study"}
NOTE = ("Paper: Asyrp (ICLR 2023) Table 4 as quoted by the reproduction study; reproduction study: its own numbers "
        "and settings (the run's paper values manifest). A value stated in another form than the column "
        "(e.g. S_dir on the paper's unknown scale) names it in brackets. This run: mean [95% CI].")


def _reference_text(cell, column: str) -> str:
    refs = [r for r in cell.references if r.column == column] if cell else []
    if not refs:
        return "—"
    return "; ".join(("not reported" if r.value is None else format_number(r.value))
                     + (f" ({r.variant})" if r.variant else "") for r in refs)


def table2(run: RunFiles) -> MetricTable:
    head = headline(run.result)
    if not head.columns:
        raise CannotMake("the run measured none of the headline metrics (S_dir, SC, FID, KID, ID)")
    rows, numbers = [], []
    for attribute, cells in head.rows:
        for col, cell in zip(head.columns, cells, strict=True):
            if cell is None:
                continue
            rows.append({"Attribute": attribute, "Metric": col.title,
                         **{label: _reference_text(cell, c) for c, label in COLUMNS.items()},
                         "This run": cell.text, "N": str(cell.n)})
            numbers.append({"attribute": attribute, "metric": col.key, "variant": col.variant or "",
                            "mean": cell.mean, "ci_low": cell.ci_low, "ci_high": cell.ci_high, "n": cell.n,
                            **{c: next((r.value for r in cell.references if r.column == c), None) for c in COLUMNS}})
    notes = [NOTE] + (["NOT FOR REPORTING: run with --limit (a subset of the images)."]
                      if run.result.not_for_reporting else [])
    return MetricTable("table2", f"Table 2: paper, reproduction study and this run ({run.result.suite})",
                       pd.DataFrame(numbers), pd.DataFrame(rows), notes)


def table2_files(run: RunFiles, out: Path, fmt: str) -> list[Path]:
    table = table2(run)
    md, tex = out / "table2.md", out / "table2.tex"
    write_text(md, to_markdown(table))
    write_text(tex, to_latex(table))
    return [md, tex]
