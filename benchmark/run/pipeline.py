"""One run of a suite, end to end: the stages in order, then the results folder and its report.

`run_plan` is what `run_all.py run` calls once the suite is resolved and validated. All expensive work goes
through the stage cache, so calling it again after a crash (or Ctrl-C) resumes; the run folder is written last,
in one rename, so an interrupted run leaves no results file behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.core.atomic import atomic_path, write_json
from benchmark.core.hashing import json_digest
from benchmark.core.runtime import device_description
from benchmark.inputs.manifests import parse_ref
from benchmark.outputs.feature_sets import write_feature_sets
from benchmark.outputs.ft_weights import write_ft_weights
from benchmark.outputs.gates import evaluate_gates
from benchmark.outputs.report import build_report
from benchmark.outputs.results import (
    Aggregate,
    MetricValue,
    ReferenceValue,
    RunFolder,
    RunInfo,
    RunResult,
    git_state,
    load_results,
    new_run_dir,
    package_versions,
    utc_now,
    write_results,
    write_training,
)
from benchmark.outputs.run_folder import remove_dead_staging
from benchmark.run.cache import CacheEntry
from benchmark.run.label_maps import save_label_maps
from benchmark.run.runner import Runner
from benchmark.run.stages import EDIT, INVERT, MEASURE, REPORT, TRAIN
from benchmark.run.stages.edit import edit_all
from benchmark.run.stages.invert import invert_images
from benchmark.run.stages.measure import measure_attribute
from benchmark.run.stages.noise import noise_items, sample_noise
from benchmark.run.stages.train import train_all
from benchmark.run.suite_plan import SuitePlan, edit_key

log = logging.getLogger("benchmark.run.pipeline")

PROPERTIES_FILE = "properties.json"  # figure data of a suite's known-answer checks (h-space properties)


@dataclass
class RunState:
    """Everything a run computed; handed to a suite's extra gate checks (e.g. the synthetic world's)."""

    plan: SuitePlan
    runner: Runner
    test_inversions: list[CacheEntry] = field(default_factory=list)
    train_inversions: list[CacheEntry] = field(default_factory=list)
    ft: dict[str, CacheEntry] = field(default_factory=dict)
    edits: dict[str, CacheEntry] = field(default_factory=dict)
    measures: dict[tuple[str, str], CacheEntry] = field(default_factory=dict)
    metrics: dict[str, dict[str, MetricValue]] = field(default_factory=dict)
    references: list[ReferenceValue] = field(default_factory=list)  # added by extra gates (known answers)
    properties: dict[str, Any] = field(default_factory=dict)  # figure data of extra gates: curves and grids
    notes: list[str] = field(default_factory=list)  # added by extra gates (e.g. an ungated known answer)


def _starting_points(plan: SuitePlan, runner: Runner, needs_training: bool) -> tuple[list, list]:
    """The test and training inversions, or seeded noise in their place (then the test samples become the run's
    images, `plan.images`)."""
    if plan.noise is not None:
        n = min(plan.noise.n, plan.limit or plan.noise.n)
        test = sample_noise(runner, plan.engine, plan.noise, n=n, batch_size=plan.batch_size, with_reference=False,
                            purpose="test")
        plan.images = noise_items(test)
    else:
        test = invert_images(runner, plan.engine, plan.images, batch_size=plan.batch_size, with_reference=False,
                             purpose="test", device=plan.device)
    if not needs_training:
        return test, []
    if plan.train_noise is not None:  # with_reference also keeps the float samples the CLIP sources come from
        return test, sample_noise(runner, plan.engine, plan.train_noise, n=plan.train_noise.n,
                                  batch_size=plan.batch_size, with_reference=True, purpose="train")
    # training never reads a training image's reconstruction; the reference only when it is cached
    return test, invert_images(runner, plan.engine, plan.train_images, batch_size=plan.batch_size,
                               with_reference=getattr(plan.engine, "needs_reference", True), reconstruct=False,
                               purpose="train", device=plan.device)


def run_stages(plan: SuitePlan, runner: Runner) -> RunState:
    """invert (or seeded noise) → train → edit → measure, each unit through the cache."""
    state = schedule_units(plan, runner)
    collect_metrics(state)
    return state


def schedule_units(plan: SuitePlan, runner: Runner) -> RunState:
    """Every unit of invert → train → edit → measure, in that order, through the runner; no unit's output is read
    here, only in the units' own computations (so an executor can learn the units before computing them)."""
    state = RunState(plan, runner)
    needs_training = any(a.official_ft is None for a in plan.attributes)
    n_test = plan.noise.n if plan.noise is not None else len(plan.images)
    n_train = plan.train_noise.n if plan.train_noise is not None else len(plan.train_images)
    n_invert = -(-n_test // plan.batch_size) + (-(-n_train // plan.batch_size) if needs_training else 0)
    with runner.stage(INVERT, total=n_invert, unit="chunk"):
        state.test_inversions, state.train_inversions = _starting_points(plan, runner, needs_training)
    with runner.stage(TRAIN, total=len(plan.attributes), unit="attr"):
        state.ft = train_all(runner, plan.engine, plan.attributes, plan.train_images, state.train_inversions,
                             n_train_images=plan.train_noise.n if plan.train_noise is not None else None)
    edits = [(attr, scale, edit_key(attr.name, scale)) for attr in plan.attributes for scale in plan.delta_h_scales]
    with runner.stage(EDIT, total=len(edits) * len(state.test_inversions), unit="chunk"):
        state.edits = edit_all(runner, plan.engine, [(a, s) for a, s, _ in edits], state.ft, state.test_inversions,
                               device=plan.device)
    with runner.stage(MEASURE, total=len(edits) * len(plan.metrics), unit="metric"):
        for attr, _, key in edits:
            for pm in plan.metrics:
                state.measures[(key, pm.key)] = measure_attribute(runner, pm, attr, key, plan.images,
                                                                  state.edits[key], state.test_inversions,
                                                                  plan.make_edit_set)
    return state


def execution_record(state: RunState) -> dict[str, Any]:
    """How the run computed: the engine's fast-path options and batching, and per trained f_t the training pass
    it came from (read from its cache entry, so a cached f_t reports how it was made)."""
    record = getattr(state.plan.engine, "execution", dict)()
    passes = {name: e.output.data["training"] for name, e in state.ft.items() if "training" in e.output.data}
    return {**record, "trained": passes} if passes else record


def collect_metrics(state: RunState) -> None:
    """The metric values of the measured units, into `state.metrics`."""
    directions = {pm.key: pm.metric.direction for pm in state.plan.metrics}
    for (key, metric), entry in state.measures.items():
        state.metrics.setdefault(key, {})[metric] = metric_value(entry.output.data, directions[metric])


def attribute_infos(plan: SuitePlan) -> dict:
    return {edit_key(a.name, s): a.info(s) for a in plan.attributes for s in plan.delta_h_scales}


def metric_value(data: Mapping[str, Any], direction: str) -> MetricValue:
    p = data["primary"]
    return MetricValue(mean=p["mean"], ci_low=p["ci_low"], ci_high=p["ci_high"], n=p["n"], std=p.get("std"),
                       direction=direction, spec=data["spec"], flags=data.get("flags", {}),
                       variants={k: Aggregate(**{f: v.get(f) for f in ("mean", "ci_low", "ci_high", "n", "std")})
                                 for k, v in data.get("variants", {}).items()})


def per_image_rows(state: RunState) -> list[dict[str, Any]]:
    rows = []
    ids = [it.id for it in state.plan.images]
    for (attr, key), entry in state.measures.items():
        data = entry.output.data
        if not data["per_image"]:  # a set metric (FID, KID): no per-image values
            continue
        for i, image_id in enumerate(ids):
            row = {"attribute": attr, "metric": key, "id": image_id, "value": data["per_image"][i]}
            for var, values in data.get("variant_per_image", {}).items():
                row[var] = values[i]
            rows.append(row)
    return rows


def feature_sets(state: RunState) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """`edit key -> metric key -> {"edited", "reference"}` feature matrices of the run's set metrics."""
    out: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for (edit, metric), entry in state.measures.items():
        pair = {name.removeprefix("features_"): t for name, t in entry.output.tensors.items()
                if name.startswith("features_")}
        if pair:
            out.setdefault(edit, {})[metric] = pair
    return out


def training_histories(state: RunState) -> dict[str, dict[str, Any]]:
    """The loss history of every f_t this run trained (released f_t have none), keyed like the results."""
    out = {}
    for name, entry in state.ft.items():
        data = entry.output.data
        if data.get("source") == "trained" and "history" in data:
            out[name] = {"ft": data.get("ft"), "config": data.get("config"), **data["history"]}
            if data.get("init_from"):
                out[name]["init_from"] = data["init_from"]
            out[name].update(_trained_where(state.plan, name))
    return out


def _trained_where(plan: SuitePlan, name: str) -> dict[str, Any]:
    """What the training config leaves out but an arm may change: the h-space layer its f_t acts on and, when
    it trains from seeded noise, its CLIP source images (read from the plan, so a cached f_t records them too)."""
    attribute = next((a for a in plan.attributes if a.name == name), None)
    if attribute is None:
        return {}
    out = {}
    model_for = getattr(plan.engine, "model_for", None)
    layer = getattr(getattr(model_for(attribute), "unet", None), "layer", None) if model_for else None
    if layer is not None:
        out["hspace_layer"] = layer
    if "clip_source" in attribute.settings:
        out["clip_source"] = attribute.settings["clip_source"]
    return out


def _save_png(path: Path, pixels: torch.Tensor) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy()).save(tmp, format="PNG")
    return path.name


