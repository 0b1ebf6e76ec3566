"""The digest a metric back-end must find in its weights, taken from the back-end's model manifest.

A back-end identifies its weights by one file (`BackendEntry.weights_file`, e.g. `ViT-B-32.pt`, or
`w600k_r50.onnx` inside buffalo_l.zip). Its model manifest pins that file's sha256, as a listed file, as an
`unzip_members` entry, or through the lock file when the manifest leaves it null. Passing this pin to the
metric (`weights_sha256`) makes the manifest tree the one place digests come from: the code's own constants are
only a fallback, so another manifest tree (a private mirror, a rehearsal's forgeries) is checked against its own
pins, and the shipped tree against the published ones.
"""

from __future__ import annotations

from benchmark.inputs.lock import LockFile, model_key


def backend_pin(manifest, weights_file: str | None, lock: LockFile | None = None) -> str | None:
    """sha256 pinned for the back-end's identifying file, or None when the manifest and lock know none."""
    files = list(manifest.files)
    if weights_file is None and len(files) == 1:
        weights_file = files[0].path
    for f in files:
        if f.path == weights_file:
            if f.sha256:
                return f.sha256
            return lock.digest(model_key(manifest.ref), f.path) if lock is not None else None
    for member in manifest.loader_args.get("unzip_members") or []:
        if member.get("path") == weights_file:
            return member.get("sha256")
    return None


def metric_backend_pin(manifest, metric_name: str, backend_name: str, lock: LockFile | None = None) -> str | None:
    """`backend_pin` for the back-end a metric uses (its kind comes from the metric class)."""
    from metrics.backends import get_backend
    from metrics.base import METRICS

    entry = get_backend(METRICS.get(metric_name).backend_kind, backend_name)
    return backend_pin(manifest, entry.weights_file, lock) if entry.needs_weights else None
