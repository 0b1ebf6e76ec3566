"""The feature sets of a run's set metrics (FID, KID), kept in the run folder so those metrics can be recomputed
on any subset of the images (per group: `run_all.py bias`) without the images or the feature network.

Layout: `<run>/features/index.json` and one `<digest>.safetensors` per distinct N×D feature matrix (float64,
rows in the run's image order), named by its `tensor_digest`, so the reference set shared by many attributes and
by FID and KID is stored once. The index maps `edit key -> metric key -> {"edited", "reference"}` file names and
lists the image ids once. Loading re-checks each matrix against its digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from benchmark.core.atomic import save_safetensors, write_json
from benchmark.core.errors import DataError
from benchmark.core.hashing import tensor_digest

FEATURES_DIR = "features"
INDEX_FILE = "index.json"
FORMAT_VERSION = 1


def write_feature_sets(folder: Path, ids: Sequence[str],
                       sets: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]]) -> Path | None:
    """Write `sets[edit_key][metric_key] = {"edited": N×D, "reference": N×D}` under `folder/features/`.

    Returns the index path, or None when there is nothing to write (no set metric in the run)."""
    index: dict[str, dict[str, dict[str, str]]] = {}
    for edit_key, per_metric in sets.items():
        for metric_key, pair in per_metric.items():
            if not pair:
                continue
            index.setdefault(edit_key, {})[metric_key] = {
                role: _write_matrix(folder / FEATURES_DIR, matrix, len(ids)) for role, matrix in pair.items()}
    if not index:
        return None
    path = folder / FEATURES_DIR / INDEX_FILE
    write_json(path, {"format": FORMAT_VERSION, "ids": list(ids), "sets": index})
    return path


def _write_matrix(folder: Path, matrix: torch.Tensor, n: int) -> str:
    matrix = torch.as_tensor(matrix).to(torch.float64).contiguous()
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise ValueError(f"expected a {n}×D feature matrix, got shape {tuple(matrix.shape)}")
    name = f"{tensor_digest(matrix)}.safetensors"
    if not (folder / name).is_file():
        save_safetensors(folder / name, {"features": matrix})
    return name


class RunFeatureSets:
    """The feature sets of one run folder, read lazily and verified."""

    def __init__(self, run_dir: Path):
        self.folder = Path(run_dir) / FEATURES_DIR
        index_path = self.folder / INDEX_FILE
        if not index_path.is_file():
            raise DataError(f"the run {run_dir} stored no feature sets ({FEATURES_DIR}/{INDEX_FILE} is missing), so "
                            "its FID/KID cannot be split by group",
                            fix="rerun the suite with this version (its measure stage stores them), or stratify "
                                "only the per-image metrics")
        import json

        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except ValueError as exc:  # not JSON, or not UTF-8
            raise DataError(f"{index_path} is damaged ({exc})", fix="rerun the suite") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT_VERSION:
            got = index.get("format") if isinstance(index, dict) else None
            raise DataError(f"{index_path} has format {got!r}; this version reads {FORMAT_VERSION}",
                            fix="rerun the suite with this version")
        self.ids: list[str] = list(index["ids"])
        self.sets: dict[str, dict[str, dict[str, str]]] = index["sets"]

    def has(self, edit_key: str, metric_key: str) -> bool:
        return metric_key in self.sets.get(edit_key, {})

    def pair(self, edit_key: str, metric_key: str) -> tuple[np.ndarray, np.ndarray]:
        files = self.sets[edit_key][metric_key]
        return self._load(files["edited"]), self._load(files["reference"])

    def _load(self, name: str) -> np.ndarray:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if Path(name).name != name or not name.endswith(".safetensors"):
            raise DataError(f"feature index names an invalid file {name!r}", fix="rerun the suite")
        path = self.folder / name
        if not path.is_file():
            raise DataError(f"feature file {path} is missing", fix="rerun the suite (the run folder is incomplete)")
        try:
            matrix = load_file(str(path))["features"]
        except (SafetensorError, KeyError, OSError) as exc:
            raise DataError(f"feature file {path} cannot be read ({exc})", fix="rerun the suite") from None
        if f"{tensor_digest(matrix)}.safetensors" != name:
            raise DataError(f"feature file {path} does not match its digest (damaged or edited)",
                            fix="rerun the suite")
        return matrix.numpy()