def save_grid_images(state: RunState, folder: Path) -> dict[str, dict[str, str]]:
    """PNGs of the first few images (original, reconstruction, each edit) for the report's edit grids."""
    grid: dict[str, dict[str, str]] = {}
    recon = torch.cat([e.output.tensors["reconstruction"] for e in state.test_inversions])
    for i, item in enumerate(state.plan.images[: state.plan.grid_count]):
        cells = {"original": item.pixels, "reconstruction": recon[i]}
        cells.update({a: e.output.tensors["edited"][i] for a, e in state.edits.items()})
        grid[item.id] = {}
        for col, pixels in cells.items():
            rel = Path("images") / _safe_name(item.id) / f"{_safe_name(col)}.png"
            _save_png(folder / rel, pixels)
            grid[item.id][col] = rel.as_posix()
    return grid


def save_properties(state: RunState, folder: Path) -> None:
    """`properties.json` (curves with CIs) and one PNG per cell of each property grid, for the report."""
    if not state.properties:
        return
    grids = {}
    for name, grid in state.properties.get("grids", {}).items():
        images = grid["images"]  # rows × cols × 3 × H × W, uint8
        cells = []
        for i in range(images.shape[0]):
            row = []
            for j in range(images.shape[1]):
                rel = Path("images") / "properties" / _safe_name(name) / f"r{i}_c{j}.png"
                _save_png(folder / rel, images[i, j])
                row.append(rel.as_posix())
            cells.append(row)
        grids[name] = {"title": grid["title"], "rows": list(grid["rows"]), "cols": list(grid["cols"]),
                       "cells": cells}
    write_json(folder / PROPERTIES_FILE, {"curves": state.properties.get("curves", {}), "grids": grids})


