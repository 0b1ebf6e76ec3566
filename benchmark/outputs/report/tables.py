"""Tables per metric: the paper, the reproduction study and this run side by side, with ↑/↓ and PASS/FAIL.

Written as Markdown, CSV (numbers unformatted, for other tools) and LaTeX, all from one pandas frame.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.core.atomic import write_text
from benchmark.outputs.ablation import split_arm
from benchmark.outputs.numbers import format_number, format_with_ci
from benchmark.outputs.report.table import MetricTable
from benchmark.outputs.report.verdicts import verdict_word
from benchmark.outputs.results import BAND_ONLY_COLUMNS, MetricValue, ReferenceValue, RunResult

ARROW = {"higher": "↑", "lower": "↓"}
REFERENCE_COLUMNS = {"paper": "Paper", "reproduction-study": "Reproduction study"}

SDIR_CAVEAT = (
    "S_dir scale caveat: this run reports the raw cosine cos(ΔI, ΔT) and, as the variant `one_minus_cos`, "
    "1 − cos (the reproduction study's convention, which it chose so its numbers would land on the paper's "
    "scale). The paper's Table 4 values (0.805–0.991) are implausible for a raw directional cosine (the "
    "reproduction study measured 0.007–0.09), and the paper does not say which scale it used, so the paper "
    "column is not directly comparable with either (asyrp-reference.md §10; docs/metrics.md)."
)
NOT_REPORTED = "not reported"


def _reference_lookup(refs: list[ReferenceValue]) -> dict[tuple[str, str, str], ReferenceValue]:
    return {(r.metric, r.attribute, r.column): r for r in refs}


def _columns(result: RunResult, metric: str) -> list[str]:
    """Reference columns: the paper and the reproduction study whenever the suite has paper values (a missing one
    reads "—"), then any other reference (e.g. a committed baseline). A known answer or a paper's claim has a band
    but no value: it gets no column, only its band and verdict; a suite without paper values (the synthetic world)
    gets no empty paper columns."""
    seen = {r.column for r in result.references if r.metric == metric}
    if seen and seen <= set(BAND_ONLY_COLUMNS):
        return sorted(seen)
    has_paper_values = any(r.column in REFERENCE_COLUMNS for r in result.references)
    return (list(REFERENCE_COLUMNS) if has_paper_values else []) + sorted(seen - set(REFERENCE_COLUMNS))


def metric_table(result: RunResult, metric: str) -> MetricTable:
    attributes = [a for a in result.metrics if metric in result.metrics[a]]
    values: dict[str, MetricValue] = {a: result.metrics[a][metric] for a in attributes}
    first = next(iter(values.values()))
    arrow = ARROW[first.direction]
    variants = sorted({v for mv in values.values() for v in mv.variants})
    lookup = _reference_lookup(result.references)
    gate_by_name = {g.name: g for g in result.gates}
    columns = _columns(result, metric)

    num_rows, disp_rows, notes = [], [], []
    for attr in attributes:
        mv = values[attr]
        domain = result.attributes[attr].domain if attr in result.attributes else ""
        num = {"attribute": attr, "domain": domain}
        disp = {"Attribute": attr, "Domain": domain}
        banded = _reference_cells(num, disp, [lookup.get((metric, attr, col)) for col in columns], columns)
        _value_cells(num, disp, mv, arrow, variants)
        if any(r.metric == metric and r.band is not None for r in result.references):
            _band_cells(num, disp, banded, gate_by_name)
        for code, ids in mv.flags.items():
            notes.append(f"{attr}: {code} on {len(ids)} of {mv.n} images")
        num_rows.append(num)
        disp_rows.append(disp)

    spec_name = first.spec.get("metric") or first.spec.get("name") or metric  # e.g. sdir@1
    title = f"{metric} {arrow} ({spec_name})"
    notes += _reference_notes(result, metric)
    if metric.startswith("sdir") or str(spec_name).startswith("sdir"):
        notes.insert(0, SDIR_CAVEAT)
    if result.not_for_reporting:
        notes.insert(0, "NOT FOR REPORTING: run with --limit (a subset of the images).")
    return MetricTable(metric, title, pd.DataFrame(num_rows), pd.DataFrame(disp_rows), _dedupe(notes))


def _reference_cells(num: dict, disp: dict, refs: list[ReferenceValue | None], columns: list[str],
                     ) -> list[ReferenceValue]:
    """One row's reference columns (`refs[i]` is column i's value, or None); returns the references with a band."""
    banded = []
    for col, ref in zip(columns, refs, strict=True):
        label = REFERENCE_COLUMNS.get(col, col)
        if ref is not None and ref.band is not None:
            banded.append(ref)
        if col in BAND_ONLY_COLUMNS:
            continue
        num[col] = ref.value if ref else None
        if ref is not None and ref.variant:
            num[f"{col}_variant"] = ref.variant
        disp[label] = (NOT_REPORTED if ref is not None and ref.value is None
                       else format_number(ref.value if ref else None))
    return banded


def _value_cells(num: dict, disp: dict, mv: MetricValue, arrow: str, variants: list[str]) -> None:
    """One row's value of this run, its variants, and N."""
    num.update(mean=mv.mean, ci_low=mv.ci_low, ci_high=mv.ci_high, n=mv.n)
    disp[f"This run {arrow}"] = format_with_ci(mv.mean, mv.ci_low, mv.ci_high)
    for var in variants:
        agg = mv.variants.get(var)
        num[f"{var}_mean"] = agg.mean if agg else None
        num[f"{var}_ci_low"] = agg.ci_low if agg else None
        num[f"{var}_ci_high"] = agg.ci_high if agg else None
        disp[f"This run ({var})"] = format_with_ci(agg.mean, agg.ci_low, agg.ci_high) if agg else "—"
    disp["N"] = str(mv.n)


