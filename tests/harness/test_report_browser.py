"""The report as a browser shows it (headless Chromium, Debian's `chromium`): a page 1,400 px wide never scrolls
sideways, every embedded image loads, and the summary's numbers are results.json's. Skips where chromium is not
installed (`.ci/run` installs it when it can)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.outputs.numbers import format_with_ci
from benchmark.outputs.report import build_report
from benchmark.outputs.results import (
    Aggregate,
    AttributeInfo,
    Band,
    Gate,
    MetricValue,
    ReferenceValue,
    RunInfo,
    RunResult,
    write_results,
)

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package "
                                                          "`chromium`; .ci/run installs it when it can)")]
WIDTH = 1400
ATTRIBUTES = {"synthetic-smiling": "in-domain", "synthetic-sad": "in-domain", "synthetic-tanned": "in-domain",
              "synthetic-zombie": "unseen"}
FACTORS = ["face_shape", "tan", "green", "hair_colour", "hair_length", "eye_size", "eye_spacing",
           "mouth_curvature", "background_hue"]
TARGETS = {"shift_mouth_up": ("mouth_curvature", "increase"), "shift_mouth_down": ("mouth_curvature", "decrease"),
           "shift_tan": ("tan", "increase"), "shift_green": ("green", "increase")}
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images), root = document.documentElement, b = document.body.dataset;
  b.images = images.length;
  b.loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  b.scrollWidth = root.scrollWidth;
  b.clientWidth = root.clientWidth;
});
</script>"""


def _agg(rng, scale=1.0):
    mean = float(rng.normal(0, scale))
    half = abs(float(rng.normal(0, scale / 5))) + 1e-3
    return mean, mean - half, mean + half


def _mv(rng, metric, *, direction="higher", scale=1.0, variants=(), spec=None):
    mean, low, high = _agg(rng, scale)
    var = {v: Aggregate(**dict(zip(("mean", "ci_low", "ci_high"), _agg(rng, scale), strict=True)), n=100)
           for v in variants}
    return MetricValue(mean=mean, ci_low=low, ci_high=high, n=100, std=0.1, direction=direction,
                       spec={"metric": metric, **(spec or {})}, variants=var)


def _metrics(rng):
    out = {}
    for attr in ATTRIBUTES:
        per = {"sdir": _mv(rng, "sdir@1", variants=["one_minus_cos"]), "sc": _mv(rng, "sc@1", variants=["miou"]),
               "fid_orig": _mv(rng, "fid@1", direction="lower", scale=40), "kid_orig": _mv(rng, "kid@1", scale=0.05),
               "id": _mv(rng, "id@1"), "target_shift": _mv(rng, "known-answer:target_shift"),
               "non_target_shift": _mv(rng, "known-answer:non_target_shift", direction="lower")}
        for key, (factor, direction) in TARGETS.items():
            per[key] = _mv(rng, "attribute-shift@1", variants=["non_target_change"] + [f"shift_{f}" for f in FACTORS],
                           spec={"target_factor": factor, "target_direction": direction})
        out[attr] = per
    out["ddim"] = {"recon_psnr_db": _mv(rng, "known-answer:reconstruction_psnr", scale=30)}
    return out


def _checks(metrics):
    refs, gates = [], []
    long = ("every other factor's mean |change| stays within 10% of its range (the factors are independent in "
            "the captions, so an edit that moves them moves what the prompt never named)")
    for attr, key, kind, band in [("ddim", "recon_psnr_db", "known_answer", Band(low=25.0)),
                                  *[(a, "target_shift", "known_answer", Band(low=0.2)) for a in ATTRIBUTES],
                                  *[(a, "non_target_shift", "claim", Band(high=0.1)) for a in ATTRIBUTES]]:
        ref = ReferenceValue(metric=key, attribute=attr, column="known-answer", value=None, band=band, kind=kind,
                             band_rationale=long, provenance="known answer of the synthetic world")
        value = metrics[attr][key].mean
        refs.append(ref)
        gates.append(Gate(name=ref.gate_name(), kind=kind, value=value, band=band, passed=band.contains(value)))
    refs.append(ReferenceValue(metric="sdir", attribute="synthetic-smiling", column="reproduction-study",
                               value=0.955, variant="one_minus_cos", provenance="the study's number"))
    refs.append(ReferenceValue(metric="sdir", attribute="synthetic-smiling", column="paper", value=0.921,
                               variant="paper-scale", gated=False, provenance="Table 4"))
    return refs, gates


