"""The blog's image figures from a finished run.

- Figures 6–7: edit grids, in-domain and unseen: one row per image; original, DDIM reconstruction, then each
  attribute's edit at Δh scale 1 (for an ablation, each f_t arm's).
- Figure 8: the linearity strip: each attribute's edit over Δh scale −1…1 (the run's property images; negative
  scales were never trained), with the mean response and its 95% CI beneath.
- Figure 9: the combination grid: one image edited with two attributes' Δh at every pair of coefficients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from benchmark.outputs.figure_style import figure_style, image_cell, plt, save_figure
from benchmark.outputs.figures.run_files import CannotMake, RunFiles

FIXED = ("original", "reconstruction")
EDIT_GRIDS = {"in-domain": "figure6_edits_in_domain", "unseen": "figure7_edits_unseen"}


def _draw_cells(axes, rows: Sequence[str], cols: Sequence[str], cells: Mapping[tuple[str, str], np.ndarray], *,
                col_titles: Sequence[str] | None = None) -> None:
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            image_cell(ax, cells.get((row, col)))
            if i == 0:
                ax.set_title((col_titles or cols)[j].replace("[", "\n["), fontsize=7.5)
            if j == 0:
                ax.set_ylabel(row, fontsize=6.5)


def edit_grid_figure(run: RunFiles, out: Path, fmt: str, domain: str) -> list[Path]:
    if not run.result.grid_images:
        raise CannotMake("the run kept no grid images (results.json `grid_images` is empty)")
    edits = [k for k in run.edit_keys(domain) if any(k in c for c in run.result.grid_images.values())]
    if not edits:
        domains = sorted({i.domain for i in run.result.attributes.values()})
        raise CannotMake(f"the run edited no {domain} attribute (its domains: {', '.join(domains) or 'none'})")
    rows, cols = list(run.result.grid_images), [*FIXED, *edits]
    cells = {(r, c): run.image(rel) for r, per in run.result.grid_images.items() for c, rel in per.items()
             if c in cols}
    with figure_style():
        fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.25 * len(cols), 1.25 * len(rows) + 0.3),
                                 squeeze=False, gridspec_kw={"wspace": 0.03, "hspace": 0.03})
        _draw_cells(axes, rows, cols, cells)
        fig.suptitle(f"{run.result.suite}: {domain} edits", fontsize=9)
        return [save_figure(fig, out / f"{EDIT_GRIDS[domain]}.{fmt}")]


def _property_grids(run: RunFiles, prefix: str, what: str) -> dict[str, dict]:
    if run.properties is None:
        raise CannotMake("the run has no h-space property data (properties.json): its suite defines no "
                         "`known_answers`")
    grids = {k: g for k, g in run.properties.get("grids", {}).items() if k.startswith(prefix)}
    if not grids:
        raise CannotMake(f"the run's property data has no {what}")
    return grids


def _grid_cells(run: RunFiles, grid: dict) -> dict[tuple[str, str], np.ndarray]:
    return {(r, c): run.image(grid["cells"][i][j]) for i, r in enumerate(grid["rows"])
            for j, c in enumerate(grid["cols"])}


def linearity_figure(run: RunFiles, out: Path, fmt: str) -> list[Path]:
    grids = _property_grids(run, "linearity_", "linearity strip (a linearity check)")
    curves = {k.split("/", 1)[1]: v for k, v in run.properties.get("curves", {}).items()
              if k.startswith("linearity/")}
    first = {name.removeprefix("linearity_"): g for name, g in grids.items()}
    cols = next(iter(first.values()))["cols"]
    with figure_style():
        n = len(first)
        fig = plt.figure(figsize=(1.15 * len(cols) + 0.4, 1.25 * n + 2.3))
        spec = fig.add_gridspec(n + 1, len(cols), height_ratios=[1] * n + [1.6], hspace=0.25, wspace=0.03)
        for i, (attribute, grid) in enumerate(first.items()):
            image_id = grid["rows"][0]
            cells = _grid_cells(run, {**grid, "rows": grid["rows"][:1], "cells": grid["cells"][:1]})
            axes = [[fig.add_subplot(spec[i, j]) for j in range(len(grid["cols"]))]]
            _draw_cells(axes, [image_id], grid["cols"], cells,
                        col_titles=[f"Δh × {c}" for c in grid["cols"]] if i == 0 else [""] * len(grid["cols"]))
            axes[0][0].set_ylabel(f"{attribute}\n{image_id}", fontsize=6.5)
        ax = fig.add_subplot(spec[n, :])
        for k, (attribute, curve) in enumerate(curves.items()):
            scales = curve["scales"]
            mean = [m["mean"] for m in curve["mean_curve"]]
            ax.plot(scales, mean, marker="o", ms=3, color=f"C{k}", label=f"{attribute} ({curve['factor']})")
            low, high = [m.get("ci_low") for m in curve["mean_curve"]], [m.get("ci_high") for m in curve["mean_curve"]]
            if None not in low and None not in high:
                ax.fill_between(scales, low, high, color=f"C{k}", alpha=0.2, linewidths=0)
        ax.axvspan(min(min(c["scales"]) for c in curves.values()), 0, color="0.93", zorder=0, label="never trained")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xlabel("Δh scale")
        ax.set_ylabel("target shift (mean, 95% CI)")
        ax.legend(loc="upper left")
        fig.suptitle("Linearity: the edit over Δh scale −1…1", fontsize=9)
        return [save_figure(fig, out / f"figure8_linearity.{fmt}")]


def combination_figure(run: RunFiles, out: Path, fmt: str) -> list[Path]:
    grids = _property_grids(run, "combination_", "combination grid (a `combination` pair of attributes)")
    name, grid = next(iter(grids.items()))
    image_id = name.removeprefix("combination_")
    with figure_style():
        fig, axes = plt.subplots(len(grid["rows"]), len(grid["cols"]),
                                 figsize=(1.3 * len(grid["cols"]) + 0.6, 1.3 * len(grid["rows"]) + 0.5),
                                 squeeze=False, gridspec_kw={"wspace": 0.03, "hspace": 0.03})
        _draw_cells(axes, grid["rows"], grid["cols"], _grid_cells(run, grid))
        fig.suptitle(f"Linear combination, image {image_id}: {grid['title'].split(': ', 1)[-1]}", fontsize=8.5)
        return [save_figure(fig, out / f"figure9_combination.{fmt}")]
