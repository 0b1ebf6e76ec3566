"""Back-end registries, one per kind, with weights resolution and a load-once cache.

A back-end turns uint8 images into what a metric's math needs (CLIP embeddings, label maps, FID features,
identity embeddings). Real back-ends load from a *local* path the caller passes (`fetch` is the harness's job);
offline ones (random or shipped weights) need none. Everything loaded is kept for the life of the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError, DigestMismatchError, MissingWeightsError
from benchmark.core.hashing import canonical_json, sha256_file
from benchmark.core.registry import Registry, require_choice

#: The kinds. A metric names the kind it needs; a back-end registers under exactly one. `factor-oracle` measures
#: a world's true factors from pixels (the synthetic world's attribute-shift metric).
KINDS = ("clip", "face-parser", "fid-features", "identity", "factor-oracle")


@dataclass(frozen=True)
class BackendEntry:
    """How to build one back-end.

    `loader(weights, device, **options)` returns the back-end object (see `metrics.backends.protocols`);
    `weights` is None when `needs_weights` is False. When the caller passes a folder, `weights_file` names the file
    inside it whose sha256 identifies the model. `sha256` is the digest pinned for that file when the caller
    passes none (the model manifest carries the same value); `sha256_prefix` is a partial digest known from an
    upstream file name (torch.hub's convention), checked when no full digest is pinned.
    """

    kind: str
    name: str
    model_id: str
    loader: Callable[..., Any]
    needs_weights: bool = True
    weights_file: str | None = None
    default_weights: Callable[[], Path | None] | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    description: str = ""

    @property
    def fetch_command(self) -> str:
        return f"python run_all.py fetch {self.name}"


BACKENDS: dict[str, Registry[BackendEntry]] = {kind: Registry(f"{kind} back-end") for kind in KINDS}


def register_backend(kind: str, name: str, loader: Callable[..., Any], *, model_id: str,
                     needs_weights: bool = True, weights_file: str | None = None,
                     default_weights: Callable[[], Path | None] | None = None, sha256: str | None = None,
                     sha256_prefix: str | None = None, description: str = "", replace: bool = False) -> BackendEntry:
    """Register a back-end of `kind` under `name` (which should equal its model manifest's name)."""
    require_choice("back-end kind", kind, list(KINDS))
    entry = BackendEntry(kind=kind, name=name, model_id=model_id, loader=loader, needs_weights=needs_weights,
                         weights_file=weights_file, default_weights=default_weights, sha256=sha256,
                         sha256_prefix=sha256_prefix,
                         description=description)
    BACKENDS[kind].register(name, entry, replace=replace)
    return entry


def get_backend(kind: str, name: str) -> BackendEntry:
    require_choice("back-end kind", kind, list(KINDS))
    return BACKENDS[kind].get(name)


_DIGESTS: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def resolve_weights(entry: BackendEntry, weights: str | os.PathLike | None,
                    expected_sha256: str | None) -> tuple[Path | None, str | None]:
    """Find and verify a back-end's weights; return (path, sha256 of the identifying file).

    Missing weights raise `MissingWeightsError` naming the fetch command; a digest that differs from
    `expected_sha256` (or from the entry's known prefix) raises `DigestMismatchError` before anything is loaded.
    """
    if not entry.needs_weights:
        if weights is not None:
            raise BenchError(f"{entry.kind} back-end {entry.name!r} takes no weights, but weights={weights!s} was given",
                             fix="drop the weights argument, or pick a back-end that loads a file")
        return None, None
    if weights is None and entry.default_weights is not None:
        weights = entry.default_weights()
    what = entry.weights_file or "its weights file"
    if weights is None:
        raise MissingWeightsError(f"{entry.kind} back-end {entry.name!r} ({entry.model_id}) needs {what}, "
                                  "and no local path was given",
                                  fix=f"run `{entry.fetch_command}`, then pass weights=<the fetched path>")
    path = Path(weights).expanduser()
    if not path.exists():
        raise MissingWeightsError(f"{entry.kind} back-end {entry.name!r}: weights not found at {path}",
                                  fix=f"run `{entry.fetch_command}`, or fix the path")
    digest_file = path
    if path.is_dir():
        if entry.weights_file is None:
            raise BenchError(f"{entry.kind} back-end {entry.name!r} expects a weights file, got the folder {path}")
        digest_file = path / entry.weights_file
        if not digest_file.is_file():
            raise MissingWeightsError(f"{entry.kind} back-end {entry.name!r}: {entry.weights_file} missing in {path}",
                                      fix=f"run `{entry.fetch_command}`")
    digest = cached_sha256(digest_file)
    expected_sha256 = expected_sha256 or entry.sha256
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise DigestMismatchError(f"{digest_file}: sha256 {digest} does not match the pinned {expected_sha256}",
                                  fix=f"re-fetch with `{entry.fetch_command}`; never load unverified weights")
    if expected_sha256 is None and entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        raise DigestMismatchError(f"{digest_file}: sha256 {digest} does not start with the upstream prefix "
                                  f"{entry.sha256_prefix}", fix=f"re-fetch with `{entry.fetch_command}`")
    return path.resolve(), digest


def weights_file_path(weights: Path, file_name: str) -> Path:
    """The weights file itself, whether the caller passed the file or the folder holding it."""
    return weights / file_name if weights.is_dir() else weights


_LOADED: dict[tuple, Any] = {}


def load_backend(kind: str, name: str, *, weights: str | os.PathLike | None = None, expected_sha256: str | None = None,
                 device: Any = "cpu", **options: Any) -> Any:
    """The back-end object for (kind, name, weights, device, options), built on first use and then reused."""
    import torch

    entry = get_backend(kind, name)
    path, digest = resolve_weights(entry, weights, expected_sha256)
    device = torch.device(device)
    key = (kind, name, str(path), digest, str(device), canonical_json(options))
    if key not in _LOADED:
        _LOADED[key] = entry.loader(path, device, **options)
    return _LOADED[key]


def clear_loaded_backends() -> None:
    """Forget every loaded back-end (tests; freeing memory between suites)."""
    _LOADED.clear()
