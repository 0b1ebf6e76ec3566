"""What a blog figure reads from a finished run folder, loaded once: the results, the per-image values, the
h-space property data (`properties.json`) and the parser's label maps (`segmentation.json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.outputs.results import RunResult, find_results_file, load_per_image, load_results

PROPERTIES_FILE = "properties.json"  # written by benchmark.run.pipeline.save_properties
SEGMENTATION_FILE = "segmentation.json"  # written by benchmark.run.label_maps.save_label_maps


class CannotMake(Exception):
    """A figure this run cannot give; the message says why (and, where there is one, how to get it)."""


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@dataclass(frozen=True)
class RunFiles:
    folder: Path
    result: RunResult
    per_image: list[dict[str, Any]]
    properties: dict[str, Any] | None
    segmentation: dict[str, Any] | None

    @classmethod
    def load(cls, run_dir: str | Path) -> RunFiles:
        folder = find_results_file(run_dir).parent
        return cls(folder, load_results(folder), load_per_image(folder), _json(folder / PROPERTIES_FILE),
                   _json(folder / SEGMENTATION_FILE))

    def image(self, rel: str, *, mode: str = "RGB") -> np.ndarray:
        """A PNG of the run (a grid image, a property cell, a label map), refusing paths that leave the folder."""
        from PIL import Image

        path = (self.folder / rel).resolve()
        if self.folder.resolve() not in path.parents:
            raise CannotMake(f"{rel!r} points outside the run folder")
        if not path.is_file():
            raise CannotMake(f"the run folder lacks {rel} (a copy without its images?)")
        with Image.open(path) as im:
            return np.asarray(im.convert(mode) if mode else im)

    def per_image_value(self, attribute: str, metric: str, image_id: str) -> float | None:
        for row in self.per_image:
            if row["attribute"] == attribute and row["metric"] == metric and row["id"] == image_id:
                return row["value"]
        return None

    def edit_keys(self, domain: str | None = None) -> list[str]:
        """Attribute keys of the edits at Δh scale 1 (the blog's grids), in the run's order; optionally one domain."""
        return [k for k, info in self.result.attributes.items()
                if info.delta_h_scale == 1.0 and (domain is None or info.domain == domain)]
