"""`lock`: record every digest of a resolved suite that the manifests do not pin yet.

Apart from the lock store (`benchmark.inputs.lock`) because it reads both the data and the weights: the store is
the bottom that `data` and `fetch` check against, this is the command that walks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.core.errors import DigestMismatchError
from benchmark.inputs.data import read_verified
from benchmark.inputs.fetch import check_model_files, fetch_command
from benchmark.inputs.lock import LockFile, lock_command, model_key


@dataclass(frozen=True)
class LockSummary:
    """What `lock_suite` did: `recorded` counts new pins by subject; `missing` lists what could not be read."""

    recorded: dict[str, int]
    already_known: int
    missing: list[str]


def lock_suite(resolved, *, data_root: str | Path | None = None, train_data_root: str | Path | None = None,
               distribution: str | None = None, weights_root: str | Path | None = None,
               lock: LockFile | None = None, relock: bool = False) -> LockSummary:
    """Record every digest of a resolved suite that is not pinned yet: data images and fetched weight files.

    Each image is decoded and its size and mode checked before its digest is recorded (exactly what `run`
    checks), so the lock never holds a file `run` refuses. Known digests are checked on the way (a mismatch
    raises DigestMismatchError naming the lock entry); `relock=True` replaces locked (never pinned) digests with
    those of the files on disk instead. Weights that are not on disk are listed in `missing` (fetch records
    their digests as it downloads them). The lock file is saved only when every check passed.
    """
    lock = lock if lock is not None else LockFile.load()
    before = {k: (dict(v.get("digests", {})), v.get("members")) for k, v in lock.entries.items()}
    known, missing = 0, []
    datasets = [(resolved.dataset, data_root, distribution, "--data")]
    if resolved.train_dataset is not None and resolved.train_dataset.ref != resolved.dataset.ref:
        datasets.append((resolved.train_dataset, train_data_root, None, "--train-data"))
    for ds, root, dist, flag in datasets:
        if root is None:
            missing.append(f"dataset {ds.ref} (no data folder given)")
            continue
        command = lock_command(resolved.suite.name, profile=resolved.profile, flag=flag, root=root)
        _, _, _, _, states = read_verified(ds.manifest, root, distribution=dist, lock=lock, record=True,
                                           decode=True, relock=relock, relock_command=command)
        known += sum(s in ("pinned", "locked") for s in states.values())
    for r in resolved.models().values():
        known += _lock_weights(r, lock, weights_root, missing, relock=relock)
    recorded = {k: _changes(before.get(k, ({}, None)), v) for k, v in lock.entries.items()}
    lock.save()
    return LockSummary({k: n for k, n in recorded.items() if n > 0}, known, missing)


def _changes(before: tuple[dict, list | None], entry: dict) -> int:
    """How many digests (and memberships) of a lock entry are new or replaced."""
    digests, members = before
    new = sum(digests.get(m) != d for m, d in entry.get("digests", {}).items())
    return new + int(entry.get("members") is not None and entry.get("members") != members)


def _lock_weights(r, lock: LockFile, weights_root, missing: list[str], *, relock: bool) -> int:
    """Record the digests of one model's files that are on disk and not pinned; returns how many were known."""
    known = 0
    for status, f in zip(check_model_files(r.manifest, root=Path(weights_root) if weights_root else None,
                                           lock=lock), r.manifest.files, strict=True):
        if status.state == "missing":
            missing.append(str(status.path))
        elif status.state == "mismatch" and not (relock and f.sha256 is None):
            where = (f"the manifest's {status.expected}" if f.sha256 else
                     f"{status.expected}, recorded in {lock.path} (entry {model_key(r.ref)!r}, member {f.path!r})")
            raise DigestMismatchError(f"{status.path}: sha256 {status.actual} does not match {where}",
                                      fix=f"delete it and run `{fetch_command([r.ref])}`")
        elif status.state in ("unverified", "mismatch"):
            lock.record(model_key(r.ref), f.path, status.actual, source=status.url)
        else:
            known += 1
    return known