def _band_cells(num: dict, disp: dict, banded: list[ReferenceValue], gate_by_name: dict) -> None:
    """One row's bands and verdicts (from the run's gates, "no verdict" for a reported-only band)."""
    verdicts, bands = [], []
    for ref in banded:
        gate = gate_by_name.get(ref.gate_name())
        on = f" on {ref.variant}" if ref.variant else ""
        bands.append(f"{ref.band.describe()}{on} ({REFERENCE_COLUMNS.get(ref.column, ref.column)})")
        if not ref.gated:
            verdicts.append("no verdict")
        else:
            verdicts.append("—" if gate is None else verdict_word(gate))
        num[f"band_{ref.column}_low"] = ref.band.low
        num[f"band_{ref.column}_high"] = ref.band.high
        num[f"passed_{ref.column}"] = None if gate is None else gate.passed
    disp["Band"] = "; ".join(bands) or "—"
    disp["Verdict"] = " / ".join(verdicts) or "—"


def _reference_notes(result: RunResult, metric: str) -> list[str]:
    """One note per distinct provenance or band rationale of the metric's references, naming the attributes."""
    grouped: dict[str, list[str]] = {}
    for ref in result.references:
        if ref.metric != metric:
            continue
        col = REFERENCE_COLUMNS.get(ref.column, ref.column)
        if ref.provenance:
            grouped.setdefault(f"{col}: {ref.provenance}", []).append(ref.attribute)
        if ref.band is not None and ref.band_rationale:
            grouped.setdefault(f"Band vs {col}: {ref.band_rationale}", []).append(ref.attribute)
    notes = []
    for text, attrs in grouped.items():
        head, _, body = text.partition(": ")
        notes.append(f"{head} ({', '.join(dict.fromkeys(attrs))}): {body}")
    return notes


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def metric_keys(result: RunResult) -> list[str]:
    keys: list[str] = []
    for per_attr in result.metrics.values():
        keys += [k for k in per_attr if k not in keys]
    return keys


def ablation_table(result: RunResult) -> MetricTable | None:
    """Every metric of every f_t arm side by side (rows: attribute × arm), or None for a run without arms."""
    keys = [k for k in result.metrics if split_arm(k)[1] is not None]
    if not keys:
        return None
    metrics = metric_keys(result)
    num_rows, disp_rows = [], []
    for key in keys:
        attribute, arm = split_arm(key)
        num: dict[str, object] = {"attribute": attribute, "arm": arm}
        disp = {"Attribute": attribute, "f_t": arm}
        for m in metrics:
            mv = result.metrics[key].get(m)
            num.update({f"{m}_mean": mv and mv.mean, f"{m}_ci_low": mv and mv.ci_low,
                        f"{m}_ci_high": mv and mv.ci_high})
            arrow = ARROW[mv.direction] if mv else ""
            disp[f"{m} {arrow}".strip()] = format_with_ci(mv.mean, mv.ci_low, mv.ci_high) if mv else "—"
        num_rows.append(num)
        disp_rows.append(disp)
    notes = ["Each f_t arm was trained on the same images, attributes, seeds and steps; brackets are 95% CIs."]
    if result.not_for_reporting:
        notes.insert(0, "NOT FOR REPORTING: run with --limit (a subset of the images).")
    return MetricTable("ablation", "f_t ablation: every metric per arm", pd.DataFrame(num_rows),
                       pd.DataFrame(disp_rows), notes)


