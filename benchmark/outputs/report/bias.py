"""Metrics of a finished run, stratified by a CelebA attribute (`run_all.py bias RUN_DIR --by Male Young`).

For each grouping attribute the run's images split in two groups (attribute = +1 / −1 in the attribute file).
Per group:

- per-image metrics (S_dir, SC, ID, ...): the mean with scipy's percentile-bootstrap 95% CI and N
  (`metrics.aggregate.aggregate_per_image`, the same aggregate the run reports);
- set metrics (FID, KID): the metric recomputed on the group's images from the feature sets the run stored, by the
  metric's own code (`metrics.fid.FEATURE_STATISTICS`) and spec, with its paired bootstrap CI.

The between-group difference (group − rest) gets a CI from a two-sample bootstrap that resamples each group
independently (scipy `bootstrap(..., paired=False)`). With few images per group every interval is wide: the report
prints N per group, warns below `SMALL_N`, and refuses below `MIN_N`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmark.core.errors import BenchError, DataError
from benchmark.outputs.report.groups import AttributeTable, ImageRef, group_labels

log = logging.getLogger("benchmark.bias")

MIN_N = 2
SMALL_N = 20
CONFIDENCE = 0.95
PER_IMAGE_RESAMPLES = 1000


@dataclass(frozen=True)
class GroupValue:
    group: str
    n: int
    mean: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class BiasRow:
    """One metric on one edit, split by one attribute: the two groups and their difference (`a` − `b`)."""

    by: str
    edit: str
    metric: str
    kind: str  # "per-image" or "set"
    direction: str
    a: GroupValue
    b: GroupValue
    difference: float
    difference_ci_low: float
    difference_ci_high: float

    def flat(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("a", "b")}
        for side in ("a", "b"):
            out |= {f"{side}_{k}": v for k, v in asdict(getattr(self, side)).items()}
        return out


def split_indices(labels: Sequence[str], by: str) -> tuple[tuple[str, np.ndarray], tuple[str, np.ndarray]]:
    """The two groups' image indices, the attribute's group first; refuses a group of fewer than MIN_N images."""
    labels = list(labels)
    names = (by, f"not {by}")
    groups = tuple((name, np.array([i for i, g in enumerate(labels) if g == name], dtype=np.int64))
                   for name in names)
    small = [f"{name}: N = {len(idx)}" for name, idx in groups if len(idx) < MIN_N]
    if small:
        raise DataError(f"grouping by {by} leaves too few images to compare ({'; '.join(small)}; need N ≥ {MIN_N} "
                        "per group)", fix=f"drop {by} from --by, or run the suite on more images")
    return groups  # type: ignore[return-value]


def two_sample_difference(statistic: Callable[..., float], a: np.ndarray, b: np.ndarray, *,
                          resamples: int, seed: int, vectorized: bool = False) -> tuple[float, float, float]:
    """statistic(a) − statistic(b) and its percentile-bootstrap CI, resampling each group independently.
    `vectorized`: `statistic(x, axis=-1)` reduces the last axis (scipy then scores all resamples at once)."""
    from scipy.stats import bootstrap

    value = float(statistic(a) - statistic(b))

    def difference(x, y, axis=-1):
        return statistic(x, axis=axis) - statistic(y, axis=axis) if vectorized else statistic(x) - statistic(y)

    res = bootstrap((a, b), difference, vectorized=vectorized, paired=False,
                    n_resamples=resamples, confidence_level=CONFIDENCE, method="percentile",
                    random_state=np.random.default_rng(seed))
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


def per_image_row(by: str, edit: str, metric: str, direction: str, values: np.ndarray, groups, *,
                  seed: int, resamples: int = PER_IMAGE_RESAMPLES) -> BiasRow:
    """Group means of per-image values with bootstrap CIs, and the difference of the means."""
    from metrics.aggregate import aggregate_per_image

    sides = []
    for name, idx in groups:
        agg = aggregate_per_image(values[idx], resamples=resamples, seed=seed)
        sides.append(GroupValue(name, agg.n, agg.mean, agg.ci_low, agg.ci_high))
    (_, ia), (_, ib) = groups
    diff, low, high = two_sample_difference(np.mean, values[ia], values[ib], resamples=resamples, seed=seed,
                                            vectorized=True)
    return BiasRow(by, edit, metric, "per-image", direction, *sides, diff, low, high)


def set_metric_row(by: str, edit: str, metric: str, direction: str, spec: dict, f_edit: np.ndarray,
                   f_ref: np.ndarray, groups, *, seed: int) -> BiasRow:
    """A set metric (FID, KID) recomputed on each group's images from stored features, by the metric's own code."""
    from metrics.fid import FEATURE_STATISTICS

    if spec.get("metric") not in FEATURE_STATISTICS:
        raise BenchError(f"set metric {spec.get('metric')!r} cannot be recomputed per group from features",
                         fix=f"known: {', '.join(FEATURE_STATISTICS)}")
    value_fn, replicate_fn = FEATURE_STATISTICS[spec["metric"]]
    spec = {**spec, "bootstrap_seed": seed}
    sides = []
    for name, idx in groups:
        agg = value_fn(f_edit[idx], f_ref[idx], spec)
        sides.append(GroupValue(name, agg.n, agg.mean, agg.ci_low, agg.ci_high))
    (_, ia), (_, ib) = groups

    def statistic(idx: np.ndarray) -> float:
        idx = np.asarray(idx, dtype=np.int64)
        return replicate_fn(f_edit, f_ref, spec, idx)

    _, low, high = two_sample_difference(statistic, ia, ib, resamples=max(2, spec["bootstrap_resamples"]),
                                         seed=seed)
    # The point difference is of the metric's own values (e.g. KID's subset estimator), like the group columns.
    return BiasRow(by, edit, metric, "set", direction, *sides, sides[0].mean - sides[1].mean, low, high)


@dataclass(frozen=True)
class BiasAnalysis:
    rows: list[BiasRow]
    counts: dict[str, dict[str, int]]  # by -> group -> N
    warnings: list[str]


def analyse(*, ids: Sequence[str], refs: Sequence[ImageRef], table: AttributeTable, by: Sequence[str],
            per_image: dict[tuple[str, str], np.ndarray], set_metrics: dict[tuple[str, str], tuple],
            directions: dict[tuple[str, str], str], seed: int) -> BiasAnalysis:
    """Every metric of the run, split by every attribute in `by`.

    `per_image[(edit, metric)]`: values in `ids` order; `set_metrics[(edit, metric)]`: (spec, f_edit, f_ref) with
    feature rows in `ids` order."""
    rows, counts, warnings = [], {}, []
    splits = {}
    for attribute in by:  # check every grouping before any compute
        splits[attribute] = split_indices(group_labels(table, refs, attribute), attribute)
        counts[attribute] = {name: len(idx) for name, idx in splits[attribute]}
        small = [f"{name} (N = {len(idx)})" for name, idx in splits[attribute] if len(idx) < SMALL_N]
        if small:
            warnings.append(f"{attribute}: small group(s) {', '.join(small)}; N < {SMALL_N}, so the CIs are wide "
                            "and a difference whose CI includes 0 is not evidence of equal performance.")
    for attribute, groups in splits.items():
        for (edit, metric), values in sorted(per_image.items()):
            rows.append(per_image_row(attribute, edit, metric, directions[(edit, metric)], values, groups, seed=seed))
        for (edit, metric), (spec, f_edit, f_ref) in sorted(set_metrics.items()):
            rows.append(set_metric_row(attribute, edit, metric, directions[(edit, metric)], spec, f_edit, f_ref,
                                       groups, seed=seed))
    for w in warnings:
        log.warning(w)
    return BiasAnalysis(rows, counts, warnings)


def per_image_values(rows: Sequence[dict], ids: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
    """per_image.jsonl rows -> (edit, metric) -> primary values in `ids` order."""
    by_key: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for row in rows:
        by_key[(row["attribute"], row["metric"])][str(row["id"])] = row["value"]
    out = {}
    for key, values in by_key.items():
        missing = [i for i in ids if values.get(i) is None]
        if missing:
            raise DataError(f"per-image values of {key[1]} on {key[0]} are missing for {', '.join(missing[:5])}",
                            fix="rerun the suite (the run folder is incomplete)")
        out[key] = np.array([values[i] for i in ids], dtype=np.float64)
    return out


def run_ids(rows: Sequence[dict], feature_ids: Sequence[str] | None) -> list[str]:
    """The run's image ids in order: the feature index's, else first appearance in per_image.jsonl."""
    if feature_ids:
        return list(feature_ids)
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(str(row["id"]), None)
    if not seen:
        raise DataError("the run has neither per-image values nor feature sets to stratify",
                        fix="pass a run folder of a suite with metrics")
    return list(seen)


# -- the report in the run folder ---------------------------------------------------------------------------------

BIAS_DIR = "bias"
N_CAVEAT = ("N per group is small (the counts are printed beside every value): these are descriptive numbers for "
            "this set of images, with wide 95% bootstrap CIs, not estimates of bias in the population. FID is "
            "biased upwards at small N and depends on N, so FIDs of groups of different sizes are not comparable; "
            "read KID (unbiased) beside it.")


@dataclass(frozen=True)
class BiasReport:
    folder: Path
    files: list[Path]
    analysis: BiasAnalysis


def _dataset_items(result, ids: Sequence[str]) -> dict[str, dict]:
    """The run's dataset items by id: from the dataset manifest the run recorded that lists all its ids."""
    from benchmark.inputs.manifests import ManifestRegistry

    registry = ManifestRegistry()
    for key in result.run.manifest_digests:
        if not key.startswith("dataset:"):
            continue
        try:
            manifest = registry.get("dataset", key.split(":", 1)[1]).manifest
        except BenchError:
            continue
        items = {it.id: it.model_dump() for it in manifest.items}
        if items and all(i in items for i in ids):
            return items
    return {}


