"""`run_all.py figures RUN_DIR`: the blog's Figures 5–9 and Table 2 from a run folder alone, in PNG, PDF or SVG,
saying which figure a run cannot make and why. The same from a real tiny paper-table run, with the label maps it
keeps for Figure 5: tests/harness/test_e2e.py."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.outputs.figures import make_figures
from benchmark.outputs.figures.segmentation import BISENET_COLOURS, CELEBAMASK_COLOURS, colourise, palette
from benchmark.outputs.results import (
    Aggregate,
    AttributeInfo,
    MetricValue,
    ReferenceValue,
    RunInfo,
    RunResult,
    write_results,
)

CLASSES = ["background", "skin", "hair", "eye", "brow", "nose", "mouth"]
IDS = ["a", "b"]


def _png(folder: Path, rel: str, pixels: np.ndarray, mode: str = "RGB") -> str:
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(folder / rel)
    return rel


def _mv(mean, metric, variants=None):
    return MetricValue(mean=mean, ci_low=mean - 0.01, ci_high=mean + 0.01, n=2, direction="higher",
                       spec={"metric": metric}, variants=variants or {})


def make_run(folder: Path, *, properties=True, label_maps=True) -> Path:
    """A run folder by hand: smiling (in-domain) and pixar (unseen), grid images, optionally the h-space property
    data and the parser's label maps."""
    folder.mkdir(parents=True)
    grid = {i: {c: _png(folder, f"images/{i}/{c}.png", np.full((16, 16, 3), 40 * k, np.uint8))
                for k, c in enumerate(["original", "reconstruction", "smiling", "pixar"])} for i in IDS}
    sdir_var = {"one_minus_cos": Aggregate(mean=0.9, ci_low=0.89, ci_high=0.91, n=2)}
    metrics = {a: {"sdir": _mv(0.1, "sdir@1", sdir_var), "sc": _mv(0.95, "sc@1")} for a in ("smiling", "pixar")}
    refs = [ReferenceValue(metric="sdir", attribute="smiling", column="paper", value=0.921, variant="paper-scale",
                           gated=False),
            ReferenceValue(metric="sdir", attribute="smiling", column="reproduction-study", value=0.955,
                           variant="one_minus_cos"),
            ReferenceValue(metric="sc", attribute="pixar", column="paper", value=None)]
    info = RunInfo(git_sha=None, git_dirty=None, manifest_digests={}, seeds={}, packages={}, device={},
                   stage_seconds={}, started_at="t", ended_at="t")
    result = RunResult(suite="paper-table@1", run=info, metrics=metrics, references=refs, grid_images=grid,
                       attributes={"smiling": AttributeInfo(name="smiling", domain="in-domain"),
                                   "pixar": AttributeInfo(name="pixar", domain="unseen")})
    rows = [{"attribute": a, "metric": "sc", "id": i, "value": 0.9 + 0.01 * k}
            for a in ("smiling", "pixar") for k, i in enumerate(IDS)]
    write_results(folder, result, rows)
    if properties:
        cell = lambda n, r, c: _png(folder, f"images/properties/{n}/r{r}_c{c}.png",  # noqa: E731
                                    np.full((16, 16, 3), 10 * (r + c), np.uint8))
        lin = {"title": "smiling: Δh scale", "rows": IDS, "cols": ["-1", "0", "1"],
               "cells": [[cell("lin", r, c) for c in range(3)] for r in range(2)]}
        comb = {"title": "a: rows smiling coefficient, columns tanned coefficient", "rows": ["0", "1"],
                "cols": ["0", "1"], "cells": [[cell("comb", r, c) for c in range(2)] for r in range(2)]}
        curve = {"scales": [-1, 0, 1], "factor": "smiling",
                 "mean_curve": [{"mean": m, "ci_low": m - 0.1, "ci_high": m + 0.1} for m in (-0.5, 0.0, 0.5)]}
        (folder / "properties.json").write_text(json.dumps({"curves": {"linearity/smiling": curve},
                                                            "grids": {"linearity_smiling": lin,
                                                                      "combination_a": comb}}))
    if label_maps:
        maps = {i: {c: _png(folder, f"segmentation/sc/{i}/{c}.png", np.full((16, 16), k % 7, np.uint8), "L")
                    for k, c in enumerate(["original", "reconstruction", "smiling", "pixar"])} for i in IDS}
        (folder / "segmentation.json").write_text(json.dumps({"sc": {
            "metric": "sc@1", "reference": "reconstruction", "backend": "x", "classes": CLASSES,
            "label_set": "synthetic-face", "maps": maps}}))
    return folder


def test_every_figure_from_a_complete_run(tmp_path):
    made = make_figures(make_run(tmp_path / "run"), tmp_path / "out", "png")
    assert [name for name, _, _ in made.made] == ["Figure 5", "Figure 6", "Figure 7", "Figure 8", "Figure 9",
                                                  "Table 2"] and not made.skipped
    for _, _, paths in made.made[:5]:
        with Image.open(paths[0]) as im:
            assert im.format == "PNG" and im.width > 300
    md = (tmp_path / "out" / "table2.md").read_text()
    assert "0.921 (paper-scale)" in md and "0.955" in md and "not reported" in md  # paper, study, a null value
    assert r"\begin{tabular}" in (tmp_path / "out" / "table2.tex").read_text()


@pytest.mark.parametrize("fmt", ["pdf", "svg"])
def test_vector_formats(tmp_path, fmt):
    made = make_figures(make_run(tmp_path / "run"), tmp_path / "out", fmt)
    paths = [p for _, _, ps in made.made for p in ps if p.suffix == f".{fmt}"]
    assert len(paths) == 5
    for p in paths:
        data = p.read_bytes()
        if fmt == "pdf":
            assert data.startswith(b"%PDF")
        else:
            assert ET.fromstring(data).tag.endswith("svg") and b"<text" in data  # text stays text


def test_says_which_figures_a_run_cannot_make_and_why(tmp_path, capsys):
    run = make_run(tmp_path / "run", properties=False, label_maps=False)
    assert main(["figures", str(run), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Figure 5 (segmentation maps behind SC): cannot make: the run folder has no label maps" in out
    assert "Figure 8 (linearity strip over Δh scale): cannot make: the run has no h-space property data" in out
    assert "Figure 9" in out and "defines no `known_answers`" in out
    assert "Figure 6 (edit grid, in-domain attributes): " + str(tmp_path / "out") in out
    assert "3 of 6 written" in out
    with pytest.raises(SystemExit) as usage:
        main(["figures", str(run), "--format", "gif"])
    assert usage.value.code == 2
    assert main(["figures", str(tmp_path)]) == 2  # no results.json


def test_palettes_are_the_parsers_colours():
    bisenet = ["background", "skin", "l_brow"] + [f"c{i}" for i in range(16)]
    assert [tuple(c) for c in palette("bisenet-face-parsing", bisenet)[:3]] == BISENET_COLOURS[:3]
    synthetic = palette("synthetic-face", CLASSES)
    assert tuple(synthetic[1]) == CELEBAMASK_COLOURS["skin"] and tuple(synthetic[3]) == CELEBAMASK_COLOURS["l_eye"]
    labels = np.array([[0, 1], [6, 3]])
    assert colourise(labels, synthetic)[1, 0].tolist() == list(CELEBAMASK_COLOURS["mouth"])
