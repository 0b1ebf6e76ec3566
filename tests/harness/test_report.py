"""Report: tables (Markdown, CSV, LaTeX), figures, the HTML page (parsed here; as a browser shows it in
test_report_browser.py), `report DIR` regeneration and `compare`."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.outputs.report import build_report
from benchmark.outputs.report.compare import compare_runs
from benchmark.outputs.report.tables import SDIR_CAVEAT, latex_text
from benchmark.outputs.results import (
    AttributeInfo,
    Band,
    Gate,
    MetricValue,
    ReferenceValue,
    RunInfo,
    RunResult,
    write_results,
)


def _mv(mean, direction="higher", variants=None, n=3, metric="sdir@1"):
    return MetricValue(mean=mean, ci_low=mean - 0.01, ci_high=mean + 0.01, n=n, std=0.02, direction=direction,
                       spec={"metric": metric}, variants=variants or {})


def make_run(folder: Path, *, sdir_smiling=0.05, limit=None, gates=True) -> Path:
    """A run folder written by hand: two attributes, S_dir (with its 1 − cos variant) and FID."""
    from benchmark.outputs.results import Aggregate

    folder.mkdir(parents=True)
    ids = ["a", "b", "c"]
    grid = {}
    for k, img_id in enumerate(ids[:2]):
        grid[img_id] = {}
        for j, col in enumerate(["original", "reconstruction", "smiling", "pixar"]):
            rel = f"images/{img_id}/{col}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            px = np.full((16, 16, 3), 40 * (j + 1) + 10 * k, dtype=np.uint8)
            Image.fromarray(px).save(folder / rel)
            grid[img_id][col] = rel
    variant = {"one_minus_cos": Aggregate(mean=1 - sdir_smiling, ci_low=0.9, ci_high=0.99, n=3)}
    metrics = {"smiling": {"sdir": _mv(sdir_smiling, variants=variant), "fid_orig": _mv(80.0, "lower", metric="fid@1")},
               "pixar": {"sdir": _mv(0.07), "fid_orig": _mv(120.0, "lower", metric="fid@1")}}
    refs = [
        ReferenceValue(metric="sdir", attribute="smiling", column="paper", value=0.921, provenance="Table 4",
                       band=Band(low=0.8, high=1.0), gated=False, band_rationale="scale unknown",
                       variant="paper-scale"),
        ReferenceValue(metric="sdir", attribute="smiling", column="reproduction-study", value=0.955,
                       provenance="UvA", band=Band(low=0.9, high=1.0), variant="one_minus_cos"),
        ReferenceValue(metric="sdir", attribute="pixar", column="paper", value=None, provenance="not reported"),
        ReferenceValue(metric="fid_orig", attribute="pixar", column="reproduction-study", value=125.8,
                       provenance="UvA", band=Band(high=100.0)),
    ]
    gate_list = [Gate(name=refs[1].gate_name(), kind="claim", value=1 - sdir_smiling, band=refs[1].band,
                      passed=refs[1].band.contains(1 - sdir_smiling)),
                 Gate(name=refs[3].gate_name(), kind="claim", value=120.0, band=refs[3].band, passed=False)] \
        if gates else []
    result = RunResult(
        suite="paper-table@1", not_for_reporting=limit is not None,
        run=RunInfo(git_sha="0" * 40, git_dirty=False, manifest_digests={"suite:paper-table@1": "f" * 64},
                    seeds={"bootstrap": 0}, packages={"torch": "2.14.1"}, device={"type": "cpu", "name": "x"},
                    stage_seconds={"invert": 1.0}, started_at="2026-01-01T00:00:00Z",
                    ended_at="2026-01-01T00:01:00Z", limit=limit),
        metrics=metrics, gates=gate_list, references=refs, grid_images=grid,
        attributes={"smiling": AttributeInfo(name="smiling", domain="in-domain"),
                    "pixar": AttributeInfo(name="pixar", domain="unseen")})
    rows = [{"attribute": a, "metric": "sdir", "id": i, "value": metrics[a]["sdir"].mean + 0.01 * k}
            for a in metrics for k, i in enumerate(ids)]
    write_results(folder, result, rows)
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One run folder with its report, shared by the read-only checks below (building it is the slow part)."""
    return build_report(make_run(tmp_path_factory.mktemp("report") / "run", limit=3))


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.tables, self.text = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag == "table":
            self.tables += 1

    def handle_data(self, data):
        self.text.append(data)


