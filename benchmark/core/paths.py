"""Where things live: the repository, manifests, fixtures, caches and run outputs.

This is the only module that reads the environment: every `ASYRP_*` variable (and the Hub endpoint) has its
accessor here, so what a variable does is written down once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmark.core.errors import BenchError, DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS_DIR = REPO_ROOT / "manifests"
RESULTS_DIR = REPO_ROOT / "results"


def manifests_dir() -> Path:
    """The manifest tree: the repository's `manifests/`, or `ASYRP_MANIFESTS` (a private or test copy)."""
    return Path(os.environ.get("ASYRP_MANIFESTS", MANIFESTS_DIR)).expanduser().resolve()


def fixtures_dir() -> Path:
    """The shared real-data fixtures (never copied into the repo). `ASYRP_FIXTURES` overrides the default."""
    return Path(os.environ.get("ASYRP_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures")).resolve()


def cache_dir() -> Path:
    """Content-addressed stage cache and fetched weights. `ASYRP_CACHE` > `$XDG_CACHE_HOME/asyrp-bench`."""
    if "ASYRP_CACHE" in os.environ:
        return Path(os.environ["ASYRP_CACHE"]).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return (base / "asyrp-bench").resolve()


def weights_dir() -> Path:
    """Fetched weights live here (`ASYRP_WEIGHTS` overrides); `fetch` is the only thing that writes to it."""
    if "ASYRP_WEIGHTS" in os.environ:
        return Path(os.environ["ASYRP_WEIGHTS"]).expanduser().resolve()
    return cache_dir() / "weights"


def lock_path() -> Path:
    """The lock file of recorded digests: `ASYRP_LOCK`, else `lock.json` beside the manifests it completes (the
    repo's `manifests/`, or the tree `ASYRP_MANIFESTS` names: another tree's digests must not land in the repo's
    lock file)."""
    return Path(os.environ.get("ASYRP_LOCK", manifests_dir() / "lock.json")).expanduser().resolve()


def celeba_attributes_file() -> Path | None:
    """The CelebA attribute file `bias` reads when none is passed (`ASYRP_CELEBA_ATTRIBUTES`), or None."""
    value = os.environ.get("ASYRP_CELEBA_ATTRIBUTES")
    return Path(value).expanduser() if value else None


def hub_endpoint() -> str:
    """The Hugging Face Hub endpoint (`HF_ENDPOINT`, as huggingface_hub reads it), without a trailing slash."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def mirror_url() -> str | None:
    """`ASYRP_MIRROR`: a mirror for url sources, or None. With it, `fetch` downloads `https://HOST/PATH` from
    `<ASYRP_MIRROR>/HOST/PATH` (host and path kept, so one mirror serves every upstream host); the digests pinned
    by the manifests are checked as always."""
    value = os.environ.get("ASYRP_MIRROR", "").strip()
    return value.rstrip("/") or None


def manifests_dir_from_env() -> str | None:
    """`ASYRP_MANIFESTS` as given (None when unset), for error messages that name the variable."""
    return os.environ.get("ASYRP_MANIFESTS")


def check_writable_dir(path: str | Path, *, flag: str = "--out", what: str = "the output folder",
                       fix: str | None = None) -> None:
    """Refuse, before any compute, a folder that could not be written; never creates it (bad input leaves no
    empty folder behind). The nearest existing ancestor must be a folder where a file can really be created
    (`os.access` can be wrong on read-only mounts and for root)."""
    path = Path(path).expanduser()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    fix = fix or f"pass {flag} with a folder you can write to (it is created if missing)"
    if not probe.is_dir():
        raise BenchError(f"{what} {path} cannot be written: {probe} is not a folder", fix=fix)
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".asyrp-write-test-"):
            pass
    except OSError as exc:
        raise BenchError(f"{what} {path} cannot be written: {exc.strerror or exc}", fix=fix) from None


def safe_join(root: str | Path, relative: str | Path) -> Path:
    """`root / relative`, refusing absolute paths and anything that resolves outside `root` (e.g. `../`)."""
    root = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute():
        raise DataError(f"path {str(relative)!r} is absolute; manifest paths must be relative to {root}",
                        fix="write the path relative to the manifest's root folder")
    full = (root / rel).resolve()
    if full != root and root not in full.parents:
        raise DataError(f"path {str(relative)!r} escapes its root {root}",
                        fix="remove '..' components and symlinks that point outside the root")
    return full