def build_bias_report(run_dir: str | Path, by: Sequence[str], attributes_file: str | Path, *,
                      mapping_file: str | Path | None = None, seed: int = 0) -> BiasReport:
    """Stratify the run's metrics by each attribute in `by`; write `<run>/bias/` (md, csv, json, png) atomically."""
    from benchmark.outputs.feature_sets import FEATURES_DIR, RunFeatureSets
    from benchmark.outputs.report.groups import image_refs, read_attribute_table, read_mapping
    from benchmark.outputs.results import find_results_file, load_per_image, load_results

    if not by:
        raise BenchError("no attribute to group by", fix="pass --by with CelebA attributes, e.g. --by Male Young")
    from benchmark.outputs.run_folder import require_finished

    run_dir = find_results_file(require_finished(run_dir)).parent
    result = load_results(run_dir)
    table = read_attribute_table(attributes_file)
    for attribute in by:
        table.column(attribute)  # unknown names fail before any work, with did-you-mean
    rows = load_per_image(run_dir)
    has_features = (run_dir / FEATURES_DIR).is_dir()
    features = RunFeatureSets(run_dir) if has_features else None
    ids = run_ids(rows, features.ids if features else None)
    mapping = read_mapping(mapping_file) if mapping_file else None
    refs = image_refs(ids, _dataset_items(result, ids), mapping)
    directions = {(edit, metric): mv.direction for edit, per in result.metrics.items() for metric, mv in per.items()}
    per_image = per_image_values(rows, ids)
    set_metrics = {}
    warnings = []
    for edit, per in result.metrics.items():
        for metric, mv in per.items():
            if (edit, metric) in per_image:
                continue
            if features is not None and features.has(edit, metric):
                set_metrics[(edit, metric)] = (mv.spec, *features.pair(edit, metric))
            else:
                warnings.append(f"{metric} on {edit}: no per-image values or stored features; not stratified "
                                "(runs before the feature store cannot split set metrics).")
    analysis = analyse(ids=ids, refs=refs, table=table, by=by, per_image=per_image, set_metrics=set_metrics,
                       directions=directions, seed=seed)
    analysis = BiasAnalysis(analysis.rows, analysis.counts, analysis.warnings + warnings)
    provenance = {"run_id": run_dir.name, "suite": result.suite, "run_git_sha": result.run.git_sha,
                  "not_for_reporting": result.not_for_reporting,
                  "attributes_file": table.path.name, "attributes_file_sha256": table.sha256,
                  "attributes_file_keys": table.key_kind, "grouping": list(by), "bootstrap_seed": seed,
                  "bootstrap_resamples": {"per-image": PER_IMAGE_RESAMPLES, "set": "the metric's spec"},
                  "confidence": CONFIDENCE, "difference": "group − rest; two-sample bootstrap (groups resampled "
                  "independently)", "mapping_file": str(mapping_file) if mapping_file else None}
    return BiasReport(*_write(run_dir, analysis, provenance), analysis)