def _grid(folder: Path, ids):
    grid = {}
    for k, image_id in enumerate(ids):
        grid[image_id] = {}
        for j, col in enumerate(["original", "reconstruction", *ATTRIBUTES]):
            rel = f"images/{image_id}/{col}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((64, 64, 3), 30 * j + 20 * k, dtype=np.uint8)).save(folder / rel)
            grid[image_id][col] = rel
    return grid


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory):
    """A run shaped like the synthetic world's default suite (every headline metric, four attribute-shift targets
    over nine factors, verdicts with long rationales), written by hand, and its report."""
    folder = tmp_path_factory.mktemp("browser") / "run"
    folder.mkdir()
    rng = np.random.default_rng(0)
    metrics = _metrics(rng)
    refs, gates = _checks(metrics)
    info = RunInfo(git_sha="0" * 40, git_dirty=False, manifest_digests={"suite:synthetic@2": "f" * 64},
                   seeds={"bootstrap": 0}, packages={"torch": "2.14.1"}, device={"type": "cpu", "name": "x"},
                   stage_seconds={"invert": 1.0}, started_at="2026-01-01T00:00:00Z", ended_at="2026-01-01T00:09:00Z",
                   argv=["run", "--out", "/a/rather/long/path/" * 6], notes=["profile none: a note shown once"])
    result = RunResult(suite="synthetic@2", run=info, metrics=metrics, gates=gates, references=refs,
                       grid_images=_grid(folder, ["synth-000", "synth-001", "synth-002"]),
                       attributes={a: AttributeInfo(name=a, domain=d) for a, d in ATTRIBUTES.items()})
    rows = [{"attribute": a, "metric": "sdir", "id": f"synth-00{i}", "value": float(rng.normal())}
            for a in ATTRIBUTES for i in range(3)]
    write_results(folder, result, rows)
    return build_report(folder)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    out = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


class _Body(HTMLParser):
    def __init__(self):
        super().__init__()
        self.body: dict[str, str] = {}
        self.cells: list[dict[str, str]] = []
        self._cell: dict[str, str] | None = None
        self._ci = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        if tag == "td" and "data-key" in attrs:
            self._cell = {**attrs, "text": ""}
            self.cells.append(self._cell)
        self._ci = self._cell is not None and tag == "span" and attrs.get("class") == "ci"

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        self._ci = False

    def handle_data(self, data):
        if self._cell is not None and self._ci:
            self._cell["text"] += data


def test_page_fits_1400_px_and_every_image_loads(wide_report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(wide_report.html.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, f"--window-size={WIDTH},1000", "--virtual-time-budget=10000", "--dump-dom",
                    probe.as_uri()).stdout
    parser = _Body()
    parser.feed(dom)
    body = parser.body
    assert int(body["data-images"]) == len(wide_report.figures) > 0
    assert body["data-loaded"] == body["data-images"], "an embedded image did not decode"
    assert int(body["data-scroll-width"]) <= int(body["data-client-width"]) <= WIDTH, "the page scrolls sideways"


def test_summary_numbers_equal_results_json(wide_report, tmp_path):
    dom = _chromium(tmp_path, f"--window-size={WIDTH},1000", "--dump-dom", wide_report.html.as_uri()).stdout
    parser = _Body()
    parser.feed(dom)
    results = json.loads((wide_report.folder.parent / "results.json").read_text())
    assert len(parser.cells) == len(ATTRIBUTES) * 8  # S_dir, 1 − cos, SC, SC mIoU, FID, KID, ID, target shift
    for cell in parser.cells:
        mv = results["metrics"][cell["data-attribute"]][cell["data-key"]]
        agg = mv["variants"][cell["data-variant"]] if cell["data-variant"] else mv
        assert float(cell["data-mean"]) == agg["mean"] and int(cell["data-n"]) == agg["n"]
        assert cell["text"] == format_with_ci(agg["mean"], agg["ci_low"], agg["ci_high"])


def test_screenshot_is_1400_px_wide_and_drawn(wide_report, tmp_path):
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--window-size={WIDTH},2400", f"--screenshot={shot}", wide_report.html.as_uri())
    with Image.open(shot) as im:
        assert im.width == WIDTH
        pixels = np.asarray(im.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, tables and figures, not a blank sheet
