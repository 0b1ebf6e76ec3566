"""Model files the user supplies (`source: {type: user}`): checked and locked, never downloaded.

Some base models have no URL a program can fetch from (the authors link a OneDrive or Google Drive folder). The
user copies such a file to the place fetched files go, `<weights>/<name>@<version>/<path>`
(`benchmark.inputs.fetch.local_path`); `fetch` and `lock` hash it and record its sha256 in the lock file the
first time they see it (when the manifest pins none), and every later read is checked against that digest.
Every message about a missing or wrong file names the exact destination and where the manifest says to get it.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.core.errors import MissingWeightsError
from benchmark.core.hashing import sha256_file
from benchmark.inputs.lock import LockFile, check_digest, lock_command, model_key
from benchmark.inputs.manifests import ModelManifest, UserSource


def is_user_supplied(model: ModelManifest) -> bool:
    return isinstance(model.source, UserSource)


def user_file_fix(model: ModelManifest, path: Path, state: str, *, suite: str | None = None,
                  profile: str | None = None) -> str:
    """What to do about a user-supplied file that is missing or does not match its digest."""
    where = model.source.where
    if state == "mismatch":
        return (f"{path} is not the file whose digest was recorded: copy the authors' file there again (get it "
                f"from: {where}); if this copy is the right one and the recorded digest is wrong, run "
                f"`{lock_command(suite, profile=profile)}`")
    return (f"copy the file to {path} (nothing downloads it; create the folder if needed, or set ASYRP_WEIGHTS to "
            f"the weights folder that holds {model.ref}/); get it from: {where}")


def check_user_files(model: ModelManifest, statuses, *, lock: LockFile | None) -> list:
    """`fetch` for a user source: every file present (else MissingWeightsError naming where to put it and where to
    get it), its digest checked against the manifest or the lock, and recorded there on first use."""
    from dataclasses import replace

    out = []
    for status, f in zip(statuses, model.files, strict=True):
        if status.state == "missing":
            raise MissingWeightsError(f"{model.ref}: the user-supplied file {f.path} is not at {status.path}",
                                      fix=user_file_fix(model, status.path, "missing"))
        digest = status.actual or sha256_file(status.path)
        check_digest(digest, pinned=f.sha256, lock=lock, key=model_key(model.ref), member=f.path,
                     what=str(status.path), record=True, source=f"user-supplied ({model.source.where})",
                     fix=user_file_fix(model, status.path, "mismatch"))
        out.append(replace(status, state="ok", expected=f.sha256 or digest, actual=digest))
    return out
