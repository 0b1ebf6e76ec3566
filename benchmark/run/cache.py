"""Content-addressed stage cache.

An entry is a folder `<root>/<stage>/<key>/` holding `tensors.safetensors` (optional) and `meta.json`. The key is
the `json_digest` of everything the stage's output depends on (`stage_key`): weight and data digests, the spec,
the keys of upstream entries and the stage's code version. So a changed input is a different key, never a stale
hit (anchors-and-style.md P7).

Writes are crash-safe: an entry is built in a temp folder beside its final place and renamed into place in one
step, after `meta.json` (which records the digest of the tensor file, and its own digest) is written. A process killed at any point
leaves either a complete entry or a `.tmp-*` folder that the next writer of that key removes. A `filelock` per key
keeps two concurrent runs from computing and writing the same entry: the second one waits, then reads the first
one's result.

Reads trust nothing: `meta.json` must be an object of this cache format, name this entry and carry its own digest
(`meta_sha256`, the `json_digest` of the rest of the document), and the tensor file must have the digest meta.json
records. An entry that fails any check is reported (a warning naming it), recomputed and replaced; never used.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
from safetensors import SafetensorError

from benchmark.core.errors import BenchError
from benchmark.core.hashing import _normalise, json_digest, sha256_file

log = logging.getLogger("benchmark.run.cache")

CACHE_FORMAT = 2  # 2: meta.json carries its own digest
_TENSORS = "tensors.safetensors"
_META = "meta.json"


@dataclass
class StageOutput:
    """What a stage unit produces: named tensors (stored as safetensors) and JSON-able data."""

    tensors: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheEntry:
    """A complete entry read back from the cache (or just written)."""

    stage: str
    key: str
    path: Path
    output: StageOutput
    hit: bool
    seconds: float  # compute time when it was written (a hit costs ~0 now; this is what it saved)


class CombinedEntry:
    """Entries of one stage read as one (the chunks of an edit): each tensor concatenated in order along the
    first dimension. Its key stands for its parts' keys; a unit that consumes it depends on every part."""

    def __init__(self, stage: str, parts: list[CacheEntry]):
        if not parts:
            raise ValueError("a combined entry needs at least one part")
        self.stage, self.parts = stage, tuple(parts)
        self.key = json_digest({"combined": stage, "parts": [p.key for p in self.parts]})
        self._output: StageOutput | None = None

    @property
    def output(self) -> StageOutput:
        if self._output is None:
            import torch

            outputs = [p.output for p in self.parts]
            self._output = StageOutput(tensors={name: torch.cat([o.tensors[name] for o in outputs])
                                                for name in outputs[0].tensors})
        return self._output

    @property
    def hit(self) -> bool:
        return all(p.hit for p in self.parts)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)


