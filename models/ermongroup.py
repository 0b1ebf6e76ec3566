"""The SDEdit DDPM checkpoints the authors edit (ermongroup `Model` layout): CelebA-HQ, LSUN church_outdoor and
LSUN bedroom, each described by the authors' config file, converted to a diffusers `UNet2DModel`.

`ERMONGROUP_CONFIGS` holds the model sections of the authors' `configs/{celeba,church,bedroom}.yml` (all three the
same DDPM: ch 128, ch_mult 1,1,2,2,4,4, 2 res blocks, attention at 16², linear β 1e-4 → 0.02, T = 1000;
scripts/release_inventory.yaml cites each). `load_ermongroup_ddpm(path, config)` reads one checkpoint safely
(`weights_only=True`, digest first when known) with that config, or with an inline `ErmongroupConfig` (tests use
a tiny one). `models.load_sdedit_celebahq` is this loader with `celeba.yml`.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.core.errors import BenchError, DataError, DigestMismatchError, MissingWeightsError
from benchmark.core.hashing import sha256_file
from benchmark.core.registry import Registry
from models.checkpoints import (
    CELEBAHQ_DDPM_ARCH,
    SDEDIT_CELEBAHQ_ENV,
    SDEDIT_CELEBAHQ_SHA256,
    SDEDIT_CELEBAHQ_URL,
    from_ddpm_checkpoint,
)
from models.codec import PixelCodec
from models.diffusion_model import DiffusionModel
from models.hspace import HSpaceUNet
from models.schedule import linear_alphas_cumprod


@dataclass(frozen=True)
class ErmongroupConfig:
    """A DDPM's architecture (`from_ddpm_checkpoint` arguments), its linear β schedule, and the model's name."""

    name: str
    arch: dict[str, Any] = field(default_factory=dict)
    beta_start: float = 1e-4
    beta_end: float = 0.02
    num_timesteps: int = 1000

    @classmethod
    def from_args(cls, name: str, arch: dict[str, Any], schedule: dict[str, Any] | None = None) -> ErmongroupConfig:
        schedule = dict(schedule or {})
        return cls(name, {k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
                          for k, v in arch.items()},
                   float(schedule.get("beta_start", 1e-4)), float(schedule.get("beta_end", 0.02)),
                   int(schedule.get("num_diffusion_timesteps", 1000)))

    def alphas_cumprod(self) -> torch.Tensor:
        return linear_alphas_cumprod(self.num_timesteps, self.beta_start, self.beta_end)


ERMONGROUP_CONFIGS: Registry[ErmongroupConfig] = Registry("ermongroup DDPM config")
# The model names are what `DiffusionModel.spec()` (and so every cache key) records: celeba.yml keeps the name the
# CelebA-HQ loader always gave.
ERMONGROUP_CONFIGS.register("celeba.yml", ErmongroupConfig("sdedit-celeba-hq", dict(CELEBAHQ_DDPM_ARCH)))
ERMONGROUP_CONFIGS.register("church.yml", ErmongroupConfig("sdedit-church-outdoor", dict(CELEBAHQ_DDPM_ARCH)))
ERMONGROUP_CONFIGS.register("bedroom.yml", ErmongroupConfig("sdedit-bedroom", dict(CELEBAHQ_DDPM_ARCH)))


def load_ermongroup_ddpm(path: str | Path, config: str | ErmongroupConfig, *, sha256: str | None = None,
                         device: torch.device | str = "cpu", precision: str = "fp32",
                         missing_fix: str | None = None) -> DiffusionModel:
    """An ermongroup-layout DDPM checkpoint (a plain state dict) as a `DiffusionModel` with its config's schedule.

    `config`: a name of `ERMONGROUP_CONFIGS` (did-you-mean) or an `ErmongroupConfig`. The digest is checked before
    unpickling when `sha256` is given; unpickling is `weights_only=True`."""
    cfg = ERMONGROUP_CONFIGS.get(config) if isinstance(config, str) else config
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"DDPM checkpoint not found: {path} ({cfg.name})",
                                  fix=missing_fix or "fetch it with the harness's `fetch` command")
    if sha256 is not None and (actual := sha256_file(path)) != sha256:
        raise DigestMismatchError(f"{path} has sha256 {actual}, expected {sha256}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BenchError(f"{path} cannot be loaded safely (weights_only=True refused it): {e}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = type(state).__name__ + (f" of {len(state)} items" if hasattr(state, "__len__") else "")
        raise DataError(f"{path} holds a {found}, not a bare state dict of the ermongroup DDPM `Model` (what SDEdit's "
                        "checkpoints are: `model.load_state_dict(ckpt)`)",
                        fix="fetch the pinned checkpoint; a training checkpoint [model, optimizer, ...] must be "
                            "unpacked to its model state dict first")
    try:
        unet = from_ddpm_checkpoint(state, **cfg.arch)
    except DataError as e:  # name the file: the converter only sees keys
        raise DataError(f"{path}: {e.message}", fix=e.fix) from None
    model = DiffusionModel(HSpaceUNet(unet, precision=precision), cfg.alphas_cumprod(),
                           int(cfg.arch["resolution"]), PixelCodec(), name=cfg.name)
    return model.to(device)


def load_sdedit_celebahq(path: str | Path, *, sha256: str | None = SDEDIT_CELEBAHQ_SHA256,
                         device: torch.device | str = "cpu", precision: str = "fp32") -> DiffusionModel:
    """SDEdit's `celeba_hq.ckpt` (the base model of the authors' CelebA-HQ runs), converted to a `UNet2DModel`:
    `models.ermongroup.load_ermongroup_ddpm` with the authors' `celeba.yml`."""
    return load_ermongroup_ddpm(path, "celeba.yml", sha256=sha256, device=device, precision=precision,
                                missing_fix=f"fetch {SDEDIT_CELEBAHQ_URL} with the harness's `fetch` command, then "
                                            f"set {SDEDIT_CELEBAHQ_ENV} to the file")
