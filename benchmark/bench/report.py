"""`run_bench`: build a suite's models, measure its units, project its wall time; `render` prints the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmark.bench.peaks import peak_for
from benchmark.bench.projection import project, suite_counts
from benchmark.bench.subject import build_subject
from benchmark.bench.work_units import (
    Settings,
    component_units,
    flop_counts,
    gflops,
    measure_units,
    metric_units,
    unet_units,
)
from benchmark.core.hashing import json_digest
from benchmark.core.runtime import device_description, resolve_device
from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
from benchmark.outputs.results import package_versions
from benchmark.plan.plugins import load_plugins
from benchmark.plan.request import RunRequest, fast_path_for, known_metric_names

GOAL_SECONDS = 600  # the project's goal for paper-table on one H100-class GPU
FULL_SIZE = 128  # from this image size on, a CPU times each unit once (one training image-step is a TFLOP)


def default_settings(device: torch.device, image_size: int, train_batch: int, *, batch: int | None = None,
                     warmup: int | None = None, repeats: int | None = None) -> Settings:
    """On CUDA batch 8, two warm-up calls and five timed; on a CPU at full size batch 1 timed once (no warm-up),
    smaller models batch 8, one warm-up and three timed."""
    if device.type == "cuda":
        base = (8, 2, 5)
    elif image_size >= FULL_SIZE:
        base = (1, 0, 1)
    else:
        base = (8, 1, 3)
    b, w, r = (v if v is not None else d for v, d in zip((batch, warmup, repeats), base, strict=True))
    return Settings(batch=b, train_batch=train_batch, warmup=w, repeats=r)


def ratios(units: dict[str, dict[str, Any]], k: int) -> dict[str, Any]:
    seconds = {name: u["seconds"] for name, u in units.items()}
    official = seconds.get("train_step_official")

    def over(name):
        return official / seconds[name] if official and name in seconds else None

    return {
        "attribute_batched_train": over("train_step_batched"),
        "train_vs_official": over("train_step"),
        "k": k,
        "definitions": {
            "attribute_batched_train": f"seconds per attribute-image-step: the official loop (batch 1, reference "
                                       f"re-rolled; K = {k} such runs one after another) over the attribute-batched "
                                       f"step of the K = {k} attributes (reference rolled once per image)",
            "train_vs_official": "seconds per image-step: the official loop over the project loop (cached "
                                 "reference) at the unit batch",
        },
    }


def _flop_cache(resolved, settings: Settings, k: int) -> Path:
    """Where FLOP counts of these shapes and this code are kept (a full-size count takes a minute on a CPU)."""
    from benchmark.core.paths import cache_dir
    from benchmark.run.cache import code_digest

    key = json_digest({"suite": resolved.ref, "digest": resolved.digest, "batch": settings.batch, "k": k,
                       "train_batch": settings.train_batch, "models": code_digest("models"),
                       "metrics": code_digest("metrics"), "bench": code_digest("benchmark.bench"),
                       "torch": torch.__version__})
    return cache_dir() / "bench" / f"flops-{key[:16]}.json"


def run_bench(suite: str, *, profile: str | None = None, device: str = "auto", fast_options: dict | None = None,
              peak_tflops: float | None = None, batch: int | None = None, warmup: int | None = None,
              repeats: int | None = None, registry: ManifestRegistry | None = None,
              units_only: list[str] | None = None, partial: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """The report (see the package docstring). `units_only` times only those units (no projection then unless
    all it needs are there); `partial(report)` is called after each unit with what is measured so far."""
    started = time.perf_counter()
    load_plugins()
    resolved = resolve_suite(suite, profile=profile, registry=registry or ManifestRegistry(),
                             known_metrics=known_metric_names())
    dev = resolve_device(device)
    fast = fast_path_for(RunRequest(suite=suite, fast_path=fast_options), dev)
    subject = build_subject(resolved, dev)
    train_batch = resolved.suite.train.batch_size if resolved.suite.train else 1
    settings = default_settings(dev, subject.model.image_size, train_batch, batch=batch, warmup=warmup,
                                repeats=repeats)
    description = device_description(dev)
    if dev.type == "cuda":
        description["memory_gb"] = torch.cuda.get_device_properties(dev).total_memory / 2**30
    peak = peak_for(description["name"], fast, peak_tflops)
    real = {**unet_units(subject, settings, fast), **metric_units(subject, settings)}
    if units_only:
        real = {name: real[name] for name in _known(units_only, real)}
    counting = unet_units(subject.counting, settings, None)  # FLOPs do not depend on the fast path
    flops = flop_counts(counting, real, _flop_cache(resolved, settings, len(subject.losses)))
    head = {"suite": resolved.ref, "profile": profile, "device": description, "packages": package_versions(),
            "fast_path": fast.record(), "settings": settings.__dict__, "peak": peak, "weights": subject.weights}

    def save(units):
        if partial is not None:
            partial({**head, "complete": False, "units": units, "bench_seconds": time.perf_counter() - started})

    units = measure_units(real, flops, settings, peak["tflops"], after_each=save)
    counts = suite_counts(resolved)
    return {**head, "complete": True, "units": units,
            "flop_components_gflop": {k: gflops(u) for k, u in component_units(subject.counting).items()},
            "ratios": ratios(units, len(subject.losses)), "counts": counts.__dict__,
            "projection": _projection(counts, units, peak), "bench_seconds": time.perf_counter() - started}


def _known(names: list[str], units: dict) -> list[str]:
    from benchmark.core.errors import BenchError

    unknown = [n for n in names if n not in units]
    if unknown:
        raise BenchError(f"unknown bench unit(s) {', '.join(unknown)}", fix=f"pick from: {', '.join(units)}")
    return names


def _projection(counts, units: dict, peak: dict) -> dict[str, Any]:
    projection = project(counts, units)
    if projection["seconds"] is None:
        return projection
    if peak["tflops"]:
        projection["seconds_at_peak"] = projection["pflop"] * 1e3 / peak["tflops"]
    projection["goal_seconds"] = GOAL_SECONDS
    projection["times_the_goal"] = projection["seconds"] / GOAL_SECONDS
    return projection


def render(report: dict[str, Any]) -> str:
    peak = report["peak"]
    lines = [f"bench {report['suite']} on {report['device']['name']} ({report['device']['type']}), "
             f"{report['fast_path']['precision']}, TF32 {report['fast_path']['tf32']}"
             f"{', compiled' if report['fast_path']['compile'] else ''}; peak "
             f"{peak['tflops'] if peak['tflops'] else 'unknown'} TFLOP/s ({peak['source']})", "",
             f"{'unit':<26}{'GFLOP/item':>12}{'s/item':>12}{'TFLOP/s':>10}{'of peak':>9}{'batch':>7}"]
    for name, u in report["units"].items():
        share = f"{u['share_of_peak']:.1%}" if u["share_of_peak"] is not None else "-"
        lines.append(f"{name:<26}{u['gflop']:>12.1f}{u['seconds']:>12.4g}{u['tflops']:>10.3f}{share:>9}"
                     f"{u['items']:>7}")
    r, p = report["ratios"], report["projection"]
    lines += ["", f"ratios: attribute-batched training (K={r['k']}) {_x(r['attribute_batched_train'])}, "
                  f"project loop vs official {_x(r['train_vs_official'])}"]
    if p.get("seconds") is None:
        return "\n".join([*lines, f"projection: needs the units {', '.join(p['missing_units'])}"])
    lines += ["projection: " + ", ".join(f"{s} {v:.4g} s" for s, v in p["stage_seconds"].items())
              + f"; total {p['seconds']:.4g} s = {p['seconds'] / 3600:.3g} h ({p['times_the_goal']:.3g}x the "
                f"10-minute goal); {p['pflop']:.4g} PFLOP"
              + (f", {p['seconds_at_peak']:.4g} s at 100% of peak" if "seconds_at_peak" in p else "")]
    return "\n".join(lines)


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"
