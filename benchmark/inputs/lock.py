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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import filelock

from benchmark.core.atomic import write_json
from benchmark.core.errors import DigestMismatchError, ManifestError
from benchmark.core.paths import lock_path

LOCK_SCHEMA_VERSION = 1

DigestState = Literal["pinned", "locked", "recorded", "unknown"]


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
        path = Path(path) if path is not None else lock_path()
        if not path.exists():
            return cls(path, {})
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
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


def lock_command(suite: str | None, *, profile: str | None = None, flag: str = "--data",
                 root: str | Path | None = None) -> str:
    """The `lock --relock` command that re-records the lock's digests of a suite's files from this copy."""
    parts = ["python run_all.py lock", f"--suite {suite or 'SUITE'}"]
    if profile:
        parts.append(f"--profile {profile}")
    if root is not None:
        parts.append(f"{flag} {root}")
    return " ".join([*parts, "--relock"])


def check_digest(actual: str, *, pinned: str | None, lock: LockFile | None, key: str, member: str, what: str,
                 record: bool, fix: str, source: str | None = None, relock: bool = False,
                 relock_fix: str | None = None) -> DigestState:
    """Compare `actual` with the manifest's pin, else with the lock; record it when neither knows it.

    Returns how the digest was established. A mismatch raises DigestMismatchError naming both digests; one against
    the lock also names the lock entry, and `relock_fix` says how to re-record it. `relock=True` (`lock
    --relock`) treats a locked digest (never a pinned one) as unknown, so `record` replaces it.
    """
    if pinned is not None:
        if actual != pinned:
            raise DigestMismatchError(f"{what}: sha256 {actual} does not match the manifest's {pinned}", fix=fix)
        return "pinned"
    locked = lock.digest(key, member) if lock is not None else None
    if locked is not None and actual != locked and not relock:
        raise DigestMismatchError(
            f"{what}: sha256 {actual} does not match {locked}, recorded in the lock file {lock.path} on first use "
            f"(entry {key!r}, member {member!r})",
            fix=relock_fix or f"{fix}; if the file is the intact original and the lock recorded a damaged copy, "
                              f"delete member {member!r} of entry {key!r} from {lock.path} to record it anew")
    if locked is not None and actual == locked:
        return "locked"
    if record and lock is not None:
        lock.record(key, member, actual, source=source)
        return "recorded"
    return "unknown"
