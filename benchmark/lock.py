"""The lock file: digests (and memberships) that the manifests do not pin yet, recorded on first use.

Some facts cannot be known before someone holds the files: the sha256 of a URL that publishes none, the JSON
files of a Hub commit, the bytes of a user's CelebA-HQ copy, the membership of a split defined only by a rule.
The first run (or `python run_all.py lock`) records them here; every later run checks against them, so a silently
changed file is caught as surely as one whose digest the manifest pins. A digest in a manifest always wins.

Where: `manifests/lock.json` in the repository (commit it to share the pins), or `$ASYRP_LOCK`. The file is JSON,
keyed by `kind:name@version` (datasets add `:distribution`), and written atomically under a file lock.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import filelock

from benchmark.atomic import write_json
from benchmark.errors import DigestMismatchError, ManifestError
from benchmark.paths import manifests_dir

LOCK_SCHEMA_VERSION = 1

DigestState = Literal["pinned", "locked", "recorded", "unknown"]


def default_lock_path() -> Path:
    """`$ASYRP_LOCK`, else `lock.json` beside the manifests it completes (the repo's `manifests/`, or the tree
    `ASYRP_MANIFESTS` names: another tree's digests must not land in the repo's lock file)."""
    return Path(os.environ.get("ASYRP_LOCK", manifests_dir() / "lock.json")).expanduser().resolve()


def dataset_key(dataset_ref: str, distribution: str) -> str:
    return f"dataset:{dataset_ref}:{distribution}"


def model_key(model_ref: str) -> str:
    return f"model:{model_ref}"


@dataclass
class LockFile:
    """In-memory view of the lock file; `record*` marks it dirty and `save()` merges and writes it."""

    path: Path
    entries: dict[str, dict[str, Any]]
    dirty: bool = False

    @classmethod
    def load(cls, path: str | Path | None = None) -> LockFile:
        path = Path(path) if path is not None else default_lock_path()
        if not path.exists():
            return cls(path, {})
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ManifestError(f"lock file {path} cannot be read: {e}",
                                fix="restore it from version control, or delete it to record the digests anew "
                                    "(the next run re-locks them)") from None
        if not isinstance(doc, dict) or doc.get("schema_version") != LOCK_SCHEMA_VERSION:
            raise ManifestError(f"lock file {path} has an unknown format (schema_version "
                                f"{doc.get('schema_version') if isinstance(doc, dict) else None!r})",
                                fix="delete it to record the digests anew, or upgrade asyrp-bench")
        return cls(path, dict(doc.get("entries", {})))

    def digest(self, key: str, member: str) -> str | None:
        return self.entries.get(key, {}).get("digests", {}).get(member)

    def members(self, key: str) -> list[str] | None:
        return self.entries.get(key, {}).get("members")

    def record(self, key: str, member: str, sha256: str, *, source: str | None = None) -> None:
        entry = self.entries.setdefault(key, {})
        entry.setdefault("digests", {})[member] = sha256
        self._stamp(entry, source)

    def record_members(self, key: str, members: list[str], *, source: str | None = None) -> None:
        entry = self.entries.setdefault(key, {})
        entry["members"] = list(members)
        self._stamp(entry, source)

    def _stamp(self, entry: dict[str, Any], source: str | None) -> None:
        entry["recorded_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if source:
            entry["source"] = source
        self.dirty = True

    def save(self) -> None:
        """Merge with what is on disk (another run may have locked other entries) and write atomically."""
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(self.path) + ".lock", timeout=60):
            on_disk = LockFile.load(self.path).entries if self.path.exists() else {}
            for key, entry in self.entries.items():
                merged = on_disk.setdefault(key, {})
                merged.setdefault("digests", {}).update(entry.get("digests", {}))
                merged.update({k: v for k, v in entry.items() if k != "digests"})
            write_json(self.path, {"schema_version": LOCK_SCHEMA_VERSION,
                                   "entries": dict(sorted(on_disk.items()))})
            self.entries = on_disk
        self.dirty = False


def check_digest(actual: str, *, pinned: str | None, lock: LockFile | None, key: str, member: str, what: str,
                 record: bool, fix: str, source: str | None = None) -> DigestState:
    """Compare `actual` with the manifest's pin, else with the lock; record it when neither knows it.

    Returns how the digest was established. A mismatch raises DigestMismatchError naming both digests.
    """
    if pinned is not None:
        if actual != pinned:
            raise DigestMismatchError(f"{what}: sha256 {actual} does not match the manifest's {pinned}", fix=fix)
        return "pinned"
    locked = lock.digest(key, member) if lock is not None else None
    if locked is not None:
        if actual != locked:
            raise DigestMismatchError(f"{what}: sha256 {actual} does not match {locked}, recorded in the lock file "
                                      f"{lock.path} on first use", fix=fix)
        return "locked"
    if record and lock is not None:
        lock.record(key, member, actual, source=source)
        return "recorded"
    return "unknown"


@dataclass(frozen=True)
class LockSummary:
    """What `lock_suite` did: `recorded` counts new pins by subject; `missing` lists what could not be read."""

    recorded: dict[str, int]
    already_known: int
    missing: list[str]


def lock_suite(resolved, *, data_root: str | Path | None = None, train_data_root: str | Path | None = None,
               distribution: str | None = None, weights_root: str | Path | None = None,
               lock: LockFile | None = None) -> LockSummary:
    """Record every digest of a resolved suite that is not pinned yet: data images and fetched weight files.

    Known digests are checked on the way (a mismatch raises DigestMismatchError). Weights that are not on disk
    are listed in `missing` (fetch records their digests as it downloads them). The lock file is saved.
    """
    from benchmark.data import read_verified
    from benchmark.fetch import check_model_files

    lock = lock if lock is not None else LockFile.load()
    before = {k: len(v.get("digests", {})) + (1 if "members" in v else 0) for k, v in lock.entries.items()}
    known, missing = 0, []
    datasets = [(resolved.dataset, data_root, distribution)]
    if resolved.train_dataset is not None and resolved.train_dataset.ref != resolved.dataset.ref:
        datasets.append((resolved.train_dataset, train_data_root, None))
    for ds, root, dist in datasets:
        if root is None:
            missing.append(f"dataset {ds.ref} (no data folder given)")
            continue
        _, _, _, _, states = read_verified(ds.manifest, root, distribution=dist, lock=lock, record=True)
        known += sum(s in ("pinned", "locked") for s in states.values())
    for r in resolved.models().values():
        for status, f in zip(check_model_files(r.manifest, root=Path(weights_root) if weights_root else None,
                                               lock=lock), r.manifest.files, strict=True):
            if status.state == "missing":
                missing.append(str(status.path))
            elif status.state == "mismatch":
                raise DigestMismatchError(f"{status.path}: sha256 {status.actual} does not match {status.expected}",
                                          fix=f"delete it and run `python run_all.py fetch {r.ref}`")
            elif status.state == "unverified":
                lock.record(model_key(r.ref), f.path, status.actual, source=status.url)
            else:
                known += 1
    recorded = {k: len(v.get("digests", {})) + (1 if "members" in v else 0) - before.get(k, 0)
                for k, v in lock.entries.items()}
    lock.save()
    return LockSummary({k: n for k, n in recorded.items() if n > 0}, known, missing)
