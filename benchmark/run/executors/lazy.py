"""Cache entries that are read only when their output is needed, and the signal that one is not there yet.

An executor replays a run's pipeline without computing (to learn its units), or to compute a few chosen units in a
worker. Every other unit then stands for itself as a `LazyEntry`: its key is known, and its output is read from the
stage cache the first time a computation needs it. Reading one that nobody has computed yet raises `Pending`, which
the replay treats as "this step waits for that unit".
"""

from __future__ import annotations

from pathlib import Path

from benchmark.core.errors import BenchError
from benchmark.run.cache import CacheEntry, StageCache, StageOutput


class Pending(Exception):
    """The output of a unit that is not in the cache yet was needed."""

    def __init__(self, stage: str, key: str, label: str = ""):
        super().__init__(f"{stage}[{label}] {key[:12]} is not computed yet")
        self.stage, self.key, self.label = stage, key, label


class MissingUpstream(BenchError):
    """A unit's computation read a unit that is neither in the cache nor computed before it."""


class LazyEntry:
    """A unit known by its key, whose output is read from the cache on first use (duck-types `CacheEntry`)."""

    hit = True
    seconds = 0.0

    def __init__(self, cache: StageCache, stage: str, key: str, label: str = ""):
        self.cache, self.stage, self.key, self.label = cache, stage, key, label
        self._entry: CacheEntry | None = None

    @property
    def path(self) -> Path:
        return self.cache.entry_dir(self.stage, self.key)

    @property
    def output(self) -> StageOutput:
        if self._entry is None:
            self._entry = self.cache.load(self.stage, self.key)
            if self._entry is None:
                raise Pending(self.stage, self.key, self.label)
        return self._entry.output

    def __repr__(self) -> str:
        return f"LazyEntry({self.stage}[{self.label}] {self.key[:12]})"


def is_complete(cache: StageCache, stage: str, key: str) -> bool:
    """A complete entry exists (its `meta.json` is written last; `load` still checks the tensor digest)."""
    return (cache.entry_dir(stage, key) / "meta.json").is_file()
