"""The synthetic world's latent diffusion model: a small VQ autoencoder (64² → 4×16×16) and a latent DDPM trained
on the renderer's faces, so Asyrp on a latent model can be checked for real on a CPU.

`python -m benchmark.synthetic.ldm train` retrains both from seeds and writes a diffusers snapshot folder
(`vqvae/`, `unet/`, `scheduler/`: the layout of `CompVis/ldm-celebahq-256`, so the same loader reads both) plus
`train_log.json` (steps, losses, wall time). The shipped result lives in `benchmark/synthetic/assets/ldm/`, listed
with its sha256 in `manifests/models/synthetic-ldm.yaml`.

The training is deliberately small (a stated CPU budget of about 20 minutes on a shared 2-core machine, one thread):
- autoencoder: diffusers `VQModel`, trained first without quantisation (L1 + MSE), then its codebook is set by
  k-means on the encoder outputs and the whole model fine-tuned through the quantiser (straight-through) with the
  VQ loss. The diffusion runs on the pre-quantisation latent and `decode` quantises, as in the LDM paper's code.
- latent DDPM: diffusers `UNet2DModel` on the latent times a scaling factor (1 / std of the training latents, as
  Stable Diffusion's 0.18215 was chosen), ε-prediction, the real LDM's β schedule (scaled_linear 0.0015 → 0.0195,
  T = 1000), AdamW, an EMA of the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

ASSETS_DIR = Path(__file__).parent / "assets" / "ldm"

VQ_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "sample_size": 64,
    "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
    "latent_channels": 4, "num_vq_embeddings": 1024, "vq_embed_dim": 4, "mid_block_add_attention": False,
}

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 16, "in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64, 64],
    "layers_per_block": 1, "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"], "norm_num_groups": 16,
    "attention_head_dim": None,
}

# The real CompVis LDM's β schedule (scaled_linear), so the latent model exercises the same ᾱ path.
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.0015, "beta_end": 0.0195,
    "prediction_type": "epsilon", "clip_sample": False,
}


@dataclass(frozen=True)
class TrainSpec:
    """Everything the result depends on (written into train_log.json)."""

    n_images: int = 2000
    data_seed: int = 0
    seed: int = 0
    ae_steps: int = 300
    ae_quantised_fraction: float = 0.3
    ae_batch: int = 16
    ae_lr: float = 2e-3
    kmeans_iters: int = 10
    ddpm_steps: int = 1600
    ddpm_batch: int = 32
    ddpm_lr: float = 5e-4
    ema_decay: float = 0.995
    threads: int = 1


# ---------------------------------------------------------------------------------------------------------------
def render_training_set(n: int, seed: int) -> torch.Tensor:
    """`n` faces of the DDPM's training split (no green skin), as float pixels in [-1, 1]."""
    from benchmark.core.images import from_uint8
    from benchmark.synthetic.dataset import train_factors
    from benchmark.synthetic.renderer import render_batch

    images, _ = render_batch(train_factors(n, seed))
    return from_uint8(images)


