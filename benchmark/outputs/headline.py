"""The headline numbers of a run: per attribute, S_dir (raw and 1 − cos), SC (pixel agreement and mIoU), FID,
KID, ID and, in a world with a factor oracle, the target factor's shift; each with its CI and, where they exist,
the paper's and the reproduction study's values. The terminal summary and the report's summary table both read
them from here, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmark.outputs.numbers import format_number, format_with_ci, half_width
from benchmark.outputs.results import (
    BAND_ONLY_COLUMNS,
    KNOWN_ANSWER_COLUMN,
    MetricValue,
    RunResult,
)

ARROW = {"higher": "↑", "lower": "↓"}
REFERENCE_LABELS = {"paper": "paper", "reproduction-study": "study"}

# (metric name in the spec, variant, label): the headline columns, in order
HEADLINE_METRICS = (
    ("sdir@1", None, "S_dir"),
    ("sdir@1", "one_minus_cos", "1 − cos"),
    ("sc@1", None, "SC"),
    ("sc@1", "miou", "SC mIoU"),
    ("fid@1", None, "FID"),
    ("kid@1", None, "KID"),
    ("id@1", None, "ID"),
)
TARGET_SHIFT_KEY = "target_shift"
TARGET_SHIFT_METRIC = f"{KNOWN_ANSWER_COLUMN}:target_shift"  # the oracle's, not the CLIP projection's


@dataclass(frozen=True)
class Column:
    key: str  # the metric key in `results.metrics[attribute]`
    variant: str | None
    label: str
    direction: str

    @property
    def title(self) -> str:
        return f"{self.label} {ARROW.get(self.direction, '')}".strip()


@dataclass(frozen=True)
class Reference:
    column: str  # "paper", "reproduction-study", ...
    value: float | None
    variant: str | None

    @property
    def text(self) -> str:
        label = REFERENCE_LABELS.get(self.column, self.column)
        value = "not reported" if self.value is None else format_number(self.value)
        return f"{label} {value}" + (f" ({self.variant})" if self.variant else "")


@dataclass(frozen=True)
class Cell:
    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int
    references: list[Reference] = field(default_factory=list)

    @property
    def text(self) -> str:
        return format_with_ci(self.mean, self.ci_low, self.ci_high)

    @property
    def mean_text(self) -> str:
        return format_number(self.mean, half_width(self.ci_low, self.ci_high))


@dataclass(frozen=True)
class Headline:
    columns: list[Column]
    rows: list[tuple[str, list[Cell | None]]]  # (attribute, one cell per column)


def _metric_name(mv: MetricValue) -> str:
    return str(mv.spec.get("metric") or mv.spec.get("name") or "")


def _is_check(mv: MetricValue) -> bool:
    return _metric_name(mv).split(":")[0] in BAND_ONLY_COLUMNS


def row_attributes(result: RunResult) -> list[str]:
    """The edited attributes (not `ddim` or `smiling+tanned`, the checks' pseudo-attributes), in the run's order."""
    if result.attributes:
        return list(result.attributes)
    return [a for a, per in result.metrics.items() if any(not _is_check(mv) for mv in per.values())]


def headline_columns(result: RunResult) -> list[Column]:
    """Every headline metric the run measured, one column per (metric key, variant), in the fixed order."""
    keys: dict[str, MetricValue] = {}
    for attribute in row_attributes(result):
        for key, mv in result.metrics.get(attribute, {}).items():
            keys.setdefault(key, mv)
    columns = []
    for name, variant, label in HEADLINE_METRICS:
        same = [k for k, mv in keys.items() if _metric_name(mv) == name]
        for key in same:
            if variant is not None and variant not in keys[key].variants:
                continue
            shown = label if len(same) == 1 else f"{label} ({key})"
            columns.append(Column(key, variant, shown, keys[key].direction))
    if any(_metric_name(mv) == TARGET_SHIFT_METRIC for k, mv in keys.items() if k == TARGET_SHIFT_KEY):
        columns.append(Column(TARGET_SHIFT_KEY, None, "target shift", "higher"))
    return columns


def _references(result: RunResult, column: Column, attribute: str, columns: list[Column]) -> list[Reference]:
    """The paper's and the study's values of this cell: those stated in this column's variant, and, on the
    primary column, those in a variant no column shows (S_dir's paper scale)."""
    shown = {c.variant for c in columns if c.key == column.key}
    out = []
    for ref in result.references:
        if ref.metric != column.key or ref.attribute != attribute or ref.column not in REFERENCE_LABELS:
            continue
        if ref.variant == column.variant:
            out.append(Reference(ref.column, ref.value, None))
        elif column.variant is None and ref.variant not in shown:
            out.append(Reference(ref.column, ref.value, ref.variant))
    return out


def headline(result: RunResult) -> Headline:
    columns = headline_columns(result)
    rows = []
    for attribute in row_attributes(result):
        per = result.metrics.get(attribute, {})
        cells: list[Cell | None] = []
        for col in columns:
            mv = per.get(col.key)
            agg = None if mv is None else (mv.value() if col.variant is None else mv.variants.get(col.variant))
            cells.append(None if agg is None else Cell(agg.mean, agg.ci_low, agg.ci_high, agg.n,
                                                       _references(result, col, attribute, columns)))
        rows.append((attribute, cells))
    return Headline(columns, rows)
