"""Known-answer checks of Asyrp on the synthetic world's latent diffusion model:

    python -m benchmark.synthetic.ldm_checks [--out results/synthetic-ldm/known_answers.json]

- autoencoder PSNR: decode(encode(x)) against x on the pinned test split (the quantised path the LDM decodes by);
- inversion → reconstruction PSNR: 40-step DDIM inversion on the latent and plain DDIM back, decoded;
- Δh = 0 exactness: the asymmetric process with an f_t that returns zeros equals plain DDIM bit for bit;
- attribute shifts: f_t trained with the official loss (synthetic CLIP, P_t decoded to pixels) for `smiling` and
  `tanned`; the synthetic oracle reads the factor each edit targets (mouth curvature, tan) on the edited image and
  on the reconstruction; the shift must be positive (95% bootstrap CI above 0). t_edit / t_boost come from the
  authors' rule on this model's curves, once with the curve measured against the input image (the rule as
  written) and once against the autoencoder's reconstruction (keys `...[input]`, `...[autoencoder]`).

Every value is computed here from the shipped model; each band and why is written next to it in the output. The
bands were set before the first run, from what the world makes easy or hard, not from the measured numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmark.core.paths import REPO_ROOT

DEFAULT_OUT = REPO_ROOT / "results" / "synthetic-ldm" / "known_answers.json"
MODEL_REF = "synthetic-ldm@1"
TEST_SET = "synthetic-test-first100@1"
N_STEPS = 40

BANDS = {
    "autoencoder_psnr_db": {"lower": 24.0, "rationale": (
        "flat-shaded 64² faces through a 4x, 1024-code VQ: 24 dB is an RMS error of 8 grey levels, small "
        "enough that mouth shape and skin colour (what the oracles read) survive")},
    "inversion_psnr_gap_db": {"upper": 3.0, "rationale": (
        "40-step DDIM inversion of a latent model loses a little on top of the autoencoder (the decoder is the "
        "same): reconstruction PSNR within 3 dB of the autoencoder's")},
    "delta_h_zero_max_abs_diff": {"upper": 0.0, "rationale": "ε and ε̃ come from two decodes of one h: exact"},
    "attribute_shift": {"lower_ci_above": 0.0, "rationale": (
        "the edit must move its own factor in the prompt's direction on held-out faces: the 95% bootstrap CI of "
        "the mean oracle shift (edited − reconstruction) lies above 0")},
}


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR of pixels in [-1, 1] (peak-to-peak 2), after clamping to that range as images are saved."""
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).square().flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp(min=1e-12))


def _aggregate(values) -> dict[str, Any]:
    from metrics.aggregate import aggregate_per_image

    a = aggregate_per_image([float(v) for v in values])
    return {"mean": a.mean, "std": a.std, "ci_low": a.ci_low, "ci_high": a.ci_high, "n": a.n}


def _mean(values) -> float:
    return float(sum(values) / len(values))


def load_model_and_images(limit: int | None = None):
    from benchmark.core.errors import DigestMismatchError
    from benchmark.core.images import from_uint8
    from benchmark.inputs.data import load_dataset
    from benchmark.inputs.fetch import check_model_files
    from benchmark.inputs.manifests import ManifestRegistry
    from benchmark.plan.loaders import LOADERS
    from benchmark.plan.plugins import load_plugins

    load_plugins()
    registry = ManifestRegistry()
    manifest = registry.get("model", MODEL_REF).manifest
    bad = [f for f in check_model_files(manifest) if f.state != "ok"]
    if bad:
        raise DigestMismatchError(f"{MODEL_REF}: {', '.join(f'{f.path.name} {f.state}' for f in bad)}",
                                  fix="restore the shipped files (`git checkout -- benchmark/synthetic/assets/ldm`), "
                                      "or retrain: python -m benchmark.synthetic.ldm train && ... publish")
    model = LOADERS.get(manifest.loader)(manifest, device="cpu")
    images = load_dataset(registry.get("dataset", TEST_SET).manifest, REPO_ROOT, limit=limit, record=False)
    return model, from_uint8(images.images), images.ids


