"""The synthetic world's oracles: a factor regressor with an identity head, and a small segmenter.

- `FactorOracle`: a CNN on 64² uint8 renders -> (the continuous factors in `FACTOR_NAMES` order, in their own
  units; an L2-normalised identity embedding). The factors are the ground-truth attribute measure (the world knows
  them, the oracle measures them from pixels, so an edit's true effect can be read off). The identity head is
  trained to tell *persons* apart (identity seed + face geometry) whatever their expression, skin, hair and
  background, i.e. the things an edit may change.
- `Segmenter`: a small encoder-decoder -> logits over `renderer.CLASSES` (the SC back-end).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.synthetic.renderer import CLASSES, FACTOR_NAMES, FACTOR_RANGES, Factors

IDENTITY_DIM = 32
_LO = torch.tensor([FACTOR_RANGES[n][0] for n in FACTOR_NAMES])
_HI = torch.tensor([FACTOR_RANGES[n][1] for n in FACTOR_NAMES])
# What defines a person for the identity head; everything else may change under an edit.
PERSON_FACTORS = ("face_shape", "eye_size", "eye_spacing")


def _pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float() / 127.5 - 1.0


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.SiLU())


class FactorOracle(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        # the first convolution sees full-resolution 3×3 patches, then every block halves the side: 64 -> 4
        self.trunk = nn.Sequential(_block(3, width, 2), _block(width, width * 2, 2), _block(width * 2, width * 4, 2),
                                   _block(width * 4, width * 4, 2))
        self.pool_dim = width * 4 * 4
        self.factor_head = nn.Sequential(nn.Linear(self.pool_dim, 128), nn.SiLU(), nn.Linear(128, len(FACTOR_NAMES)))
        self.identity_head = nn.Sequential(nn.Linear(self.pool_dim, 128), nn.SiLU(), nn.Linear(128, IDENTITY_DIM))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.trunk(x), 2).flatten(1)  # a 2×2 grid keeps where things are

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[-1, 1] pixels -> (factors scaled to [0, 1] of their ranges, normalised identity embedding)."""
        f = self._features(x)
        return self.factor_head(f), F.normalize(self.identity_head(f), dim=-1)

    @torch.no_grad()
    def measure(self, images_uint8: torch.Tensor, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 N×3×64×64 -> (factors N×F in their own units, identity N×IDENTITY_DIM)."""
        factors, ids = [], []
        for i in range(0, len(images_uint8), batch_size):
            scaled, emb = self(_pixels(images_uint8[i:i + batch_size].to(next(self.parameters()).device)))
            factors.append(unscale(scaled.float().cpu()))
            ids.append(emb.float().cpu())
        return torch.cat(factors), torch.cat(ids)


def scale(values: torch.Tensor) -> torch.Tensor:
    return (values - _LO) / (_HI - _LO)


def unscale(scaled: torch.Tensor) -> torch.Tensor:
    return scaled * (_HI - _LO) + _LO


class Segmenter(nn.Module):
    """A three-level encoder-decoder with skip connections; logits at the input resolution."""

    def __init__(self, width: int = 16, n_classes: int = len(CLASSES)):
        super().__init__()
        self.enc1, self.enc2, self.enc3 = _block(3, width, 1), _block(width, width * 2, 2), _block(width * 2,
                                                                                                   width * 4, 2)
        self.dec2 = _block(width * 4 + width * 2, width * 2, 1)
        self.dec1 = _block(width * 2 + width, width, 1)
        self.out = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], 1))
        return self.out(d1)

    @torch.no_grad()
    def parse(self, images_uint8: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        out = []
        for i in range(0, len(images_uint8), batch_size):
            x = _pixels(images_uint8[i:i + batch_size].to(next(self.parameters()).device))
            out.append(self(x).argmax(1).cpu())
        return torch.cat(out)


# ---------------------------------------------------------------------------------------------------- data


def person_factors(n_persons: int, per_person: int, seed: int, *, identity_base: int = 0) -> list[Factors]:
    """`per_person` renders of each of `n_persons` persons: identity and geometry fixed, everything else drawn."""
    from benchmark.synthetic.dataset import sample_factors

    rng = np.random.default_rng([seed, 3])
    out = []
    for _p in range(n_persons):
        identity = identity_base + int(rng.integers(0, 1_000_000))
        person = {n: round(float(rng.uniform(*FACTOR_RANGES[n])), 6) for n in PERSON_FACTORS}
        for _ in range(per_person):
            f = sample_factors(rng, identity, unseen=True)
            out.append(f.replace(**person))
    return out


# ---------------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class OracleTrainConfig:
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    identity_weight: float = 1.0
    identity_scale: float = 16.0
    identity_margin: float = 0.2
    seed: int = 0


def _cosine_lr(step: int, steps: int, lr: float, warmup: int = 50) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_oracle(images: torch.Tensor, factors: list[Factors], persons: torch.Tensor, cfg: OracleTrainConfig,
                 *, log_every: int = 25):
    """Factor MSE (on [0, 1]-scaled factors) + an additive-margin cosine softmax over the training persons."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = FactorOracle().train()
    n_persons = int(persons.max()) + 1
    classifier = nn.Parameter(F.normalize(torch.randn(n_persons, IDENTITY_DIM), dim=-1))
    opt = torch.optim.AdamW([*model.parameters(), classifier], lr=cfg.lr, weight_decay=1e-4)
    x_all = _pixels(images)
    y_all = scale(torch.tensor(np.stack([f.vector() for f in factors])))
    history, start = [], time.time()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(factors), (cfg.batch_size,), generator=g)
        pred, emb = model(x_all[idx])
        factor_loss = F.mse_loss(pred, y_all[idx])
        cos = emb @ F.normalize(classifier, dim=-1).T
        margin = F.one_hot(persons[idx], n_persons) * cfg.identity_margin
        id_loss = F.cross_entropy(cfg.identity_scale * (cos - margin), persons[idx])
        loss = factor_loss * 10 + cfg.identity_weight * id_loss
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, cfg.steps, cfg.lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append((float(factor_loss.detach()), float(id_loss.detach())))
        if (step + 1) % log_every == 0:
            fl = sum(h[0] for h in history[-log_every:]) / log_every
            il = sum(h[1] for h in history[-log_every:]) / log_every
            print(f"oracle step {step + 1}/{cfg.steps} factor mse {fl:.4f} id loss {il:.3f} "
                  f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    return model.eval(), history


@dataclass(frozen=True)
class SegmenterTrainConfig:
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0


def train_segmenter(images: torch.Tensor, masks: torch.Tensor, cfg: SegmenterTrainConfig, *, log_every: int = 25):
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = Segmenter().train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    x_all, y_all = _pixels(images), masks.long()
    history, start = [], time.time()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(images), (cfg.batch_size,), generator=g)
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, cfg.steps, cfg.lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if (step + 1) % log_every == 0:
            print(f"segmenter step {step + 1}/{cfg.steps} loss {sum(history[-log_every:]) / log_every:.4f} "
                  f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    return model.eval(), history


# ---------------------------------------------------------------------------------------------------- evaluation


def factor_accuracy(model: FactorOracle, images: torch.Tensor, factors: list[Factors]) -> dict[str, dict]:
    """R² and MAE per factor on held-out renders (factors in their own units)."""
    pred, _ = model.measure(images)
    true = torch.tensor(np.stack([f.vector() for f in factors]))
    out = {}
    for j, name in enumerate(FACTOR_NAMES):
        err = pred[:, j] - true[:, j]
        var = float(((true[:, j] - true[:, j].mean()) ** 2).mean())
        out[name] = {"r2": 1 - float((err ** 2).mean()) / var if var > 0 else float("nan"),
                     "mae": float(err.abs().mean())}
    return out


def identity_accuracy(model: FactorOracle, images: torch.Tensor, persons: torch.Tensor) -> dict[str, float]:
    """Same-person vs different-person cosine on held-out persons; verification accuracy at the best threshold."""
    _, emb = model.measure(images)
    cos = emb @ emb.T
    same = persons[:, None] == persons[None, :]
    off_diag = ~torch.eye(len(persons), dtype=torch.bool)
    pos, neg = cos[same & off_diag], cos[~same]
    values = torch.cat([pos, neg])
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    best = 0.0
    for thr in torch.linspace(-1, 1, 201):
        pred = (values >= thr).float()
        # balanced accuracy: there are far more different-person pairs
        acc = 0.5 * (float((pred[labels == 1] == 1).float().mean()) + float((pred[labels == 0] == 0).float().mean()))
        best = max(best, acc)
    return {"same_person_cos": float(pos.mean()), "different_person_cos": float(neg.mean()),
            "gap": float(pos.mean() - neg.mean()), "verification_balanced_accuracy": best,
            "pairs_same": int(pos.numel()), "pairs_different": int(neg.numel())}


def segmenter_accuracy(model: Segmenter, images: torch.Tensor, masks: torch.Tensor) -> dict:
    pred = model.parse(images)
    truth = masks.long()
    ious = {}
    for k, name in enumerate(CLASSES):
        inter = ((pred == k) & (truth == k)).sum().item()
        union = ((pred == k) | (truth == k)).sum().item()
        if union:
            ious[name] = inter / union
    return {"pixel_accuracy": float((pred == truth).float().mean()), "miou": float(np.mean(list(ious.values()))),
            "iou": ious}


def config_dict(cfg) -> dict:
    return asdict(cfg)