def test_tables_have_reference_columns_verdicts_and_the_sdir_caveat(report):
    tables = report.folder / "tables"
    md = (tables / "sdir.md").read_text()
    assert "sdir ↑" in md and "Paper" in md and "Reproduction study" in md and "This run ↑" in md
    assert "not reported" in md  # pixar's paper value is null, never 0
    assert SDIR_CAVEAT in md
    assert "no verdict" in md and "holds" in md  # 1 − 0.05 = 0.95 lies in [0.9, 1.0]: the study's claim holds
    csv = pd.read_csv(tables / "sdir.csv")
    assert csv.loc[csv.attribute == "smiling", "mean"].item() == pytest.approx(0.05)
    assert csv.loc[csv.attribute == "smiling", "one_minus_cos_mean"].item() == pytest.approx(0.95)
    assert csv.loc[csv.attribute == "smiling", "paper"].item() == pytest.approx(0.921)
    assert bool(csv.loc[csv.attribute == "smiling", "passed_reproduction-study"].item()) is True
    fid = (tables / "fid_orig.md").read_text()
    assert "fid_orig ↓" in fid and "does not hold in this world" in fid
    tex = (tables / "sdir.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\uparrow$" in tex and "one\\_minus\\_cos" in tex
    assert "↑" not in tex and "—" not in tex  # pdflatex-safe


def test_latex_escaping():
    assert latex_text("a_b & 50% #1 {x} ~^\\") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}")
    assert latex_text("≥ 0.9 — ↓") == r"$\geq$ 0.9 --- $\downarrow$"


def test_figures_are_pngs_with_the_grid_layout(report):
    names = [p.name for p in report.figures]  # in the blog's order: edit grids before the distributions
    assert names == ["edit_grid_in-domain.png", "edit_grid_unseen.png", "distribution_sdir.png"]
    for p in report.figures:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 200 and im.height > 200


def test_html_embeds_every_table_and_figure_and_opens_from_disk(report):
    html = report.html.read_text()
    parser = _Collector()
    parser.feed(html)
    assert len(parser.imgs) == 3
    for img in parser.imgs:
        assert img["src"].startswith("data:image/png;base64,")  # one self-contained file
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert Image.open(io.BytesIO(png)).format == "PNG"
    assert parser.tables == 1 + 1 + 2 + 1  # summary, the claims (no known answers here), one per metric, provenance
    text = " ".join(parser.text)
    assert "NOT FOR REPORTING" in text and text.count(SDIR_CAVEAT) == 1  # each note once
    assert html.index('id="summary"') < html.index('id="table-claims"') < html.index('id="figures"') \
        < html.index('id="table-sdir"')  # summary, verdicts, figures, detail tables
    assert "src=\"http" not in html and "href=\"http" not in html  # nothing fetched from the network


def test_report_dir_regenerates_in_place(tmp_path):
    run = make_run(tmp_path / "run")
    first = build_report(run)
    (first.folder / "tables" / "stale.md").write_text("left over")
    second = build_report(run)
    assert not (second.folder / "tables" / "stale.md").exists()
    assert not list(run.glob(".report*"))


def test_compare_gives_deltas_and_notes(tmp_path):
    a = make_run(tmp_path / "a", sdir_smiling=0.05)
    b = make_run(tmp_path / "b", sdir_smiling=0.08, limit=2)
    table = compare_runs(a, b)
    row = table.frame.set_index(["attribute", "metric"]).loc[("smiling", "sdir")]
    assert row["delta"] == pytest.approx(0.03) and bool(row["B_better"]) is True
    assert bool(row["cis_overlap"]) is False  # [0.04, 0.06] vs [0.07, 0.09]
    assert any("NOT FOR REPORTING" in n for n in table.notes)
    assert "smiling" in table.markdown()
    payload = json.loads(table.frame.to_json(orient="records"))
    assert len(payload) == 4
