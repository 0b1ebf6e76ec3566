"""The two kinds of verdict of a run, as the report shows them.

- *Known answers*: what the world guarantees by construction; each passes or FAILS, and a failure fails
  `run --gate`.
- *Paper claims under test*: each holds or does not hold in this world; it never fails a run. A claim whose band
  is open (real faces have no known reconstruction floor) is reported without a verdict.

Each row carries the value with its 95% CI and N, the band (written before any result) and why it is that band.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.outputs.numbers import format_with_ci
from benchmark.outputs.report.table import MetricTable
from benchmark.outputs.results import BAND_ONLY_COLUMNS, CLAIM, KNOWN_ANSWER, Gate, ReferenceValue, RunResult

VERDICT_WORDS = {KNOWN_ANSWER: ("pass", "FAIL"), CLAIM: ("holds", "does not hold in this world")}
REPORTED = "reported (no band)"
TITLES = {KNOWN_ANSWER: "Known answers", CLAIM: "Paper claims under test"}


def verdict_word(gate: Gate) -> str:
    yes, no = VERDICT_WORDS[gate.kind]
    return yes if gate.passed else no


@dataclass(frozen=True)
class VerdictRow:
    kind: str
    check: str  # the metric key of the value (e.g. `target_shift`, `sdir_uva[one_minus_cos]`)
    attribute: str
    against: str  # the reference column (known-answer, paper-claim, reproduction-study, ...)
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    band: str
    rationale: str
    passed: bool | None  # None: reported without a verdict
    verdict: str
    detail: str = ""  # e.g. which factor moved most


def _row(result: RunResult, ref: ReferenceValue, gate: Gate | None) -> VerdictRow:
    mv = result.metrics.get(ref.attribute, {}).get(ref.metric)
    agg = None if mv is None else (mv.value() if ref.variant is None else mv.variants.get(ref.variant))
    check = ref.metric + (f"[{ref.variant}]" if ref.variant else "")
    return VerdictRow(
        kind=gate.kind if gate else ref.kind, check=check, attribute=ref.attribute, against=ref.column,
        mean=agg.mean if agg else (gate.value if gate else None), ci_low=agg.ci_low if agg else None,
        ci_high=agg.ci_high if agg else None, n=agg.n if agg else None,
        band=ref.band.describe() if ref.band is not None else "—", rationale=ref.band_rationale,
        passed=None if gate is None else gate.passed, verdict=REPORTED if gate is None else verdict_word(gate),
        detail=str(mv.spec.get("note", "")) if mv else "")


def verdict_rows(result: RunResult) -> list[VerdictRow]:
    """One row per verdict, in the order the run filed them, plus each check reported without a verdict."""
    gates = {g.name: g for g in result.gates}
    rows = []
    for ref in result.references:
        gate = gates.get(ref.gate_name())
        if gate is not None:
            rows.append(_row(result, ref, gate))
        elif not ref.gated and ref.column in BAND_ONLY_COLUMNS and ref.metric in result.metrics.get(ref.attribute, {}):
            rows.append(_row(result, ref, None))  # a check with an open band: the value, no verdict
    return rows


def verdict_table(result: RunResult, kind: str) -> MetricTable | None:
    rows = [r for r in verdict_rows(result) if r.kind == kind]
    if not rows:
        return None
    numbers = pd.DataFrame([{"check": r.check, "attribute": r.attribute, "against": r.against, "mean": r.mean,
                             "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n, "band": r.band,
                             "passed": r.passed, "verdict": r.verdict} for r in rows])
    display = pd.DataFrame([{"Check": r.check, "Attribute": r.attribute,
                             "Value [95% CI]": format_with_ci(r.mean, r.ci_low, r.ci_high)
                             + (f" ({r.detail})" if r.detail else ""),
                             "N": "—" if r.n is None else str(r.n), "Band": r.band, "Verdict": r.verdict,
                             "Why this band": r.rationale} for r in rows])
    held = [r for r in rows if r.passed is not None]
    word = "pass" if kind == KNOWN_ANSWER else "hold"
    title = f"{TITLES[kind]}: {sum(bool(r.passed) for r in held)} of {len(held)} {word}"
    notes = ["Bands were written before any result and are never moved; a value outside its band is a finding."]
    if kind == CLAIM:
        notes.append("A claim never fails a run (`run --gate` fails on known answers only).")
    if result.not_for_reporting:
        notes.insert(0, "NOT FOR REPORTING: run with --limit (a subset of the images).")
    return MetricTable("known_answers" if kind == KNOWN_ANSWER else "claims", title, numbers, display, notes)


def count_line(result: RunResult) -> str:
    """`known answers 8 of 8 pass · claims 5 of 19 hold` (what is there)."""
    parts = []
    for kind, gates, word in ((KNOWN_ANSWER, result.known_answers(), "pass"), (CLAIM, result.claims(), "hold")):
        if gates:
            parts.append(f"{TITLES[kind].lower()}: {sum(g.passed for g in gates)} of {len(gates)} {word}")
    return " · ".join(parts)