def _frame(analysis: BiasAnalysis):
    import pandas as pd

    return pd.DataFrame([r.flat() for r in analysis.rows])


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def _ci(low: float | None, high: float | None) -> str:
    return "–" if low is None else f"[{_fmt(low)}, {_fmt(high)}]"


def to_markdown(analysis: BiasAnalysis, provenance: dict) -> str:
    lines = ["# Metrics by CelebA attribute", "", f"> **Small N.** {N_CAVEAT}", ""]
    if provenance.get("not_for_reporting"):
        lines += ["> **NOT FOR REPORTING**: the run used --limit.", ""]
    lines += ["N per group: " + "; ".join(f"{by}: " + ", ".join(f"{g} N = {n}" for g, n in groups.items())
                                          for by, groups in analysis.counts.items()), ""]
    lines += [f"- warning: {w}" for w in analysis.warnings] + ([""] if analysis.warnings else [])
    lines += ["| by | edit | metric | group | N | mean [95% CI] | rest | N | mean [95% CI] | difference [95% CI] |",
              "|---|---|---|---|---:|---|---|---:|---|---|"]
    for r in analysis.rows:
        arrow = "↑" if r.direction == "higher" else "↓"
        lines.append(f"| {r.by} | {r.edit} | {r.metric} {arrow} | {r.a.group} | {r.a.n} | {_fmt(r.a.mean)} "
                     f"{_ci(r.a.ci_low, r.a.ci_high)} | {r.b.group} | {r.b.n} | {_fmt(r.b.mean)} "
                     f"{_ci(r.b.ci_low, r.b.ci_high)} | {_fmt(r.difference)} "
                     f"{_ci(r.difference_ci_low, r.difference_ci_high)} |")
    lines += ["", f"Attribute file: `{provenance['attributes_file']}` (sha256 {provenance['attributes_file_sha256']}); "
              f"run `{provenance['run_id']}`; bootstrap seed {provenance['bootstrap_seed']}."]
    return "\n".join(lines) + "\n"


