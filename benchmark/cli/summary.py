"""What a finished run prints on stdout (without `--json`): one compact summary.

Per attribute the headline metrics with their CIs (`benchmark.outputs.headline`), the known answers (n of n pass),
the paper's claims (k of m hold) and the report's path. Numbers are rounded to what their CI supports
(`benchmark.outputs.numbers`). Rendered with rich; no colour or box-drawing when stdout is not a terminal.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from benchmark.outputs.headline import headline
from benchmark.outputs.numbers import format_number
from benchmark.outputs.results import Gate, RunResult

MAX_LISTED = 8  # failing known answers are all listed; claims that do not hold, up to this many


CELL_WIDTH = 25  # "0.0379 [0.0294, 0.0432]" and its padding
LABEL_WIDTH = 18


def _metrics_tables(result: RunResult, width: int) -> list[Table]:
    """Rows: the headline metrics; columns: the attributes, as many per table as the terminal holds without
    wrapping a cell (paper-table's ten edits become three tables of four)."""
    head = headline(result)
    if not head.columns or not head.rows:
        return []
    per_table = max(1, (width - LABEL_WIDTH) // CELL_WIDTH)
    tables = []
    for start in range(0, len(head.rows), per_table):
        rows = head.rows[start:start + per_table]
        table = Table(show_edge=False, pad_edge=False, header_style="bold", box=box.SIMPLE_HEAD)
        table.add_column("mean [95% CI]", no_wrap=True)
        for attribute, _ in rows:
            table.add_column(attribute, overflow="fold")
        for j, col in enumerate(head.columns):
            table.add_row(col.title, *(cells[j].text if cells[j] else "—" for _, cells in rows))
        tables.append(table)
    return tables


def _gate_line(g: Gate) -> str:
    return f"{g.name}: {format_number(g.value)} (band {g.band.describe()})"


def _verdict_lines(result: RunResult) -> list[str]:
    lines = []
    known, claims = result.known_answers(), result.claims()
    if known:
        failed = [g for g in known if not g.passed]
        lines.append(f"known answers: {len(known) - len(failed)} of {len(known)} pass")
        lines += [f"  FAIL {_gate_line(g)}" for g in failed]
    if claims:
        not_held = [g for g in claims if not g.passed]
        lines.append(f"paper claims under test: {len(claims) - len(not_held)} of {len(claims)} hold")
        lines += [f"  does not hold in this world: {_gate_line(g)}" for g in not_held[:MAX_LISTED]]
        if len(not_held) > MAX_LISTED:
            lines.append(f"  … and {len(not_held) - MAX_LISTED} more (see the report)")
    return lines


def _width() -> int:
    """The terminal's width, or 120 columns when stdout is a file or a pipe."""
    import sys

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else 120


def run_summary(result: RunResult, run_dir: Path, *, width: int | None = None) -> str:
    buffer = io.StringIO()
    width = width or _width()
    console = Console(file=buffer, width=width,
                      force_terminal=False, color_system=None, highlight=False, soft_wrap=False)
    console.print(f"{result.suite}" + (f" (profile {result.run.profile})" if result.run.profile else "")
                  + f": {run_dir}", markup=False)
    if result.not_for_reporting:
        console.print("NOT FOR REPORTING (--limit)", markup=False)
    for note in result.run.notes:
        console.print(note, markup=False)
    for table in _metrics_tables(result, width):
        console.print(table)
    for line in _verdict_lines(result):
        console.print(line, markup=False)
    console.print(f"report: {run_dir / 'report' / 'index.html'}", markup=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