@functools.cache
def code_digest(package: str) -> str:
    """sha256 over the source files of an installed package (`models`, `metrics`): the code version of the
    method or the metrics, so a change to either invalidates exactly the stages that run it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not a package")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return json_digest([[p.relative_to(root).as_posix(), sha256_file(p)] for p in files])


def stage_key(stage: str, code_version: int, spec: Mapping[str, Any], *,
              digests: Mapping[str, str] | None = None, upstream: Mapping[str, str] | None = None,
              environment: Mapping[str, Any] | None = None) -> str:
    """The cache key of one unit of work: the digest of everything its output depends on.

    - `spec`: the frozen settings of the unit (steps, t_edit, prompts, seeds, ...);
    - `digests`: content digests of the files it reads (weights, images);
    - `upstream`: the keys of the entries it consumes (name -> key), which already hash *their* inputs;
    - `environment`: what changes numerics without changing any input (torch version, device type).
    """
    return json_digest({
        "cache_format": CACHE_FORMAT,
        "stage": stage,
        "code_version": code_version,
        "spec": spec,
        "digests": dict(digests or {}),
        "upstream": dict(upstream or {}),
        "environment": dict(environment or {}),
    })


class StageCache:
    """The cache on disk. `get_or_compute` is the one way stages use it."""

    def __init__(self, root: str | Path, *, lock_timeout: float = 6 * 3600):
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    # -- layout -----------------------------------------------------------------------------------------------
    def entry_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def _lock(self, stage: str, key: str) -> filelock.FileLock:
        folder = self.root / stage
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(self.root, exc) from None
        return filelock.FileLock(str(folder / f".{key}.lock"), timeout=self.lock_timeout)

    # -- reading ----------------------------------------------------------------------------------------------
    def load(self, stage: str, key: str, *, report: bool = True) -> CacheEntry | None:
        """The complete, intact entry for `key`, or None (missing, or damaged: reported unless `report=False`)."""
        folder = self.entry_dir(stage, key)
        meta_path = folder / _META
        if not meta_path.is_file():
            return None
        try:
            meta = _checked_meta(meta_path, stage, key)
            tensors = {}
            if meta["tensors_sha256"] is not None:
                tensor_path = folder / _TENSORS
                if not tensor_path.is_file() or sha256_file(tensor_path) != meta["tensors_sha256"]:
                    raise ValueError("the tensor file is missing or its digest does not match meta.json")
                from safetensors.torch import load_file

                tensors = load_file(str(tensor_path))
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            if report:
                log.warning("cache entry %s is damaged (%s); it is not used and will be recomputed", folder, exc)
            return None
        output = StageOutput(tensors=tensors, data=meta["data"])
        return CacheEntry(stage, key, folder, output, hit=True, seconds=float(meta["seconds"]))

    # -- writing ----------------------------------------------------------------------------------------------
    def _write(self, stage: str, key: str, output: StageOutput, seconds: float, spec: Any) -> Path:
        final = self.entry_dir(stage, key)
        tmp = final.parent / f".tmp-{key}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            meta: dict[str, Any] = {"cache_format": CACHE_FORMAT, "stage": stage, "key": key,
                                    "seconds": round(seconds, 6), "created": time.time(),
                                    "spec": _normalise(spec), "data": _normalise(output.data),
                                    "tensors_sha256": None}
            if output.tensors:
                from safetensors.torch import save_file

                save_file(dict(output.tensors), str(tmp / _TENSORS))
                _fsync(tmp / _TENSORS)
                meta["tensors_sha256"] = sha256_file(tmp / _TENSORS)
            meta["meta_sha256"] = meta_digest(meta)
            (tmp / _META).write_text(json.dumps(meta, indent=1, allow_nan=False), encoding="utf-8")
            _fsync(tmp / _META)
            if final.exists():  # only with --fresh, or when a damaged entry is replaced
                trash = final.parent / f".old-{key}-{os.getpid()}"
                os.replace(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _remove_leftovers(self, stage: str, key: str) -> None:
        """Temp folders of this key left by a killed writer (we hold the key's lock, so none is live)."""
        for pattern in (f".tmp-{key}-*", f".old-{key}-*"):
            for leftover in (self.root / stage).glob(pattern):
                shutil.rmtree(leftover, ignore_errors=True)

    def get_or_compute(self, stage: str, key: str, compute: Callable[[], StageOutput], *,
                       spec: Any = None, fresh: bool = False, label: str = "") -> CacheEntry:
        """Return the entry for `key`, computing and storing it first if it is missing (or if `fresh`)."""
        name = f"{stage}[{label}]" if label else stage
        if not fresh and (entry := self.load(stage, key)) is not None:
            log.info("cache hit %s key=%s", name, key)
            return entry
        try:
            lock = self._lock(stage, key)
            with lock:
                # Another run may have finished this entry while we waited for the lock.
                if not fresh and (entry := self.load(stage, key, report=False)) is not None:  # reported above
                    log.info("cache hit %s key=%s (written by a concurrent run)", name, key)
                    return entry
                self._remove_leftovers(stage, key)
                start = time.perf_counter()
                output = compute()
                seconds = time.perf_counter() - start
                # Hand back exactly what a later hit reads: CPU, contiguous, detached.
                output = StageOutput({k: v.detach().contiguous().cpu() for k, v in output.tensors.items()},
                                     output.data)
                try:
                    path = self._write(stage, key, output, seconds, spec)
                except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
                    raise _unwritable(self.root, exc) from None
        except filelock.Timeout:
            raise BenchError(f"timed out after {self.lock_timeout:.0f} s waiting for the cache lock of {name}",
                             fix=f"another run is computing it; wait for it, or remove a stale lock in "
                                 f"{self.root / stage}") from None
        log.info("cache miss %s key=%s computed in %.2f s", name, key, seconds)
        return CacheEntry(stage, key, path, output, hit=False, seconds=seconds)


def meta_digest(meta: Mapping[str, Any]) -> str:
    """The digest meta.json records of itself: of everything in it but that digest, as read back from JSON."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return json_digest(json.loads(json.dumps(body, allow_nan=False)))


def _checked_meta(path: Path, stage: str, key: str) -> dict[str, Any]:
    """meta.json, if it is one this cache wrote for this entry and nobody changed since; else ValueError."""
    meta = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"meta.json holds a {type(meta).__name__}, not an object")
    if meta.get("cache_format") != CACHE_FORMAT:
        raise ValueError(f"meta.json is of cache format {meta.get('cache_format')!r}, not {CACHE_FORMAT}")
    if meta.get("key") != key or meta.get("stage") != stage:
        raise ValueError("meta.json names another entry")
    if meta.get("meta_sha256") != meta_digest(meta):
        raise ValueError("meta.json does not match its own digest (edited or damaged)")
    if not isinstance(meta.get("data"), dict) or not isinstance(meta.get("seconds"), int | float):
        raise ValueError("meta.json lacks its data or seconds")
    if meta.get("tensors_sha256") is not None and not isinstance(meta["tensors_sha256"], str):
        raise ValueError("meta.json's tensors_sha256 is not a digest")
    return meta


def _unwritable(root: Path, exc: Exception) -> BenchError:
    return BenchError(f"cannot write the stage cache at {root}: {getattr(exc, 'strerror', None) or exc}",
                      fix="set ASYRP_CACHE to a writable folder with free space")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
