"""Evidence that the shipped synthetic models work, from the shipped files (the digests their manifests pin):

- DDPM samples (DDIM, η = 0, 50 steps from seeded noise, with and without x0 clipping) and DDIM inversion ->
  reconstruction of test images at 40 and 20 steps, with PSNR (figures + numbers);
- the CLIP's directional cosine per edit attribute on render pairs that differ in one factor only;
- the oracle's factor R²/MAE and identity verification, the segmenter's pixel accuracy and mIoU, on held-out renders.

    python -m benchmark.synthetic.evidence [--out results/synthetic-world]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.core.paths import RESULTS_DIR

OUT = RESULTS_DIR / "synthetic-world"


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of uint8 images."""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-12))


def _grid_png(path: Path, rows: list[torch.Tensor], scale: int = 3) -> None:
    """Rows of uint8 N×3×H×W images -> one PNG (nearest-neighbour upscaled)."""
    from PIL import Image

    from benchmark.core.atomic import write_bytes

    strips = [torch.cat(list(r), dim=-1) for r in rows]
    grid = torch.cat(strips, dim=-2).permute(1, 2, 0).numpy()
    img = Image.fromarray(np.ascontiguousarray(grid)).resize((grid.shape[1] * scale, grid.shape[0] * scale),
                                                            Image.NEAREST)
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())


def sample_clipped(model, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    """DDIM samples from x_T with diffusers' `DDIMScheduler` (η = 0, x0 clipped to [-1, 1], its default).

    Generation from pure noise needs the clip here: at t = 999 the x0 estimate divides the ε error by sqrt(ᾱ) ≈
    0.0064, and without the clip that error survives to the last step. Asyrp's own path never clips (the authors'
    code does not), and it starts from inverted x_T, which the model's own ε put there.
    """
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                              clip_sample=True, set_alpha_to_one=True)
    scheduler.set_timesteps(steps)
    x = x_T
    for t in scheduler.timesteps:
        x = scheduler.step(model.unet(x, int(t)), t, x, eta=0.0).prev_sample
    return x


def ddpm_evidence(out: Path, n_samples: int = 16, n_recon: int = 16) -> dict:
    import models as M
    from benchmark.core.images import from_uint8, to_uint8
    from benchmark.core.paths import REPO_ROOT, manifests_dir
    from benchmark.inputs.data import load_dataset
    from benchmark.inputs.manifests import load_manifest
    from benchmark.synthetic.weights import load_ddpm, shipped_file

    model = load_ddpm(*shipped_file("synthetic-ddpm"))
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(n_samples, *model.latent_shape, generator=g)
    start = time.time()
    with torch.no_grad():
        unclipped = to_uint8(model.codec.decode(M.plain_reverse(model, x_T, 50)[0]))
        clipped = to_uint8(model.codec.decode(sample_clipped(model, x_T, 50)))
    sample_s = time.time() - start
    _grid_png(out / "ddpm_samples.png", [clipped[:8], clipped[8:16], unclipped[:8]])

    manifest = load_manifest(manifests_dir() / "datasets" / "synthetic-test-first100.yaml").manifest
    test = load_dataset(manifest, REPO_ROOT, limit=n_recon, record=False).images
    result = {"samples": {"n": n_samples, "steps": 50, "seed": 0, "seconds": round(sample_s, 1),
                          "figure": "rows 1-2: diffusers DDIMScheduler (eta 0, x0 clipped to [-1, 1], its default); "
                                    "row 3: the same noise through the authors' unclipped DDIM (models.plain_reverse)"},
              "reconstruction": {}}
    rows = [test]
    for steps in (40, 20):
        inv = M.invert(model, from_uint8(test), steps, reconstruct=True)
        recon = to_uint8(inv.reconstruction)
        p = psnr(recon, test)
        result["reconstruction"][str(steps)] = {"psnr_mean": float(p.mean()), "psnr_min": float(p.min()),
                                                "n": n_recon}
        rows.append(recon)
    _grid_png(out / "ddim_reconstruction.png", [r[:8] for r in rows])
    return result


def clip_evidence() -> dict:
    from benchmark.synthetic.captions import PROMPTS
    from benchmark.synthetic.clip_model import directional_cosines
    from benchmark.synthetic.train import attribute_pairs
    from benchmark.synthetic.weights import load_clip, shipped_file

    model, _ = load_clip(*shipped_file("synthetic-clip"))
    return {"directional_cosine": directional_cosines(model, attribute_pairs(), PROMPTS),
            "pairs": "48 held-out test-stream faces per attribute, differing in the attribute's factor only "
                     "(benchmark.synthetic.train.attribute_pairs); raw prompts vs 'face'"}


def oracle_evidence() -> dict:
    from benchmark.synthetic.oracle import factor_accuracy, identity_accuracy, segmenter_accuracy
    from benchmark.synthetic.train import HELD_OUT, person_pool
    from benchmark.synthetic.weights import load_oracle, load_segmenter, shipped_file

    images, masks, factors, persons = person_pool(HELD_OUT)
    oracle = load_oracle(*shipped_file("synthetic-oracle"))
    segmenter = load_segmenter(*shipped_file("synthetic-segmenter"))
    return {"held_out": HELD_OUT, "factors": factor_accuracy(oracle, images, factors),
            "identity": identity_accuracy(oracle, images, persons),
            "segmenter": segmenter_accuracy(segmenter, images, masks)}


def main(argv: list[str] | None = None) -> int:
    from benchmark.core.atomic import write_json

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    report = {"ddpm": ddpm_evidence(args.out), "clip": clip_evidence(), "oracles": oracle_evidence(),
              "torch": torch.__version__}
    write_json(args.out / "evidence.json", _finite(report))
    print(f"wrote {args.out}/evidence.json and figures", file=sys.stderr)
    return 0


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


if __name__ == "__main__":
    raise SystemExit(main())
