"""What a finished run prints on stdout (without `--json`)."""

from __future__ import annotations

from pathlib import Path


def run_summary(result, run_dir: Path) -> str:
    from benchmark.outputs.report.tables import all_tables, to_markdown

    lines = [f"{result.suite}: {run_dir}"]
    if result.not_for_reporting:
        lines.append("NOT FOR REPORTING (--limit)")
    lines += [note for note in result.run.notes]
    lines += ["", *(to_markdown(t) for t in all_tables(result))]
    if result.gates:
        failed = result.failed_gates()
        lines.append(f"gates: {len(result.gates) - len(failed)}/{len(result.gates)} pass"
                     + "".join(f"\n  FAIL {g.name}: {g.value} not in {g.band.describe()}" for g in failed))
    lines.append(f"report: {run_dir / 'report' / 'index.html'}")
    return "\n".join(lines)
