"""How well does the real world's h-space measure track the truth? Checked where the truth is known.

On CelebA-HQ the h-space properties are measured by CLIP projection (`metrics.clip_projection`): an edit's shift
along its attribute's CLIP text direction. In the synthetic world the oracle measures the true factor as well, so
on one run's edits both can be read image by image. For every attribute edited at Δh scale 1 this writes, over
the run's test images: the oracle's target shift (edit − reconstruction, signed so the intended direction is
positive), the CLIP projection shift, their Pearson r (95% bootstrap CI, images resampled in pairs) and Spearman ρ,
and how often the two agree in sign.

    python -m benchmark.synthetic.measure_check [--profile quick] [--out results/synthetic/clip-measure]

The edits are those of `python run_all.py run --suite synthetic [--profile P]`, read from the stage cache
(`$ASYRP_CACHE`); what the cache lacks is computed first, as that run would (minutes on a CPU). It writes
measure_check.json and measure_check.md into the output folder, each file atomically, beside whatever else the
folder holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from benchmark.core.errors import BenchError
from benchmark.core.paths import RESULTS_DIR

OUT = RESULTS_DIR / "synthetic" / "clip-measure"
SUITE = "synthetic"


def _targets() -> dict[str, tuple[str, int]]:
    """attribute -> (oracle factor, sign), from the suite manifest's default known answers."""
    from benchmark.inputs.manifests import ManifestRegistry

    ka = ManifestRegistry().get("suite", SUITE).manifest.known_answers
    return {name: (t.factor, t.sign) for name, t in ka.targets.items()}


def suite_edits(profile: str | None) -> tuple[list[str], dict[str, tuple[str, str]], dict[str, torch.Tensor]]:
    """(image ids, attribute -> prompts, name -> uint8 N×3×H×W) for the reconstruction and each scale-1 edit of
    the synthetic suite under `profile`, through the stage cache."""
    from benchmark.inputs.manifests import ManifestRegistry
    from benchmark.plan.planner import plan_from_manifests
    from benchmark.plan.request import RunRequest
    from benchmark.run.pipeline import run_stages
    from benchmark.run.runner import stage_runner
    from benchmark.run.stages.invert import gather
    from benchmark.run.suite_plan import edit_key

    plan = plan_from_manifests(SUITE, RunRequest(suite=SUITE, profile=profile, device="cpu"),
                               registry=ManifestRegistry())
    state = run_stages(plan, stage_runner(plan))
    prompts = {a.name: (a.source_prompt, a.target_prompt) for a in plan.attributes}
    images = {"reconstruction": gather(state.test_inversions, "reconstruction"),
              **{a: state.edits[edit_key(a, 1.0)].output.tensors["edited"] for a in prompts}}
    return [it.id for it in plan.images], prompts, images


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def compare(oracle_shift: np.ndarray, clip_shift: np.ndarray, *, seed: int = 0) -> dict:
    """The two measures of one attribute's shifts, image by image."""
    from scipy.stats import spearmanr

    from metrics.aggregate import aggregate_per_image, aggregate_set_statistic

    r = aggregate_set_statistic(lambda idx: pearson(oracle_shift[idx], clip_shift[idx]), len(oracle_shift),
                                value=pearson(oracle_shift, clip_shift), resamples=1000, seed=seed)
    return {"n": len(oracle_shift), "pearson_r": r.to_dict(),
            "spearman_rho": float(spearmanr(oracle_shift, clip_shift).statistic),
            "sign_agreement": float(np.mean(np.sign(oracle_shift) == np.sign(clip_shift))),
            "oracle_shift": aggregate_per_image(oracle_shift, seed=seed).to_dict(),
            "clip_shift": aggregate_per_image(clip_shift, seed=seed).to_dict()}


def run(profile: str | None = None) -> dict:
    from benchmark.synthetic.renderer import FACTOR_NAMES
    from benchmark.synthetic.weights import load_oracle, shipped_file
    from metrics.backends import load_backend
    from metrics.clip_projection import ClipProjectionFactors

    ids, prompts, images = suite_edits(profile)
    targets = _targets()
    oracle = load_oracle(*shipped_file("synthetic-oracle"))
    clip = ClipProjectionFactors(load_backend("clip", "synthetic-clip", device="cpu"), prompts, templates=False)
    with torch.no_grad():
        oracle_values = {k: oracle.measure(v)[0].double().numpy() for k, v in images.items()}
    clip_values = {k: clip.measure(v).double().numpy() for k, v in images.items()}
    rows = {}
    for k, attribute in enumerate(prompts):
        factor, sign = targets[attribute]
        column = list(FACTOR_NAMES).index(factor)
        oracle_shift = sign * (oracle_values[attribute][:, column] - oracle_values["reconstruction"][:, column])
        clip_shift = clip_values[attribute][:, k] - clip_values["reconstruction"][:, k]
        rows[attribute] = {"oracle_factor": factor, "sign": sign, "prompts": list(prompts[attribute]),
                           **compare(oracle_shift, clip_shift),
                           "per_image": {"oracle_shift": oracle_shift.tolist(), "clip_shift": clip_shift.tolist()}}
    return {"suite": SUITE, "profile": profile, "ids": ids, "measure": "metrics.clip_projection (synthetic-clip, no templates) vs "
            "the synthetic oracle", "attributes": rows}


def markdown(report: dict) -> str:
    lines = ["| attribute | oracle factor | oracle shift | CLIP shift | Pearson r [95% CI] | Spearman ρ | same sign |",
             "|---|---|---|---|---|---|---|"]
    for name, row in report["attributes"].items():
        r = row["pearson_r"]
        lines.append(f"| {name} | {row['oracle_factor']} | {row['oracle_shift']['mean']:+.3f} | "
                     f"{row['clip_shift']['mean']:+.4f} | {r['mean']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] | "
                     f"{row['spearman_rho']:.2f} | {row['sign_agreement']:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmark.core.atomic import write_json, write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default=None, help="the synthetic suite's profile whose edits to read (default: none)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = p.parse_args(argv)
    try:
        report = run(args.profile)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "measure_check.json", report)
    write_text(args.out / "measure_check.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
