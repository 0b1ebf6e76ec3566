"""The attribute-shift detail (a world with a factor oracle): two tables instead of one wide table per target.

- *Target shifts*: rows are attributes, columns the suite's `attribute-shift@1` metrics (one per target factor and
  direction); each cell the shift of that target (mean [95% CI]) and, beneath it, the mean non-target change.
- *Per-factor shifts*: rows are attributes, columns the oracle's factors; each cell the factor's raw change
  (edit − reference, in the factor's own units). The per-factor shifts of one edit are the same whichever target
  a metric names, so they are shown once.
"""

from __future__ import annotations

import pandas as pd

from benchmark.outputs.numbers import format_with_ci
from benchmark.outputs.report.table import MetricTable
from benchmark.outputs.results import RunResult

SHIFT_METRIC = "attribute-shift@1"
FACTOR_PREFIX = "shift_"
NON_TARGET = "non_target_change"
ARROW = {"increase": "↑", "decrease": "↓"}


def shift_keys(result: RunResult) -> list[str]:
    """Metric keys measured with `attribute-shift@1`, in the order the suite lists them."""
    keys: list[str] = []
    for per in result.metrics.values():
        keys += [k for k, mv in per.items() if mv.spec.get("metric") == SHIFT_METRIC and k not in keys]
    return keys


def _attributes(result: RunResult, keys: list[str]) -> list[str]:
    return [a for a, per in result.metrics.items() if any(k in per for k in keys)]


def _target_label(result: RunResult, key: str) -> str:
    spec = next(per[key].spec for per in result.metrics.values() if key in per)
    factor, direction = spec.get("target_factor", key), spec.get("target_direction", "increase")
    return f"{factor} {ARROW.get(direction, '')}".strip()


def _notes(result: RunResult, extra: list[str]) -> list[str]:
    notes = list(extra)
    if result.not_for_reporting:
        notes.insert(0, "NOT FOR REPORTING: run with --limit (a subset of the images).")
    return notes


def target_shift_table(result: RunResult) -> MetricTable | None:
    keys = shift_keys(result)
    if not keys:
        return None
    num_rows, disp_rows = [], []
    for attr in _attributes(result, keys):
        num: dict[str, object] = {"attribute": attr}
        disp = {"Attribute": attr, "Domain": result.attributes[attr].domain if attr in result.attributes else ""}
        for key in keys:
            mv = result.metrics[attr].get(key)
            other = mv.variants.get(NON_TARGET) if mv else None
            num.update({f"{key}_mean": mv and mv.mean, f"{key}_ci_low": mv and mv.ci_low,
                        f"{key}_ci_high": mv and mv.ci_high, f"{key}_{NON_TARGET}": other and other.mean})
            cell = format_with_ci(mv.mean, mv.ci_low, mv.ci_high) if mv else "—"
            if other is not None:
                cell += f" · non-target {format_with_ci(other.mean, other.ci_low, other.ci_high)}"
            disp[f"{_target_label(result, key)} ({key})"] = cell
        disp["N"] = str(next(result.metrics[attr][k].n for k in keys if k in result.metrics[attr]))
        num_rows.append(num)
        disp_rows.append(disp)
    notes = _notes(result, [
        "Each column is one target factor and direction, signed so that the intended direction is positive "
        "(edit − reference, the oracle's measurement); each attribute's own target is the column its prompt names.",
        "non-target: the mean |change| of the other factors, each as a fraction of its range."])
    return MetricTable("shift_targets", "Attribute shift: target factors", pd.DataFrame(num_rows),
                       pd.DataFrame(disp_rows), notes)


def _factors(result: RunResult, keys: list[str]) -> list[str]:
    names: list[str] = []
    for per in result.metrics.values():
        for key in keys:
            if key in per:
                names += [v for v in per[key].variants if v.startswith(FACTOR_PREFIX) and v not in names]
    return names


def factor_shift_table(result: RunResult) -> MetricTable | None:
    keys = shift_keys(result)
    factors = _factors(result, keys)
    if not factors:
        return None
    num_rows, disp_rows = [], []
    for attr in _attributes(result, keys):
        mv = next(result.metrics[attr][k] for k in keys if k in result.metrics[attr])
        num: dict[str, object] = {"attribute": attr}
        disp = {"Attribute": attr}
        for factor in factors:
            agg = mv.variants.get(factor)
            name = factor.removeprefix(FACTOR_PREFIX)
            num.update({f"{name}_mean": agg and agg.mean, f"{name}_ci_low": agg and agg.ci_low,
                        f"{name}_ci_high": agg and agg.ci_high})
            disp[name] = format_with_ci(agg.mean, agg.ci_low, agg.ci_high) if agg else "—"
        num_rows.append(num)
        disp_rows.append(disp)
    notes = _notes(result, ["Raw change of every factor (edit − reference, in the factor's own units; ranges in "
                            "docs/synthetic.md), mean [95% CI] over the images."])
    return MetricTable("shift_factors", "Attribute shift: every factor", pd.DataFrame(num_rows),
                       pd.DataFrame(disp_rows), notes)