def check_autoencoder(model, pixels: torch.Tensor) -> dict[str, Any]:
    with torch.no_grad():
        recon = torch.cat([model.codec.decode(model.codec.encode(pixels[i:i + 50]))
                           for i in range(0, len(pixels), 50)])
    values = psnr_db(recon, pixels)
    return {"per_image": values.tolist(), **_aggregate(values)}


def check_inversion(model, pixels: torch.Tensor) -> tuple[dict[str, Any], Any]:
    import models

    inv = models.invert(model, pixels, N_STEPS, reconstruct=True, batch_size=50, progress=True)
    values = psnr_db(inv.reconstruction, pixels)
    return {"per_image": values.tolist(), **_aggregate(values)}, inv


def check_delta_h_zero(model, x_T: torch.Tensor) -> dict[str, Any]:
    import models

    schedule = models.EditSchedule(n_steps=N_STEPS, t_edit=0)
    zero = lambda h, temb: torch.zeros_like(h)  # noqa: E731
    edited = models.generate(model, x_T, [(zero, 1.0)], schedule)
    plain = models.generate(model, x_T, (), schedule)
    return {"max_abs_diff_latents": float((edited.latents - plain.latents).abs().max()),
            "max_abs_diff_pixels": float((edited.images - plain.images).abs().max()), "n": int(x_T.shape[0])}


