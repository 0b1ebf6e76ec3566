"""The terminal summary of a run and the rounding of its numbers: three significant digits as a rule, never a digit
below the second significant digit of the CI's half-width."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli.summary import run_summary
from benchmark.outputs.headline import headline
from benchmark.outputs.numbers import decimals_for, format_number, format_with_ci
from benchmark.outputs.results import (
    Aggregate,
    AttributeInfo,
    Band,
    Gate,
    MetricValue,
    ReferenceValue,
    RunInfo,
    RunResult,
)


@pytest.mark.parametrize(("value", "low", "high", "text"), [
    (0.14515332358266717, 0.009251830672813457, 0.27666895093045474, "0.15 [0.01, 0.28]"),  # a wide CI: 2 digits
    (0.946380615234375, 0.9326118469238281, 0.9602676391601562, "0.946 [0.933, 0.960]"),  # 3 significant
    (93.63895175495557, 78.22929628527292, 106.32205889865176, "94 [78, 106]"),
    (0.007815867313707422, -0.06855207732513108, 0.08566570337211901, "0.008 [-0.069, 0.086]"),
    (-0.6988, -0.8284, -0.5503, "-0.70 [-0.83, -0.55]"),
    (1.0, 1.0, 1.0, "1.00 [1.00, 1.00]"),  # no spread: three significant digits
    (1234.5, 1000.0, 1500.0, "1234 [1000, 1500]"),  # integer digits are never rounded away
    (22.331525253261844, None, None, "22.3"),  # no CI
    (0.0, None, None, "0"),
    (3e-7, 1e-7, 5e-7, "3e-07 [1e-07, 5e-07]"),
    (None, None, None, "—"),
])
def test_numbers_are_rounded_to_what_the_ci_supports(value, low, high, text):
    assert format_with_ci(value, low, high) == text


def test_decimals_rule():
    assert decimals_for(0.2473) == 3 and decimals_for(35.46) == 1 and decimals_for(1234.5) == 0
    assert decimals_for(0.2473, 0.074) == 3  # half-width 0.074: its second digit is the third decimal
    assert decimals_for(0.2473, 0.74) == 2
    assert format_number(-0.0) == "0" and format_number(float("nan")) == "—" and format_number(1e-6) == "1e-06"
    assert format_with_ci(-0.0004, -0.05, 0.05).startswith("0.000 [")  # never "-0.000"


def _mv(mean, spec, direction="higher", variants=None, half=0.01, n=100):
    return MetricValue(mean=mean, ci_low=mean - half, ci_high=mean + half, n=n, direction=direction,
                       spec={"metric": spec}, variants=variants or {})


def make_result() -> RunResult:
    per = {
        "sdir": _mv(0.2473, "sdir@1", variants={"one_minus_cos": Aggregate(mean=0.7527, ci_low=0.68, ci_high=0.83,
                                                                           n=100)}),
        "sc": _mv(0.9651, "sc@1", variants={"miou": Aggregate(mean=0.79, ci_low=0.77, ci_high=0.81, n=100)}),
        "fid_orig": _mv(35.46, "fid@1", "lower", half=2.4),
        "id": _mv(0.326, "id@1"),
        "target_shift": _mv(0.6462, "known-answer:target_shift", half=0.07),
    }
    gates = [Gate(name="target_shift/smiling vs known-answer", kind="known_answer", value=0.6462,
                  band=Band(low=0.2), passed=True),
             Gate(name="recon_psnr_db/ddim vs known-answer", kind="known_answer", value=22.33,
                  band=Band(low=25.0), passed=False),
             Gate(name="non_target_shift/smiling vs known-answer", kind="claim", value=0.149,
                  band=Band(high=0.1), passed=False),
             Gate(name="linearity_r2/smiling vs known-answer", kind="claim", value=0.99, band=Band(low=0.9),
                  passed=True)]
    refs = [ReferenceValue(metric="sdir", attribute="smiling", column="paper", value=0.921, variant="paper-scale",
                           gated=False),
            ReferenceValue(metric="sdir", attribute="smiling", column="reproduction-study", value=0.955,
                           variant="one_minus_cos")]
    info = RunInfo(git_sha=None, git_dirty=None, manifest_digests={}, seeds={}, packages={}, device={},
                   stage_seconds={}, started_at="t", ended_at="t", profile="quick")
    return RunResult(suite="synthetic@2", run=info, metrics={"smiling": per, "ddim": {}}, gates=gates,
                     references=refs, attributes={"smiling": AttributeInfo(name="smiling", domain="in-domain")})


def test_headline_columns_cells_and_references():
    head = headline(make_result())
    assert [c.label for c in head.columns] == ["S_dir", "1 − cos", "SC", "SC mIoU", "FID", "ID", "target shift"]
    assert [a for a, _ in head.rows] == ["smiling"]  # attributes only, not the ddim checks
    cells = dict(zip([c.label for c in head.columns], head.rows[0][1], strict=True))
    assert cells["1 − cos"].mean == 0.7527 and [r.text for r in cells["1 − cos"].references] == ["study 0.955"]
    assert [r.text for r in cells["S_dir"].references] == ["paper 0.921 (paper-scale)"]  # no column of its own


def test_run_summary_is_compact_and_counts_both_kinds():
    text = run_summary(make_result(), Path("runs/synthetic/X"), width=120)
    assert "0.247 [0.237, 0.257]" in text and "35.5 [33.1, 37.9]" in text  # each with its CI, rounded
    assert "0.6462" not in text and "0.24730" not in text  # never the raw digits
    assert "known answers: 1 of 2 pass" in text and "FAIL recon_psnr_db/ddim vs known-answer: 22.3 (band ≥ 25)" in text
    assert "paper claims under test: 1 of 2 hold" in text
    assert "does not hold in this world: non_target_shift/smiling vs known-answer: 0.149 (band ≤ 0.1)" in text
    assert text.rstrip().endswith("report: runs/synthetic/X/report/index.html")
    assert max(len(line) for line in text.splitlines()) <= 120
