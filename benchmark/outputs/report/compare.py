"""`compare A B`: per attribute and metric, B − A with both CIs, and whether the CIs overlap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.outputs.results import load_results
from benchmark.outputs.run_folder import require_finished


@dataclass(frozen=True)
class Comparison:
    frame: pd.DataFrame
    notes: list[str]

    def markdown(self) -> str:
        body = self.frame.to_markdown(index=False, floatfmt=".4f") if not self.frame.empty else "(nothing in common)"
        return body + "".join(f"\n- {n}" for n in self.notes)


def _ci(mv) -> str:
    return "—" if mv.ci_low is None or mv.ci_high is None else f"[{mv.ci_low:.4f}, {mv.ci_high:.4f}]"


def compare_runs(a: str | Path, b: str | Path) -> Comparison:
    ra, rb = load_results(require_finished(a)), load_results(require_finished(b))
    rows, notes = [], []
    if ra.suite != rb.suite:
        notes.append(f"different suites: A is {ra.suite}, B is {rb.suite}")
    for attr in [x for x in ra.metrics if x in rb.metrics]:
        for key in [k for k in ra.metrics[attr] if k in rb.metrics[attr]]:
            ma, mb = ra.metrics[attr][key], rb.metrics[attr][key]
            if ma.spec != mb.spec:
                notes.append(f"{attr}/{key}: the metric specs differ, so the values are not comparable")
            better = (mb.mean - ma.mean) * (1 if ma.direction == "higher" else -1)
            have_cis = None not in (ma.ci_low, ma.ci_high, mb.ci_low, mb.ci_high)
            rows.append({"attribute": attr, "metric": key, "direction": "↑" if ma.direction == "higher" else "↓",
                         "A": ma.mean, "A_ci": _ci(ma), "B": mb.mean, "B_ci": _ci(mb), "delta": mb.mean - ma.mean,
                         "B_better": better > 0,
                         "cis_overlap": (not (mb.ci_low > ma.ci_high or ma.ci_low > mb.ci_high)) if have_cis
                         else None,
                         "n_A": ma.n, "n_B": mb.n})
    only = sorted({(x, k) for x in ra.metrics for k in ra.metrics[x]} ^ {(x, k) for x in rb.metrics
                                                                             for k in rb.metrics[x]})
    if only:
        notes.append("measured in only one run: " + ", ".join(f"{x}/{k}" for x, k in only))
    if ra.not_for_reporting or rb.not_for_reporting:
        notes.append("at least one run used --limit (NOT FOR REPORTING)")
    return Comparison(pd.DataFrame(rows), notes)
