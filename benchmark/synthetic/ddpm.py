"""The synthetic world's DDPM: a small diffusers `UNet2DModel` on 64² pixels, trained on renders without green skin.

ε-prediction with the authors' linear β schedule (1e-4…0.02, T = 1000), so `models/` uses it unchanged.

The UNet sees the 64×64×3 image as 32×32×12: `PatchCodec` is a 2×2 pixel-unshuffle, an exact, orthogonal
rearrangement of the pixels (no information lost, no blur), so Gaussian noise on one side is Gaussian noise of the
same variance on the other and the diffusion process is pixel diffusion at 64². It makes the UNet 4× cheaper,
which is what lets it train and run the suite on a 2-core CPU. Three resolution levels (32, 16, 8 in patch space):
the mid block, whose output is Asyrp's h-space, works at 8×8 = 1/8 of the image side (as the CelebA-HQ DDPM's 8×8
at 256²).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

PATCH = 2
DDPM_CONFIG: dict[str, Any] = {
    "sample_size": 32, "in_channels": 3 * PATCH * PATCH, "out_channels": 3 * PATCH * PATCH, "layers_per_block": 1,
    "block_out_channels": [32, 64, 128],
    "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8, "attention_head_dim": None,
}


class PatchCodec:
    """Pixels N×3×64×64 <-> N×12×32×32 by 2×2 pixel-(un)shuffle: a bijection, differentiable both ways."""

    def __init__(self, patch: int = PATCH):
        self.patch = patch

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_unshuffle(pixels, self.patch)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_shuffle(latents, self.patch)

    def to(self, device) -> PatchCodec:
        return self

    def spec(self) -> dict[str, Any]:
        return {"type": "pixel-unshuffle", "patch": self.patch}

    def __repr__(self) -> str:
        return f"PatchCodec(patch={self.patch})"


@dataclass(frozen=True)
class DdpmTrainConfig:
    # 600 steps (the first shipped model) left samples pure noise, reconstructions blurred with a 2x2 grid pattern,
    # and Asyrp unable to move the mouth; 4000 steps fixed all three (docs/synthetic.md)
    steps: int = 4000
    batch_size: int = 16
    lr: float = 1.5e-3
    warmup: int = 100
    ema_decay: float = 0.998
    grad_clip: float = 1.0
    seed: int = 0


def build_unet(config: dict[str, Any] | None = None):
    from diffusers import UNet2DModel

    return UNet2DModel(**(config or DDPM_CONFIG))


def _lr_at(step: int, cfg: DdpmTrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_ddpm(pool: torch.Tensor, cfg: DdpmTrainConfig, *, log_every: int = 25, on_checkpoint=None):
    """Train on `pool` (float N×3×64×64 pixels in [-1, 1], encoded by `PatchCodec`); returns (EMA UNet, history).

    Each batch draws images and horizontal flips from the pool and timesteps stratified over [0, 1000), all from
    one `torch.Generator(seed)`.
    """
    from models.schedule import linear_alphas_cumprod

    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    unet = build_unet().train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    abar = linear_alphas_cumprod().float()
    history, start = [], time.time()
    for step in range(cfg.steps):
        idx = torch.randint(0, pool.shape[0], (cfg.batch_size,), generator=g)
        x0 = pool[idx]
        flip = torch.rand(cfg.batch_size, generator=g) < 0.5
        x0 = PatchCodec().encode(torch.where(flip[:, None, None, None], x0.flip(-1), x0))
        # stratified timesteps: lower variance of the loss than i.i.d. uniform draws
        t = ((torch.arange(cfg.batch_size) + torch.rand(cfg.batch_size, generator=g)) * (1000 / cfg.batch_size))
        t = t.long().clamp(0, 999)
        noise = torch.randn(x0.shape, generator=g)
        a = abar[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = torch.nn.functional.mse_loss(unet(xt, t).sample, noise)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - cfg.ema_decay)
        history.append(float(loss.detach()))
        if (step + 1) % log_every == 0:
            recent = sum(history[-log_every:]) / log_every
            print(f"ddpm step {step + 1}/{cfg.steps} loss {recent:.4f} ({time.time() - start:.0f}s)",
                  file=sys.stderr, flush=True)
        if on_checkpoint is not None and (step + 1) % 500 == 0:
            on_checkpoint(step + 1, ema)
    return ema, history


def config_dict(cfg: DdpmTrainConfig) -> dict:
    return asdict(cfg)
