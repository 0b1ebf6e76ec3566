"""The report of one run: tables (Markdown, CSV, LaTeX), figures (PNG) and a static HTML page, all rebuilt from
the run folder alone (`results.json`, `per_image.jsonl` and the grid images), so `run_all.py report DIR` can
regenerate them at any time.

Layout: `<run>/report/{index.html, tables/*.{md,csv,tex}, figures/*.png}`. The report is built in a hidden
staging folder and swapped in, so a crash never leaves half a report.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from benchmark.ablation import split_arm
from benchmark.atomic import write_text
from benchmark.report import figures
from benchmark.report.tables import MetricTable, all_tables, write_tables
from benchmark.results import RunResult, find_results_file, load_per_image, load_results, load_training

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
    staging = run_dir / f".{REPORT_DIR}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        table_files = write_tables(result, staging / "tables")
        figure_files = _figures(result, rows, run_dir, staging / "figures")
        _html(result, all_tables(result), figure_files, staging / "index.html")
        if final.exists():
            old = run_dir / f".{REPORT_DIR}.old-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    moved = [final / p.relative_to(staging) for p in table_files + figure_files]
    return Report(final, final / "index.html", [p for p in moved if p.suffix != ".png"],
                  [p for p in moved if p.suffix == ".png"])


# -- figures ---------------------------------------------------------------------------------------------------

def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _figures(result: RunResult, rows: list[dict], run_dir: Path, folder: Path) -> list[Path]:
    written = []
    if result.grid_images:
        by_domain: dict[str, list[str]] = defaultdict(list)
        for name, info in result.attributes.items():
            by_domain[info.domain].append(name)
        for domain in sorted(by_domain, key=lambda d: (DOMAIN_ORDER.index(d) if d in DOMAIN_ORDER else 9, d)):
            attrs = [a for a in by_domain[domain] if any(a in cells for cells in result.grid_images.values())]
            if not attrs:
                continue
            columns = [*GRID_FIXED_COLUMNS, *attrs]
            images = {(img_id, col): _read_png(run_dir / rel)
                      for img_id, cells in result.grid_images.items() for col, rel in cells.items() if col in columns}
            written.append(figures.edit_grid(list(result.grid_images), columns, images,
                                             folder / f"edit_grid_{domain}.png", title=f"{result.suite}: {domain}"))
    training = load_training(run_dir)
    if training:
        ablation = any(split_arm(k)[1] for k in training)
        group = (lambda k: (split_arm(k)[0], split_arm(k)[1] or k)) if ablation else (lambda k: ("f_t", k))
        written.append(figures.loss_curves(training, folder / "loss_curves.png", group=group))
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


# -- html ------------------------------------------------------------------------------------------------------

def _table_html(table: MetricTable) -> str:
    classes = pd.DataFrame("", index=table.display.index, columns=table.display.columns)
    if "Verdict" in classes:
        classes["Verdict"] = table.display["Verdict"].map(
            lambda v: "fail" if "FAIL" in v else ("pass" if "PASS" in v else ""))
    return table.display.style.hide(axis="index").set_td_classes(classes).to_html()


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _caption(path: Path) -> str:
    stem = path.stem
    if stem.startswith("edit_grid_"):
        return (f"Edits, {stem.removeprefix('edit_grid_')} attributes: original, DDIM reconstruction, and the edit "
                "of each attribute (one row per image).")
    if stem == "loss_curves":
        return ("Training loss of each f_t: mean over the timesteps of each rollout (thin) and its running mean "
                "over 10 rollouts (bold).")
    return f"Per-image distribution of {stem.removeprefix('distribution_')} per attribute."


def _html(result: RunResult, tables: list[MetricTable], figure_files: list[Path], path: Path) -> None:
    env = Environment(loader=PackageLoader("benchmark.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=True)
    page = env.get_template("report.html.j2").render(
        result=result,
        tables=[{"key": t.key, "title": t.title, "html": _table_html(t), "notes": t.notes} for t in tables],
        # Embedded as data URIs: the page is one file that opens from disk, and survives being copied alone.
        figures=[{"src": _data_uri(p), "caption": _caption(p)} for p in figure_files],
    )
    write_text(path, page)
