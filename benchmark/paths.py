"""Where things live: the repository, manifests, fixtures, caches and run outputs."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent
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


def hub_endpoint() -> str:
    """The Hugging Face Hub endpoint `fetch` downloads hub sources from: `HF_ENDPOINT` (huggingface_hub's own
    setting, e.g. a mirror) or https://huggingface.co. Read at call time."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def mirror_url() -> str | None:
    """`ASYRP_MIRROR`: a mirror for url sources, or None. With it, `fetch` downloads `https://HOST/PATH` from
    `<ASYRP_MIRROR>/HOST/PATH` (host and path kept, so one mirror serves every upstream host); the digests pinned
    by the manifests are checked as always."""
    value = os.environ.get("ASYRP_MIRROR", "").strip()
    return value.rstrip("/") or None


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