def run(out: Path, *, limit: int | None = None,
        attribute_check: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    from benchmark.core.atomic import write_json

    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = time.perf_counter()
    model, pixels, ids = load_model_and_images(limit)
    ae = check_autoencoder(model, pixels)
    inversion, inv = check_inversion(model, pixels)
    zero = check_delta_h_zero(model, inv.x_T[:8])
    gap = ae["mean"] - inversion["mean"]
    checks: dict[str, Any] = {
        "autoencoder_psnr_db": {**ae, "band": BANDS["autoencoder_psnr_db"],
                                "passed": ae["mean"] >= BANDS["autoencoder_psnr_db"]["lower"]},
        "inversion_psnr_db": {**inversion, "gap_to_autoencoder_db": gap, "band": BANDS["inversion_psnr_gap_db"],
                              "passed": gap <= BANDS["inversion_psnr_gap_db"]["upper"]},
        "delta_h_zero": {**zero, "band": BANDS["delta_h_zero_max_abs_diff"],
                         "passed": zero["max_abs_diff_latents"] == 0.0 and zero["max_abs_diff_pixels"] == 0.0},
    }
    if attribute_check is not None:
        for reference in CURVE_REFERENCES:
            found = attribute_check(model, pixels, inv, curve_reference=reference)
            checks.update({f"{k}[{reference}]": v for k, v in found.items()})
    result = {
        "model": MODEL_REF, "model_spec": model.spec(), "test_set": TEST_SET, "ids": ids, "n_steps": N_STEPS,
        "checks": checks, "all_passed": all(c["passed"] for c in checks.values() if "passed" in c),
        "unproven": [] if attribute_check is not None else [
            "attribute shifts (needs the synthetic world's CLIP and oracles)"],
        "wall_s": round(time.perf_counter() - start, 1), "command": "python -m benchmark.synthetic.ldm_checks",
    }
    write_json(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--limit", type=int, default=None, help="first N test images (default: all 100)")
    p.add_argument("--no-attributes", action="store_true", help="skip the attribute-shift checks")
    args = p.parse_args(argv)
    attribute_check = None if args.no_attributes else _attribute_check()
    result = run(args.out, limit=args.limit, attribute_check=attribute_check)
    summary = {k: {m: v.get(m) for m in ("mean", "ci_low", "ci_high", "passed", "max_abs_diff_latents")
                   if m in v} for k, v in result["checks"].items()}
    print(json.dumps({"all_passed": result["all_passed"], "checks": summary}, indent=2))
    return 0 if result["all_passed"] else 1


ATTRIBUTES_CHECKED = ("smiling", "tanned")
# "input": the authors' rule as written (decoded P_t against the input image); "autoencoder": against the
# autoencoder's reconstruction, so the curve starts at 0 as for a pixel model. Both are run and reported.
CURVE_REFERENCES = ("input", "autoencoder")
TRAIN_SET = "synthetic-train-first64@1"
# The loss CLIP of the attribute check, pinned: results/synthetic-ldm/ was made with it, and a newer CLIP would
# change what a rerun means.
CLIP_REF = "synthetic-clip@1"
N_TRAIN = 32  # as the synthetic suite trains its f_t


def _attribute_check():
    """The attribute-shift check, or None (with the reason on stderr) while the world's CLIP/oracle are not shipped."""
    from benchmark.core.errors import BenchError

    try:
        from benchmark.synthetic.weights import manifest_file

        for ref in (CLIP_REF, "synthetic-oracle"):
            path, sha = manifest_file(ref)
            if sha is None or not Path(path).is_file():
                raise BenchError(f"{ref} is not shipped yet")
    except (BenchError, ImportError, OSError) as e:
        print(f"attribute shifts skipped: {e}", file=sys.stderr)
        return None
    return check_attributes


def check_attributes(model, pixels: torch.Tensor, inv, *, clip=None, oracle=None, n_train: int = N_TRAIN,
                     attributes=ATTRIBUTES_CHECKED, curve_reference: str = "input") -> dict[str, Any]:
    """Train f_t per attribute (official loss, P_t decoded by the VQ decoder), edit the test faces, and read the
    target factor with the oracle on the edit and on the reconstruction. `clip` ((model, tokenizer)) and `oracle`
    default to the world's shipped ones."""
    import models
    from benchmark.core.images import to_uint8
    from benchmark.core.runtime import generator
    from benchmark.synthetic.attribute_shift import attribute_shift
    from benchmark.synthetic.attributes import ATTRIBUTES, CURVE_IMAGES
    from benchmark.synthetic.captions import NEUTRAL_PROMPT
    from benchmark.synthetic.renderer import FACTOR_NAMES
    from benchmark.synthetic.weights import load_clip, load_oracle, manifest_file, shipped_file

    clip_model, tokenizer = clip or load_clip(*manifest_file(CLIP_REF))
    oracle = oracle or load_oracle(*shipped_file("synthetic-oracle"))
    # t_edit / t_boost for *this* model, by the authors' rule with the world's calibrated substitute distance
    times = _choose_times(model, oracle, clip_model, tokenizer, pixels[:CURVE_IMAGES], curve_reference, attributes)
    t_edits = {a: times["attributes"][a]["t_edit"] for a in attributes}
    train_px, train_inv = _training_inversions(model, n_train, min(t_edits.values()))
    reference = oracle.measure(to_uint8(inv.reconstruction))[0]
    out = {}
    for name in attributes:
        target, _domain, factor, direction, _ = ATTRIBUTES[name]
        t_edit, t_boost = t_edits[name], min(times["t_boost"], t_edits[name])
        loss = models.DirectionalClipLoss(clip_model, tokenizer, NEUTRAL_PROMPT, target, model_name="synthetic-clip")
        u = model.unet
        ft = models.build_ft("conv", h_channels=u.h_channels, temb_dim=u.temb_dim, h_size=u.h_size, seed=1234)
        config = models.TrainConfig(t_edit=t_edit, n_train_steps=N_STEPS, lambda_clip=0.8, lambda_recon=3.0)
        started = time.perf_counter()
        result = models.train_ft(model, ft, loss, train_px, train_inv, config)
        train_s = time.perf_counter() - started
        schedule = models.EditSchedule(n_steps=N_STEPS, t_edit=t_edit, t_boost=t_boost, n_train_steps=N_STEPS)
        gens = [generator(10_000 + i) for i in range(len(pixels))]
        edited = models.generate(model, inv.x_T, [(result.ft, 1.0)], schedule, gens).images
        sign = 1.0 if direction == "increase" else -1.0
        per = attribute_shift(oracle.measure(to_uint8(edited))[0], reference, factor, sign)
        value = _aggregate(per["value"])
        losses = [s.loss for s in result.history.steps]
        out[f"shift_{name}"] = {
            **value, "per_image": per["value"].tolist(), "target_factor": factor, "direction": direction,
            "non_target_change": _aggregate(per["non_target_change"]),
            "mean_shift_per_factor": {n: float(per[f"shift_{n}"].mean()) for n in FACTOR_NAMES},
            "t_edit": t_edit, "t_boost": t_boost, "t_boost_by_rule": times["t_boost"],
            "curve_reference": curve_reference, "text_cosine": times["attributes"][name]["text_cosine"],
            "train": {"images": n_train, "dataset": TRAIN_SET, "config": config.model_dump(),
                      "loss_first_image_mean": _mean(losses[:len(losses) // n_train]),
                      "loss_last_image_mean": _mean(losses[-(len(losses) // n_train):]),
                      "wall_s": round(train_s, 1)},
            "band": BANDS["attribute_shift"], "passed": value["ci_low"] > 0.0}
    out["t_select"] = {"t_boost": times["t_boost"], "calibration": times["calibration"],
                       "t_edit": {a: times["attributes"][a]["t_edit"] for a in attributes},
                       "curve_reference": curve_reference,
                       "rule": "the authors' rule with the synthetic world's calibrated oracle-trunk distance "
                               "instead of LPIPS (benchmark.synthetic.attributes)"}
    return out


def _training_inversions(model, n_train: int, reference_min_t: int):
    """The first `n_train` training faces (pixels in [-1, 1]) and their inversions with the reference trajectory
    from `reference_min_t` up, which training needs."""
    import models
    from benchmark.core.images import from_uint8
    from benchmark.inputs.data import load_dataset
    from benchmark.inputs.manifests import ManifestRegistry

    train_manifest = ManifestRegistry().get("dataset", TRAIN_SET).manifest
    train_px = from_uint8(load_dataset(train_manifest, REPO_ROOT, limit=n_train, record=False).images)
    train_inv = models.invert(model, train_px, N_STEPS, reference_steps=N_STEPS,
                              reference_min_t=reference_min_t, batch_size=32)
    return train_px, train_inv


def _choose_times(model, oracle, clip_model, tokenizer, pixels, reference: str, attributes) -> dict[str, Any]:
    """`benchmark.synthetic.attributes.choose_times` (same distance, same calibration to the authors' LPIPS at
    t = 999, same rule), with the curve's reference image selectable (see `models.compute_lpips_curves`)."""
    import torch.nn.functional as F

    import models
    from benchmark.synthetic.attributes import ATTRIBUTES, AUTHORS_LPIPS_999, CURVE_STEPS, oracle_distance
    from benchmark.synthetic.captions import NEUTRAL_PROMPT

    curves = models.compute_lpips_curves(model, pixels, n_steps=CURVE_STEPS, distance=oracle_distance(oracle),
                                         reference=reference)
    scale = {k: AUTHORS_LPIPS_999[k] / getattr(curves, k)[max(getattr(curves, k))] for k in ("x0t", "x")}
    x0t = {t: v * scale["x0t"] for t, v in curves.x0t.items()}
    x = {t: v * scale["x"] for t, v in curves.x.items()}
    out = {"t_boost": models.select_t_boost(x), "calibration": scale, "attributes": {}}
    with torch.no_grad():
        for name in attributes:
            text = F.normalize(clip_model.encode_text(tokenizer([NEUTRAL_PROMPT, ATTRIBUTES[name][0]])).float(), dim=-1)
            cos = float(text[0] @ text[1])
            out["attributes"][name] = {"text_cosine": cos, "t_edit": models.select_t_edit(x0t, cos)}
    return out


if __name__ == "__main__":
    sys.exit(main())