def training_speed_table(training: dict, *, not_for_reporting: bool = False) -> MetricTable | None:
    """Per attribute with a `conv` arm and others: each arm's running-mean loss, first and final, and the
    optimiser steps to reach the conv arm's final loss (`benchmark.outputs.training_speed`); None otherwise."""
    from benchmark.outputs.training_speed import speed_rows

    rows = speed_rows(training)
    if not rows:
        return None
    disp = [{"Attribute": r["attribute"], "f_t arm": r["arm"], "starts from": r["init_from"] or "scratch",
             "optimiser steps": r["steps"], "first loss": format_number(r["first_loss"]), "final loss": format_number(r["final_loss"]),
             "target (conv final)": format_number(r["target"]),
             "steps to target": "never" if r["steps_to_target"] is None else
             f"{r['steps_to_target']} (rollout {r['rollouts_to_target']})"} for r in rows]
    w = rows[0]["window"]
    notes = [f"Losses are running means over {w} rollouts (a rollout: one batch from t0 down to t_edit). The target "
             "is the conv arm's final running mean; 'steps to target' is the first optimiser step, at the end of a "
             "rollout, whose running mean is at or below it (the conv arm reaches it by its last step at the "
             "latest)."]
    if not_for_reporting:
        notes.insert(0, "NOT FOR REPORTING: run with --limit (a subset of the images).")
    return MetricTable("training_speed", "f_t arms: steps to reach the conv arm's final training loss",
                       pd.DataFrame(rows), pd.DataFrame(disp), notes)


def is_check(mv: MetricValue) -> bool:
    """A value of a known-answer check or a claim (its table is the verdict table), not a measured metric."""
    return str(mv.spec.get("metric", "")).split(":")[0] in BAND_ONLY_COLUMNS


def measured_keys(result: RunResult) -> list[str]:
    """Metric keys with their own table: not the checks (verdict tables) nor the attribute shifts (two tables)."""
    from benchmark.outputs.report.shift_tables import shift_keys

    shifts = set(shift_keys(result))
    return [k for k in metric_keys(result) if k not in shifts
            and not any(is_check(per[k]) for per in result.metrics.values() if k in per)]


def verdict_tables(result: RunResult) -> list[MetricTable]:
    from benchmark.outputs.report.verdicts import verdict_table
    from benchmark.outputs.results import CLAIM, KNOWN_ANSWER

    return [t for kind in (KNOWN_ANSWER, CLAIM) if (t := verdict_table(result, kind)) is not None]


def detail_tables(result: RunResult) -> list[MetricTable]:
    """The ablation (if any), one table per measured metric, and the attribute-shift detail."""
    from benchmark.outputs.report.shift_tables import factor_shift_table, target_shift_table

    ablation = ablation_table(result)
    shifts = [t for t in (target_shift_table(result), factor_shift_table(result)) if t is not None]
    return ([ablation] if ablation is not None else []) + [metric_table(result, m) for m in measured_keys(result)] \
        + shifts


def all_tables(result: RunResult) -> list[MetricTable]:
    """Every table of the report: the two verdict groups, then the detail."""
    return verdict_tables(result) + detail_tables(result)


def to_markdown(table: MetricTable) -> str:
    notes = "".join(f"\n- {n}" for n in table.notes)
    return f"### {table.title}\n\n{table.display.to_markdown(index=False)}\n" + (f"\nNotes:{notes}\n" if notes else "")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
# pdflatex without extra packages cannot typeset these; give their LaTeX spelling.
_LATEX_UNICODE = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "—": "---", "–": "--", "−": "$-$", "≥": r"$\geq$",
                  "≤": r"$\leq$", "Δ": r"$\Delta$", "§": r"\S{}", "×": r"$\times$", "λ": r"$\lambda$", "·": r"$\cdot$"}


def latex_text(s: object) -> str:
    """Escape LaTeX's special characters and spell the few non-ASCII symbols the tables use."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(s))
    for uni, tex in _LATEX_UNICODE.items():
        out = out.replace(uni, tex)
    return out


def to_latex(table: MetricTable) -> str:
    frame = table.display.rename(columns=latex_text).map(latex_text)
    caption = latex_text(table.title + (". " + " ".join(table.notes) if table.notes else ""))
    return frame.to_latex(index=False, escape=False, caption=caption, label=f"tab:{table.key}")


def write_tables(result: RunResult, folder: Path, extra: list[MetricTable] = ()) -> list[Path]:
    """`tables/<metric>.{md,csv,tex}` (and of each `extra` table) and `tables/all.md`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written, combined = [], []
    for table in [*all_tables(result), *extra]:
        md = to_markdown(table)
        combined.append(md)
        for ext, text in (("md", md), ("csv", table.numbers.to_csv(index=False)), ("tex", to_latex(table))):
            path = folder / f"{table.key}.{ext}"
            write_text(path, text)
            written.append(path)
    all_md = folder / "all.md"
    write_text(all_md, f"# {result.suite}: results\n\n" + "\n".join(combined))
    written.append(all_md)
    return written
