"""The report of one run: tables (Markdown, CSV, LaTeX), figures (PNG) and a static HTML page, all rebuilt from
the run folder alone (`results.json`, `per_image.jsonl`, the grid images, property data and label maps), so
`run_all.py report DIR` can regenerate them at any time.

`index.html` opens with the summary (per attribute the headline metrics beside the paper's and the study's
values), then the two verdict groups (known answers; paper claims under test), the figures in the blog's order,
and the detail tables, whose notes are listed once, numbered.

Layout: `<run>/report/{index.html, tables/*.{md,csv,tex}, figures/*.png}`. The report is built in a hidden
staging folder and swapped in, so a crash never leaves half a report.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from benchmark.core.atomic import atomic_dir, write_text
from benchmark.core.errors import BenchError
from benchmark.outputs.ablation import split_arm
from benchmark.outputs.figure_style import figure_style
from benchmark.outputs.headline import headline
from benchmark.outputs.report import figures
from benchmark.outputs.report.captions import caption as _caption
from benchmark.outputs.report.captions import figure_rank
from benchmark.outputs.report.tables import (
    MetricTable,
    detail_tables,
    training_speed_table,
    verdict_tables,
    write_tables,
)
from benchmark.outputs.report.verdicts import count_line
from benchmark.outputs.results import (
    RunResult,
    find_results_file,
    load_per_image,
    load_results,
    load_training,
    read_run_json,
)
from benchmark.outputs.run_folder import run_file

REPORT_DIR = "report"
GRID_FIXED_COLUMNS = ("original", "reconstruction")
DOMAIN_ORDER = ("in-domain", "unseen")


@dataclass(frozen=True)
class Report:
    folder: Path
    html: Path
    tables: list[Path]
    figures: list[Path]


def build_report(run_dir: str | Path) -> Report:
    """(Re)build `<run_dir>/report/` from the files of the run."""
    run_dir = find_results_file(run_dir).parent
    result = load_results(run_dir)
    rows = load_per_image(run_dir)
    final = run_dir / REPORT_DIR
    speed = training_speed_table(load_training(run_dir), not_for_reporting=result.not_for_reporting)
    extra = [speed] if speed is not None else []
    with atomic_dir(final) as staging:
        table_files = write_tables(result, staging / "tables", extra)
        with figure_style():
            figure_files = sorted(_figures(result, rows, run_dir, staging / "figures"), key=figure_rank)
        _html(result, verdict_tables(result), [*detail_tables(result), *extra], figure_files, staging / "index.html")
    moved = [final / p.relative_to(staging) for p in table_files + figure_files]
    return Report(final, final / "index.html", [p for p in moved if p.suffix != ".png"],
                  [p for p in moved if p.suffix == ".png"])


# -- figures ---------------------------------------------------------------------------------------------------

def _read_png(run_dir: Path, relative: str) -> np.ndarray:
    """A PNG that results.json names: inside the run folder (never a path out of it), present and decodable."""
    from PIL import Image, UnidentifiedImageError

    path = run_file(run_dir, relative)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BenchError(f"{path} is not a readable PNG ({exc})",
                         fix="copy the run folder again from where it was made, or rerun the suite") from None


def _segmentation_figure(run_dir: Path, folder: Path) -> list[Path]:
    """Figure 5 (the parser's label maps behind SC) when the run kept them."""
    from benchmark.outputs.figures import CannotMake, RunFiles
    from benchmark.outputs.figures.segmentation import segmentation_figure

    try:
        return segmentation_figure(RunFiles.load(run_dir), folder, "png")
    except CannotMake:
        return []


def _figures(result: RunResult, rows: list[dict], run_dir: Path, folder: Path) -> list[Path]:
    written = _segmentation_figure(run_dir, folder)
    if result.grid_images:
        by_domain: dict[str, list[str]] = defaultdict(list)
        for name, info in result.attributes.items():
            by_domain[info.domain].append(name)
        for domain in sorted(by_domain, key=lambda d: (DOMAIN_ORDER.index(d) if d in DOMAIN_ORDER else 9, d)):
            attrs = [a for a in by_domain[domain] if any(a in cells for cells in result.grid_images.values())]
            if not attrs:
                continue
            columns = [*GRID_FIXED_COLUMNS, *attrs]
            images = {(img_id, col): _read_png(run_dir, rel)
                      for img_id, cells in result.grid_images.items() for col, rel in cells.items() if col in columns}
            written.append(figures.edit_grid(list(result.grid_images), columns, images,
                                             folder / f"edit_grid_{domain}.png", title=f"{result.suite}: {domain}"))
    training = load_training(run_dir)
    if training:
        ablation = any(split_arm(k)[1] for k in training)
        group = (lambda k: (split_arm(k)[0], split_arm(k)[1] or k)) if ablation else (lambda k: ("f_t", k))
        written.append(figures.loss_curves(training, folder / "loss_curves.png", group=group))
    written += _property_figures(run_dir, folder)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        for metric, sub in frame.groupby("metric", sort=False):
            per_attr = {a: g["value"].dropna().tolist() for a, g in sub.groupby("attribute", sort=False)}
            mean_ci = {a: (mv.mean, mv.ci_low, mv.ci_high) for a, m in result.metrics.items()
                       if (mv := m.get(metric)) is not None}
            direction = next((m[metric].direction for m in result.metrics.values() if metric in m), "higher")
            written.append(figures.metric_distribution(metric, per_attr, folder / f"distribution_{metric}.png",
                                                       direction=direction, mean_ci=mean_ci))
    return written


PROPERTIES_FILE = "properties.json"  # written by benchmark.run.pipeline.save_properties


def _ci(d: dict) -> tuple[float, float | None, float | None]:
    return d["mean"], d.get("ci_low"), d.get("ci_high")


def _property_figures(run_dir: Path, folder: Path) -> list[Path]:
    """Figures of the h-space properties (a suite with known answers): image grids, response curves with CI
    bands (linearity, t_edit sweep) and bars (timestep consistency, homogeneity)."""
    path = run_dir / PROPERTIES_FILE
    if not path.is_file():
        return []
    props = read_run_json(path)
    written = []
    for name, grid in props.get("grids", {}).items():
        images = {(r, c): _read_png(run_dir, grid["cells"][i][j])
                  for i, r in enumerate(grid["rows"]) for j, c in enumerate(grid["cols"])}
        written.append(figures.edit_grid(grid["rows"], grid["cols"], images, folder / f"property_{name}.png",
                                         title=grid["title"]))
    curves = props.get("curves", {})
    shift_label = f"{props.get('measure', 'oracle')} shift of the target factor"
    linear = {k.split("/", 1)[1]: v for k, v in curves.items() if k.startswith("linearity/")}
    if linear:
        data = {f"{a} ({v['factor']})": (v["scales"], *zip(*(_ci(m) for m in v["mean_curve"]), strict=True))
                for a, v in linear.items()}
        written.append(figures.response_curves(
            data, folder / "property_linearity_curves.png", xlabel="Δh scale",
            ylabel=shift_label, untrained=(min(min(v["scales"]) for v in linear.values()), 0),
            title="Linearity: mean response over Δh scale (95% CI)"))
    sweep = {k.split("/", 1)[1]: v for k, v in curves.items() if k.startswith("t_edit_sweep/")}
    if sweep:
        data = {f"{a} ({v['factor']})": (v["t_edit"], *zip(*(_ci(m) for m in v["shift"]), strict=True))
                for a, v in sweep.items()}
        written.append(figures.response_curves(
            data, folder / "property_t_edit_sweep.png", xlabel="t_edit (Δh applied for t ≥ t_edit)",
            ylabel=shift_label,
            vlines={f"{a} ({v['factor']})": v["trained_t_edit"] for a, v in sweep.items()},
            title="t_edit sweep (dotted: the t_edit f_t was trained with)"))
    consistency = {k.split("/", 1)[1]: v for k, v in curves.items() if k.startswith("consistency/")}
    if consistency:
        for score, label, ref in (("relative_distance", "‖x_variant − x_Δh_t‖ / ‖x_Δh_t − x_0‖", 0.0),
                                  ("shift_ratio", "target shift, variant / Δh_t", 1.0)):
            groups = {a: {var: _ci(s[score]) for var, s in v["scores"].items()} for a, v in consistency.items()}
            written.append(figures.score_bars(groups, folder / f"property_consistency_{score}.png", ylabel=label,
                                              reference=ref, title=f"Timestep consistency: {score} (95% CI)"))
        groups = {a: {on: _ci(d) for on, d in v["homogeneity"].items()} for a, v in consistency.items()}
        written.append(figures.score_bars(groups, folder / "property_homogeneity.png", reference=1.0,
                                          ylabel="mean pairwise cosine", title="Homogeneity of the edit direction "
                                                                               "across images (95% CI)"))
    return written


# -- html ------------------------------------------------------------------------------------------------------

VERDICT_CLASSES = {"pass": "pass", "holds": "pass", "FAIL": "fail", "does not hold in this world": "nohold"}


def _verdict_class(text: str) -> str:
    return " ".join(sorted({cls for word, cls in VERDICT_CLASSES.items() if word in str(text).split(" / ")}))


def _table_html(table: MetricTable) -> str:
    classes = pd.DataFrame("", index=table.display.index, columns=table.display.columns)
    if "Verdict" in classes:
        classes["Verdict"] = table.display["Verdict"].map(_verdict_class)
    return table.display.style.hide(axis="index").set_td_classes(classes).to_html()


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _numbered_notes(tables: list[MetricTable]) -> tuple[list[str], dict[str, list[int]]]:
    """Each distinct note once, numbered in order of first use; per table the numbers of its notes."""
    numbers: dict[str, int] = {}
    per_table = {t.key: [numbers.setdefault(n, len(numbers) + 1) for n in t.notes] for t in tables}
    return list(numbers), per_table


def _summary(result: RunResult) -> dict:
    head = headline(result)
    rows = [{"attribute": attribute, "domain": result.attributes[attribute].domain,
             "cells": [None if c is None else {"text": c.text, "mean": repr(c.mean), "n": c.n,
                                                "refs": [r.text for r in c.references]} for c in cells]}
            for attribute, cells in head.rows]
    return {"columns": [{"key": c.key, "variant": c.variant or "", "title": c.title} for c in head.columns],
            "rows": rows}


def _html(result: RunResult, verdicts: list[MetricTable], details: list[MetricTable], figure_files: list[Path],
          path: Path) -> None:
    env = Environment(loader=PackageLoader("benchmark.outputs.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=True)
    notes, note_refs = _numbered_notes(details)
    page = env.get_template("report.html.j2").render(
        result=result, summary=_summary(result), counts=count_line(result),
        verdicts=[{"key": t.key, "title": t.title, "html": _table_html(t), "notes": t.notes} for t in verdicts],
        tables=[{"key": t.key, "title": t.title, "html": _table_html(t), "notes": note_refs[t.key]} for t in details],
        notes=notes,
        # Embedded as data URIs: the page is one file that opens from disk, and survives being copied alone.
        figures=[{"src": _data_uri(p), "caption": _caption(p), "name": p.stem} for p in figure_files],
    )
    write_text(path, page)