def train_autoencoder(images: torch.Tensor, spec: TrainSpec, log: dict) -> Any:
    from diffusers import VQModel

    torch.manual_seed(spec.seed)
    vq = VQModel(**VQ_CONFIG).train()
    opt = torch.optim.AdamW(vq.parameters(), lr=spec.ae_lr, weight_decay=0.0)
    n_plain = int(round(spec.ae_steps * (1 - spec.ae_quantised_fraction)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.ae_lr, total_steps=spec.ae_steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(spec.seed)
    history = []
    for step in tqdm(range(spec.ae_steps), desc="autoencoder", unit="step", file=sys.stderr):
        if step == n_plain:
            _kmeans_codebook(vq, images, spec)
        batch = images[torch.randint(0, len(images), (spec.ae_batch,), generator=gen)]
        h = vq.encode(batch).latents
        out = vq.decode(h, force_not_quantize=step < n_plain)
        recon = (out.sample - batch).abs().mean() + F.mse_loss(out.sample, batch)
        loss = recon + out.commit_loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        history.append(float(recon.detach()))
    log["autoencoder"] = {"recon_loss_first10": float(np.mean(history[:10])),
                          "recon_loss_last10": float(np.mean(history[-10:])), "steps_unquantised": n_plain}
    return vq.eval().requires_grad_(False)


def _kmeans_codebook(vq, images: torch.Tensor, spec: TrainSpec) -> None:
    """Set the codebook to k-means centres of encoder outputs, so every code starts in use."""
    with torch.no_grad():
        latents = torch.cat([vq.encode(images[i:i + 64]).latents for i in range(0, min(len(images), 512), 64)])
        vectors = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        k = vq.quantize.embedding.weight.shape[0]
        gen = torch.Generator().manual_seed(spec.seed)
        centres = vectors[torch.randperm(len(vectors), generator=gen)[:k]].clone()
        for _ in range(spec.kmeans_iters):
            assign = torch.cdist(vectors, centres).argmin(1)
            sums = torch.zeros_like(centres).index_add_(0, assign, vectors)
            counts = torch.bincount(assign, minlength=k).unsqueeze(1)
            empty = counts.squeeze(1) == 0
            centres = torch.where(empty.unsqueeze(1), centres, sums / counts.clamp(min=1))
            # dead centres restart at random vectors instead of staying unused
            if empty.any():
                centres[empty] = vectors[torch.randint(0, len(vectors), (int(empty.sum()),), generator=gen)]
        vq.quantize.embedding.weight.copy_(centres)


def encode_latents(vq, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([vq.encode(images[i:i + 128]).latents for i in range(0, len(images), 128)])


def train_latent_ddpm(latents: torch.Tensor, spec: TrainSpec, log: dict) -> Any:
    import copy

    from diffusers import UNet2DModel

    from models.schedule import alphas_cumprod_from_scheduler_config

    torch.manual_seed(spec.seed + 1)
    unet = UNet2DModel(**UNET_CONFIG).train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=spec.ddpm_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.ddpm_lr, total_steps=spec.ddpm_steps,
                                                pct_start=0.05)
    ac = alphas_cumprod_from_scheduler_config(SCHEDULER_CONFIG).float()
    gen = torch.Generator().manual_seed(spec.seed + 2)
    history = []
    for _ in tqdm(range(spec.ddpm_steps), desc="latent DDPM", unit="step", file=sys.stderr):
        z0 = latents[torch.randint(0, len(latents), (spec.ddpm_batch,), generator=gen)]
        t = torch.randint(0, len(ac), (spec.ddpm_batch,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        a = ac[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(unet(zt, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - spec.ema_decay)
        history.append(float(loss.detach()))
    log["latent_ddpm"] = {"loss_first50": float(np.mean(history[:50])), "loss_last50": float(np.mean(history[-50:]))}
    return ema


def train(out_dir: Path, spec: TrainSpec) -> dict:
    """Train both models and write the snapshot folder + train_log.json into `out_dir`."""
    from diffusers import DDIMScheduler

    from benchmark.core.atomic import write_json

    torch.set_num_threads(spec.threads)
    log: dict[str, Any] = {"spec": asdict(spec), "torch": torch.__version__, "load_average_start": os.getloadavg()}
    start, cpu_start = time.perf_counter(), time.process_time()
    images = render_training_set(spec.n_images, spec.data_seed)
    log["render_s"] = round(time.perf_counter() - start, 1)
    t_ae = time.perf_counter()
    vq = train_autoencoder(images, spec, log)
    log["autoencoder"]["wall_s"] = round(time.perf_counter() - t_ae, 1)
    latents = encode_latents(vq, images)
    scaling = float(1.0 / latents.std())
    vq.register_to_config(scaling_factor=scaling)
    log["latent_std"] = float(latents.std())
    t_dm = time.perf_counter()
    unet = train_latent_ddpm(latents * scaling, spec, log)
    log["latent_ddpm"]["wall_s"] = round(time.perf_counter() - t_dm, 1)
    log["total_wall_s"] = round(time.perf_counter() - start, 1)
    log["total_cpu_s"] = round(time.process_time() - cpu_start, 1)
    log["load_average_end"] = os.getloadavg()

    out_dir.mkdir(parents=True, exist_ok=True)
    vq.save_pretrained(out_dir / "vqvae", safe_serialization=True)
    unet.save_pretrained(out_dir / "unet", safe_serialization=True)
    DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(out_dir / "scheduler")
    write_json(out_dir / "train_log.json", log)
    return log


SNAPSHOT_FILES = ("vqvae/config.json", "vqvae/diffusion_pytorch_model.safetensors", "unet/config.json",
                  "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json", "train_log.json")
MANIFEST_NAME = "synthetic-ldm"


def publish(run_dir: Path, assets_dir: Path = ASSETS_DIR) -> Path:
    """Copy a training run into the shipped assets and write its model manifest with every file's sha256."""
    import shutil

    import yaml

    from benchmark.core.atomic import write_text
    from benchmark.core.hashing import sha256_file
    from benchmark.core.paths import REPO_ROOT, manifests_dir
    from benchmark.inputs.manifests import manifest_from_dict

    files = []
    for rel in SNAPSHOT_FILES:
        src, dst = run_dir / rel, assets_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        if rel != "train_log.json":
            files.append({"path": dst.resolve().relative_to(REPO_ROOT).as_posix(), "sha256": sha256_file(dst),
                          "size": dst.stat().st_size})
    log = json.loads((run_dir / "train_log.json").read_text())
    doc = {
        "schema_version": 1, "kind": "model", "name": MANIFEST_NAME, "version": 1,
        "description": ("The synthetic world's latent diffusion model: a VQModel (64² RGB -> 4x16x16 latent, 1024 "
                        "codes) and a UNet2DModel on the scaled latent (h = 64x4x4), trained on the renderer's "
                        "faces (no green skin) with the real LDM's scaled_linear beta schedule."),
        "license": "MIT (this project)",
        "provenance": (f"python -m benchmark.synthetic.ldm train (spec {json.dumps(log['spec'], sort_keys=True)}; "
                       f"{log['total_wall_s']} s wall) then `publish`; train_log.json beside the weights"),
        "loader": "diffusers-ldm",
        "source": {"type": "local", "files": files},
    }
    path = manifests_dir() / "models" / f"{MANIFEST_NAME}.yaml"
    manifest_from_dict(doc, path)
    write_text(path, "# Written by `python -m benchmark.synthetic.ldm publish`; do not edit by hand.\n"
               + yaml.safe_dump(doc, sort_keys=False, width=110))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Retrain the synthetic world's latent diffusion model (VQ AE + DDPM).")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train from seeds and write a diffusers snapshot folder")
    t.add_argument("--out", type=Path, default=ASSETS_DIR)
    for name, value in asdict(TrainSpec()).items():
        t.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    pub = sub.add_parser("publish", help="copy a training run into the shipped assets and write the manifest")
    pub.add_argument("run_dir", type=Path)
    args = p.parse_args(argv)
    if args.command == "publish":
        print(f"wrote {publish(args.run_dir)}")
        return 0
    spec = TrainSpec(**{k: getattr(args, k) for k in asdict(TrainSpec())})
    log = train(args.out, spec)
    print(json.dumps({k: log[k] for k in ("total_wall_s", "autoencoder", "latent_ddpm")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
