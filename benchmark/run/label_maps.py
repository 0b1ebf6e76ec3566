"""The face parser's label maps behind SC, for the first images of a run (the blog's Figure 5).

SC compares the parser's argmax labels of each edit with those of its reference; the run keeps the maps of the
grid images (original, reconstruction, every edit) so the figure needs neither the parser nor its weights later.
Written as `segmentation/<metric key>/<image id>/<column>.png` (mode L: one label index per pixel) and
`segmentation.json` (per SC metric: the label set in label order, the reference, and the PNGs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark.core.atomic import atomic_path, write_json

SEGMENTATION_FILE = "segmentation.json"
SEGMENTATION_DIR = "segmentation"
SC_METRIC = "sc@1"


def _safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def _save_labels(path: Path, labels: torch.Tensor) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(labels.to(torch.uint8).numpy(), mode="L").save(tmp, format="PNG")


def _parse(metric: Any, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return metric.parse(metric.backend(), images, "label maps")


def save_label_maps(state: Any, folder: Path) -> dict[str, Any]:
    """Label maps of the grid images for every SC metric of the run; {} when the suite measures no SC."""
    plan = state.plan
    sc_metrics = [pm for pm in plan.metrics if getattr(pm.metric, "name", "") == SC_METRIC
                  and callable(getattr(pm.metric, "parse", None))]
    items = list(plan.images[: plan.grid_count])
    if not sc_metrics or not items:
        return {}
    recon = torch.cat([e.output.tensors["reconstruction"] for e in state.test_inversions])[: len(items)]
    columns = {"original": torch.stack([it.pixels for it in items]), "reconstruction": recon}
    columns.update({key: entry.output.tensors["edited"][: len(items)] for key, entry in state.edits.items()})
    out: dict[str, Any] = {}
    for pm in sc_metrics:
        spec = pm.metric.spec_dict()
        names = list(columns)
        labels = _parse(pm.metric, torch.cat([columns[c] for c in names]))
        maps: dict[str, dict[str, str]] = {it.id: {} for it in items}
        for k, col in enumerate(names):
            for i, item in enumerate(items):
                rel = Path(SEGMENTATION_DIR) / _safe_name(pm.key) / _safe_name(item.id) / f"{_safe_name(col)}.png"
                _save_labels(folder / rel, labels[k * len(items) + i])
                maps[item.id][col] = rel.as_posix()
        label_set = getattr(pm.metric.backend(), "label_set", None)
        out[pm.key] = {"metric": SC_METRIC, "reference": spec.get("reference", "reconstruction"),
                       "backend": spec.get("backend"),
                       "classes": list(label_set.classes) if label_set is not None else [],
                       "label_set": getattr(label_set, "name", ""), "maps": maps}
    write_json(folder / SEGMENTATION_FILE, out)
    return out
