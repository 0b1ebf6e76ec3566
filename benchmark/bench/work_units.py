"""The units bench times and counts: one step of each loop on the suite's models (`models.units`) and one batch
of each metric's back-end. Each is timed on the real device after a warm-up and counted with FlopCounterMode,
on the meta twins when there are any (full-size counts without the compute)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.core.atomic import write_json
from models import units as U


@dataclass(frozen=True)
class Settings:
    batch: int  # images per call of the inversion, project-loop training, editing and metric units
    train_batch: int  # images per call of the attribute-batched unit (the suite's training batch size)
    warmup: int
    repeats: int


def unet_units(subject, settings: Settings, fast) -> dict[str, U.Unit]:
    """invert_step, train_step (project loop, cached reference), train_step_official (batch 1, reference
    re-rolled), train_step_batched (the K attributes of one pass) and edit_step, on `subject`'s models."""
    model, losses, b = subject.model, subject.losses, settings.batch
    return {
        "invert_step": U.invert_step(model, b, fast_path=fast),
        "train_step": U.train_step(model, subject.new_ft(), losses[0], b, reference="cached", fast_path=fast),
        "train_step_official": U.train_step_official(model, subject.new_ft(), losses[0], fast_path=fast),
        "train_step_batched": U.train_step_batched(model, [subject.new_ft() for _ in losses], losses,
                                                   settings.train_batch, reference="on-the-fly", fast_path=fast),
        "edit_step": U.edit_step(model, subject.new_ft(), b, fast_path=fast),
    }


def component_units(subject) -> dict[str, U.Unit]:
    """encode, decode, decode with the input gradient, CLIP image encoder forward + backward (FLOPs only)."""
    return U.component_units(subject.model, subject.losses[0])


_CALLS = {"clip": "encode_images", "face-parser": "parse", "fid-features": "features", "identity": "embed",
          "factor-oracle": "measure"}


def metric_units(subject, settings: Settings) -> dict[str, U.Unit]:
    """One back-end call per metric on a batch of random uint8 images at the suite's image size."""
    size = subject.model.image_size
    images = torch.randint(0, 256, (settings.batch, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    out = {}
    for mb in subject.backends:
        call = getattr(mb.backend, _CALLS[mb.kind])
        out[f"metric:{mb.key}"] = U.Unit(f"metric:{mb.key}", lambda call=call: call(images), settings.batch,
                                         subject.model, None, f"{mb.kind} back-end of {mb.model}, one batch")
    return out


def gflops(unit: U.Unit) -> float:
    return U.count_gflops(unit)


def timed(unit: U.Unit, settings: Settings) -> dict[str, Any]:
    """Median seconds per call over `repeats` calls after `warmup` (CUDA synchronised), the warm-up's own time
    (it includes torch.compile's compiling) and, on CUDA, the peak memory of the timed calls."""
    device = unit.model.device
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    with unit.session():
        sync()
        start = time.perf_counter()
        for _ in range(settings.warmup):
            unit.run()
        sync()
        warmup_seconds = time.perf_counter() - start
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(settings.repeats):
            start = time.perf_counter()
            unit.run()
            sync()
            times.append(time.perf_counter() - start)
    per_call = statistics.median(times)
    record = {"seconds_per_call": per_call, "seconds": per_call / unit.items, "items": unit.items,
              "repeats": settings.repeats, "warmup": settings.warmup, "warmup_seconds": warmup_seconds,
              "spread": (max(times) - min(times)) / per_call if len(times) > 1 else None}
    if cuda:
        record["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return record


def measure_units(real: dict[str, U.Unit], flops: Callable[[str], float], settings: Settings,
                  peak_tflops: float | None, *, after_each: Callable[[dict], None] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Per unit: GFLOP and seconds per item (image-step, or attribute-image-step for the batched unit), the
    achieved TFLOP/s and its share of the peak. `after_each(records so far)` lets a caller save partial work."""
    out = {}
    for name, unit in real.items():
        record = {"description": unit.description, "gflop": flops(name), **timed(unit, settings)}
        record["tflops"] = record["gflop"] / record["seconds"] / 1e3
        record["share_of_peak"] = record["tflops"] / peak_tflops if peak_tflops else None
        out[name] = record
        if after_each is not None:
            after_each(out)
    return out


def flop_counts(counting: dict[str, U.Unit], real: dict[str, U.Unit], cache_file: Path | None) -> Callable:
    """`gflop(name)`: counted once per unit (on the meta twin when there is one), kept in `cache_file` (FLOPs
    depend on the shapes and the code, which its name digests, not on the device or the fast path)."""
    known = json.loads(cache_file.read_text()) if cache_file is not None and cache_file.is_file() else {}

    def gflop(name: str) -> float:
        if name not in known:
            known[name] = gflops(counting.get(name, real[name]))
            if cache_file is not None:
                write_json(cache_file, known)
        return known[name]

    return gflop