def _figure(analysis: BiasAnalysis, by: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.core.atomic import atomic_path

    rows = [r for r in analysis.rows if r.by == by]
    metrics = sorted({r.metric for r in rows})
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 0.5, 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        mrows = [r for r in rows if r.metric == metric]
        for offset, side, color in ((-0.12, "a", "tab:red"), (0.12, "b", "tab:blue")):
            for x, r in enumerate(mrows):
                g = getattr(r, side)
                err = None if g.ci_low is None else [[g.mean - g.ci_low], [g.ci_high - g.mean]]
                ax.errorbar(x + offset, g.mean, yerr=err, fmt="o", color=color, ms=4, capsize=3,
                            label=f"{g.group} (N={g.n})" if x == 0 else None)
        ax.set_xticks(range(len(mrows)), [r.edit for r in mrows], rotation=20, fontsize=8)
        ax.set_title(f"{metric} ({'↑' if mrows[0].direction == 'higher' else '↓'})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"by {by}: group means, 95% bootstrap CI (small N)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _write(run_dir: Path, analysis: BiasAnalysis, provenance: dict) -> tuple[Path, list[Path]]:
    from benchmark.core.atomic import atomic_dir, write_json, write_text

    final = run_dir / BIAS_DIR
    with atomic_dir(final) as staging:
        names = ["bias.md", "bias.csv", "bias.json"]
        write_text(staging / names[0], to_markdown(analysis, provenance))
        write_text(staging / names[1], _frame(analysis).to_csv(index=False))
        write_json(staging / names[2], {"provenance": provenance, "caveat": N_CAVEAT, "counts": analysis.counts,
                                        "warnings": analysis.warnings, "rows": [r.flat() for r in analysis.rows]})
        for by in analysis.counts:
            names.append(_figure(analysis, by, staging / f"bias_{by}.png").name)
    return final, [final / n for n in names]
