"""Members of a fetched archive that a loader reads as files: a model manifest's `loader_args.unzip_members`
(`[{path, sha256}]`, e.g. insightface's buffalo_l.zip -> w600k_r50.onnx) are extracted beside the archive in the
model folder, each checked against its pinned sha256 before it is renamed into place. A member that is missing
or does not match leaves nothing behind and raises (exit 2) naming the archive, the member and the digest.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from benchmark.core.atomic import atomic_path
from benchmark.core.errors import DataError, DigestMismatchError
from benchmark.core.hashing import sha256_file
from benchmark.core.paths import safe_join

_CHUNK = 1 << 20


def archive_members(model) -> list[dict]:
    """The manifest's `unzip_members` (empty for models that read their files as fetched)."""
    return list(model.loader_args.get("unzip_members") or [])


def unpack_members(model, folder: Path, *, fix: str) -> list[Path]:
    """Extract the manifest's members from its single zip file in `folder` (idempotent: a member already there
    with the pinned digest is kept)."""
    members = archive_members(model)
    if not members:
        return []
    zips = [f.path for f in model.files if f.path.endswith(".zip")]
    if len(zips) != 1:
        raise DataError(f"{model.ref}: unzip_members needs exactly one .zip file, the manifest lists "
                        f"{[f.path for f in model.files]}", fix="fix the model manifest")
    archive = safe_join(folder, zips[0])
    out = []
    for member in members:
        dest = safe_join(folder, member["path"])
        expected = member.get("sha256")
        if not (dest.is_file() and expected and sha256_file(dest) == expected):
            _extract(archive, member["path"], dest, expected, fix=fix)
        out.append(dest)
    return out


def _extract(archive: Path, name: str, dest: Path, expected: str | None, *, fix: str) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{archive} is not a readable zip ({e}); expected it to hold {name}", fix=fix) from None
    with zf:
        if name not in zf.namelist():
            listed = ", ".join(sorted(zf.namelist())[:8])
            raise DataError(f"{archive} has no member {name} (it holds: {listed})", fix=fix)
        digest = hashlib.sha256()
        with atomic_path(dest) as tmp:
            try:
                with zf.open(name) as src, open(tmp, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(f"{archive}: member {name} cannot be read ({e})", fix=fix) from None
            if expected is not None and digest.hexdigest() != expected:
                raise DigestMismatchError(f"{archive}: member {name} has sha256 {digest.hexdigest()}, expected "
                                          f"{expected}", fix=fix)
