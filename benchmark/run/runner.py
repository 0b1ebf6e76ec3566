"""The stage runner: runs units of work through the cache, times each stage, shows progress on stderr.

A pipeline is plain code that calls `Runner.unit(...)` once per unit of work (an image to invert, an attribute to
train, ...), inside `with runner.stage(...)`. The runner turns each unit into a cache key, returns the cached
entry when there is one and computes it otherwise. A run killed at any point therefore resumes where it stopped:
finished units are hits, the unit in flight is recomputed, and nothing half-written is ever read (see
`benchmark.run.cache`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from benchmark.outputs.results import ExecutorInfo, UnitInfo
from benchmark.run.cache import CacheEntry, StageCache, StageOutput, stage_key

log = logging.getLogger("benchmark.run.runner")

STAGE_ORDER = ("invert", "train", "edit", "measure", "report")


@dataclass(frozen=True)
class Stage:
    """A stage and the version of its code. Bump `code_version` whenever the stage's output changes meaning,
    so old cache entries stop matching."""

    name: str
    code_version: int


@dataclass
class StageStats:
    seconds: float = 0.0
    hits: int = 0
    misses: int = 0


@dataclass
class Runner:
    """Runs units through a `StageCache`. `fresh=True` recomputes (and replaces) every entry it touches."""

    cache: StageCache
    fresh: bool = False
    environment: Mapping[str, Any] = field(default_factory=dict)
    progress: bool | None = None  # None: tqdm decides (bars on a terminal, none in pipes and CI)
    stats: dict[str, StageStats] = field(default_factory=dict)
    #: who computes the units (`benchmark.run.executors`); the run's results record it
    executor: ExecutorInfo = field(default_factory=lambda: ExecutorInfo(name="inline", workers=1))
    #: units this run's workers computed before this runner met them (key -> what the worker reported)
    computed_elsewhere: dict[str, UnitInfo] = field(default_factory=dict)
    units: dict[str, UnitInfo] = field(default_factory=dict)  # key -> the first time this run met the unit
    started_at: str | None = None  # when the run began, if before the runner's first stage (an executor's run)
    _bar: Any = None

    @contextlib.contextmanager
    def stage(self, stage: Stage, total: int, *, unit: str = "unit") -> Iterator[None]:
        """Time a stage (wall time, added up if entered twice) and show one progress bar over its units."""
        stats = self.stats.setdefault(stage.name, StageStats())
        bar = tqdm(total=total, desc=stage.name, unit=unit, file=sys.stderr, leave=False,
                   disable=self.progress is False if self.progress is not None else None, dynamic_ncols=True)
        self._bar = bar
        start = time.perf_counter()
        try:
            yield
        finally:
            stats.seconds += time.perf_counter() - start
            bar.close()
            self._bar = None
            log.info("stage %s: %.2f s, %d computed, %d from cache", stage.name, stats.seconds,
                     stats.misses, stats.hits)

    def is_cached(self, stage: Stage, spec: Mapping[str, Any], *, digests: Mapping[str, str] | None = None,
                  upstream: Mapping[str, CacheEntry] | None = None) -> bool:
        """Whether `unit` with these arguments would be a cache hit (never with `fresh`). Stages that compute
        several units together ask first, so that only the missing ones are computed."""
        if self.fresh:
            return False
        key = self.key_for(stage, spec, digests=digests, upstream=upstream)
        return self.cache.load(stage.name, key) is not None

    def unit(self, stage: Stage, label: str, spec: Mapping[str, Any], compute: Callable[[], StageOutput], *,
             digests: Mapping[str, str] | None = None,
             upstream: Mapping[str, CacheEntry] | None = None) -> CacheEntry:
        """One unit of `stage`, from the cache or computed. `upstream` entries' keys become part of its key."""
        key = self.key_for(stage, spec, digests=digests, upstream=upstream)
        entry = self.cache.get_or_compute(stage.name, key, compute, spec=spec, fresh=self.fresh, label=label)
        stats = self.stats.setdefault(stage.name, StageStats())
        elsewhere = self.computed_elsewhere.get(key)
        if entry.hit and (elsewhere is None or key in self.units):  # a worker's unit is a miss once, as inline
            stats.hits += 1
        else:
            stats.misses += 1
        if key not in self.units:
            self.units[key] = elsewhere or UnitInfo(
                stage=stage.name, key=key, label=label, worker="cache" if entry.hit else "inline",
                seconds=0.0 if entry.hit else round(entry.seconds, 3), cached=entry.hit)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"{label} {'cached' if entry.hit else 'done'}", refresh=False)
        return entry

    def key_for(self, stage: Stage, spec: Mapping[str, Any], *, digests: Mapping[str, str] | None = None,
                upstream: Mapping[str, CacheEntry] | None = None) -> str:
        """The cache key of a unit: what `unit` would look up (executors plan with it before computing)."""
        return stage_key(stage.name, stage.code_version, spec, digests=digests,
                         upstream={k: e.key for k, e in (upstream or {}).items()}, environment=self.environment)

    def uncached(self, stage: Stage, fn: Callable[[], Any]) -> Any:
        """Work that is cheap and always redone (the report), timed like a stage."""
        with self.stage(stage, total=1):
            out = fn()
            if self._bar is not None:
                self._bar.update(1)
            return out

    def stage_seconds(self) -> dict[str, float]:
        """Wall time per stage, in pipeline order. Units that workers computed add their compute seconds to
        their stage (stages overlap on several workers, so there is no wall time of one stage)."""
        order = {name: i for i, name in enumerate(STAGE_ORDER)}
        names = sorted(self.stats, key=lambda n: order.get(n, len(order)))
        elsewhere: dict[str, float] = {}
        for info in self.computed_elsewhere.values():
            elsewhere[info.stage] = elsewhere.get(info.stage, 0.0) + info.seconds
        return {n: round(self.stats[n].seconds + elsewhere.get(n, 0.0), 3) for n in names}

    def unit_infos(self) -> list[UnitInfo]:
        """Every unit this run met, in the order it met them: who computed it and how long it took."""
        return list(self.units.values())


def run_environment(plan) -> dict[str, Any]:
    """Library versions and the device type: they change numerics without changing any input, so they are part
    of every key (a worker checks that it has the driver's)."""
    import torch

    from benchmark.outputs.results import package_versions

    return {**package_versions(), "device": torch.device(plan.device).type}


def stage_cache_root(cache_root: Path | None = None) -> Path:
    """Where the stage cache lives under a cache root (the user's, `benchmark.core.paths.cache_dir()`)."""
    from benchmark.core.paths import cache_dir

    return (cache_root or cache_dir()) / "stages"


def stage_runner(plan, *, fresh: bool = False, progress: bool | None = None) -> Runner:
    """The runner over the user's stage cache, keyed as every run's is."""
    return Runner(StageCache(stage_cache_root()), fresh=fresh, progress=progress, environment=run_environment(plan))
