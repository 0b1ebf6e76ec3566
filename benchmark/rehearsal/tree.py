"""The forged tree: every forged file at the URL path a mirror serves it under, plus an index of digests.

Layout (relative to the tree root; `benchmark.rehearsal.mirror` serves the root as is):
- a `url` source file `https://HOST/PATH` lives at `HOST/PATH` (the mirror scheme of `benchmark.core.paths.mirror_url`);
- a `hub` source file lives at `REPO_ID/resolve/REVISION/PATH` (the Hub's own download path, so HF_ENDPOINT can
  point at the mirror);
- `index.json`: per model ref, per manifest file path, {tree path, sha256, size}, plus the seed and the digest of
  the forging code. A tree is reused only for the same seed and code, and after its files' digests check out.

Forged trees are cached per seed under `<cache_dir>/rehearsal/forged-seed<N>` (`forged_tree`), so a second
rehearsal skips the forging (minutes) and only re-hashes (seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from benchmark.core.atomic import write_json
from benchmark.core.errors import BenchError
from benchmark.core.hashing import json_digest, sha256_file
from benchmark.core.paths import cache_dir, safe_join
from benchmark.inputs.manifests import HubSource, UrlSource

INDEX = "index.json"


def mirror_path(manifest, f) -> str:
    """Where a model file sits in the tree (= the URL path the mirror serves it under)."""
    if isinstance(manifest.source, HubSource):
        return f"{manifest.source.repo_id}/resolve/{manifest.source.revision}/{f.path}"
    if isinstance(manifest.source, UrlSource):
        url = urlsplit(f.url)
        return f"{url.hostname}{url.path}"
    raise BenchError(f"{manifest.ref}: only url and hub sources are fetched, so only they are forged "
                     f"(source type {manifest.source.type})")


def code_digest() -> str:
    """Digest of the forging code: a changed forger invalidates cached trees."""
    here = Path(__file__).parent
    return json_digest({p.name: sha256_file(p) for p in sorted(here.glob("forge*.py")) + [here / "fill.py",
                                                                                          here / "formats.py"]})


@dataclass
class ForgedTree:
    """A forged tree on disk and what it holds: `files[model_ref][manifest path] = {path, sha256, size}`."""

    root: Path
    seed: int
    files: dict[str, dict[str, dict]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def file(self, ref: str, path: str) -> dict:
        return self.files[ref][path]

    def total_bytes(self) -> int:
        return sum(f["size"] for files in self.files.values() for f in files.values())

    def save(self) -> None:
        write_json(self.root / INDEX, {"seed": self.seed, "code": code_digest(), "files": self.files,
                                       "seconds": self.seconds})

    @classmethod
    def load(cls, root: Path, seed: int) -> ForgedTree:
        """The tree at `root`, keeping only entries forged with this seed and code whose files still match."""
        import json

        tree = cls(Path(root), seed)
        index = Path(root) / INDEX
        if not index.is_file():
            return tree
        doc = json.loads(index.read_text())
        if doc.get("seed") != seed or doc.get("code") != code_digest():
            return tree
        for ref, files in doc.get("files", {}).items():
            if all(_intact(tree.root, f) for f in files.values()):
                tree.files[ref] = files
                tree.seconds[ref] = doc.get("seconds", {}).get(ref, 0.0)
        return tree


def _intact(root: Path, entry: dict) -> bool:
    path = safe_join(root, entry["path"])
    return path.is_file() and path.stat().st_size == entry["size"] and sha256_file(path) == entry["sha256"]


def forge_models(manifests, root: Path, *, seed: int = 0, progress=None) -> ForgedTree:
    """Forge every listed model manifest that `root` does not already hold (for this seed and code)."""
    from benchmark.rehearsal.forge_models import forger_for

    root = Path(root)
    tree = ForgedTree.load(root, seed)
    for manifest in manifests:
        if not manifest.files or manifest.ref in tree.files:
            continue
        by_path = {f.path: f for f in manifest.files}

        def dest(path: str, _m=manifest, _f=by_path) -> Path:
            if path not in _f:
                raise BenchError(f"forger of {_m.ref} writes {path}, which its manifest does not list")
            return safe_join(root, mirror_path(_m, _f[path]))

        started = time.perf_counter()
        if progress:
            progress(f"forging {manifest.ref}")
        forger_for(manifest)(manifest, seed, dest)
        entries = {}
        for f in manifest.files:
            rel = mirror_path(manifest, f)
            path = safe_join(root, rel)
            if not path.is_file():
                raise BenchError(f"forger of {manifest.ref} did not write {f.path}")
            entries[f.path] = {"path": rel, "sha256": sha256_file(path), "size": path.stat().st_size}
        tree.files[manifest.ref] = entries
        tree.seconds[manifest.ref] = round(time.perf_counter() - started, 2)
        tree.save()  # after each model: an interrupted forging keeps what it finished
    return tree


def forged_tree(manifests, *, seed: int = 0, root: Path | None = None, progress=None) -> ForgedTree:
    """`forge_models` into the per-seed cache folder (or `root`)."""
    root = Path(root) if root is not None else cache_dir() / "rehearsal" / f"forged-seed{seed}"
    return forge_models(manifests, root, seed=seed, progress=progress)
