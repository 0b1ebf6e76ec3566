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
from benchmark.inputs.lock import LockFile, model_key


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
                                          fix=f"delete it and run `{fetch_command([r.ref])}`")
            elif status.state == "unverified":
                lock.record(model_key(r.ref), f.path, status.actual, source=status.url)
            else:
                known += 1
    recorded = {k: len(v.get("digests", {})) + (1 if "members" in v else 0) - before.get(k, 0)
                for k, v in lock.entries.items()}
    lock.save()
    return LockSummary({k: n for k, n in recorded.items() if n > 0}, known, missing)