def _safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def run_key(plan: SuitePlan) -> str:
    return json_digest({"suite": plan.suite, "manifests": plan.manifest_digests, "profile": plan.profile,
                        "attributes": [a.ref for a in plan.attributes], "limit": plan.limit,
                        "metrics": [m.key for m in plan.metrics], "seeds": plan.seeds})[:8]


def run_plan(plan: SuitePlan, runner: Runner, out: Path, *, argv: Sequence[str] = ()) -> Path:
    """Run every stage and write the run folder; returns its path."""
    started = runner.started_at or utc_now()
    remove_dead_staging(out)  # what killed runs into this --out left; never a live run's
    state = run_stages(plan, runner)
    gates = evaluate_gates(state.metrics, plan.references)
    for check in plan.extra_gates:
        gates += check(state)
    sha, dirty = git_state()
    final = new_run_dir(out, parse_ref(plan.suite)[0], run_key(plan))

    def result(ended: str, grid: dict[str, dict[str, str]]) -> RunResult:
        return RunResult(
            suite=plan.suite, not_for_reporting=plan.limit is not None,
            run=RunInfo(git_sha=sha, git_dirty=dirty, manifest_digests=plan.manifest_digests,
                        weight_digests=plan.weight_digests, seeds=plan.seeds, packages=package_versions(),
                        device=device_description(torch.device(plan.device)), stage_seconds=runner.stage_seconds(),
                        started_at=started, ended_at=ended, argv=list(argv), profile=plan.profile, limit=plan.limit,
                        attributes=[a.ref for a in plan.attributes],
                        cache={k: {"hits": s.hits, "misses": s.misses} for k, s in runner.stats.items()},
                        notes=[*plan.notes, *state.notes], execution=execution_record(state),
                        executor=runner.executor, units=runner.unit_infos()),
            metrics=state.metrics, gates=gates, attributes=attribute_infos(plan),
            references=[*plan.references, *state.references], grid_images=grid)

    with RunFolder(final) as folder:
        grid = save_grid_images(state, folder.staging)
        save_label_maps(state, folder.staging)  # the parser's maps behind SC, for the segmentation figure
        write_feature_sets(folder.staging, [it.id for it in plan.images], feature_sets(state))
        save_properties(state, folder.staging)
        write_results(folder.staging, result(utc_now(), grid), per_image_rows(state))
        histories = training_histories(state)
        if histories:
            write_training(folder.staging, histories)
            write_ft_weights(folder.staging, {k: (state.ft[k].output.tensors, histories[k].get("ft") or {})
                                              for k in histories})
        runner.uncached(REPORT, lambda: build_report(folder.staging))
        # Rewrite with the report's own time and the true end, now that both are known.
        write_results(folder.staging, result(utc_now(), grid), per_image_rows(state))
        path = folder.commit()
    log.info("results written to %s", path)
    return path


__all__ = ["RunState", "collect_metrics", "run_plan", "run_stages", "schedule_units", "load_results"]
