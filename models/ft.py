"""f_t networks: Δh = f_t(h, temb). A registry, the authors' DeltaBlock (`conv`), their ResBlock-style variant for
iDDPM / ADM U-Nets (`resblock`), and a global Δh (`global`).

Every f_t is an `nn.Module` called as `ft(h, temb) -> Δh` with Δh shaped like h. `temb` is the frozen UNet's own
time embedding (the 512-d output of its second dense layer, before any activation). Register new variants with
`@FT_REGISTRY.register("name")` on a factory taking `(*, h_channels, temb_dim, h_size, **options)`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core.errors import BenchError, DataError, DigestMismatchError
from benchmark.core.hashing import sha256_file
from benchmark.core.registry import Registry

FtFactory = Callable[..., nn.Module]
FT_REGISTRY: Registry[FtFactory] = Registry("f_t network")

# sha256 of the authors' released checkpoints (kwonminki/Asyrp_official @ a6c82dc, `checkpoint/`), computed from
# the files; `load_official_ft` checks a file with one of these names against its digest before unpickling it.
OFFICIAL_FT_SHA256 = {
    "smiling_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth": "6694632ef848d12e595ec1291df734ef3e9850d94a08632f06dc8fdd459b7703",
    "sad_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth": "3b1fbc22602043d8748fd444ef4a9f993175ad02196c56e7e0d4270ca2e5eea3",
    "tanned_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth": "ac4e6eeb1c3aad92aa495a448d5ddf878c38b482b1feba08d8adaf1a856ec7f7",
    "pixar_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth": "fb5b77b60221872c8ba9dd9af9f40a92c6eba5bb716585c0e7e75f996659b67e",
    "neanderthal_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth": "f159a7ea48939f149a63de105e56c34d42ced887c712004139c950e5e8ac043b",
}


class DeltaBlock(nn.Module):
    """The authors' f_t: conv1×1 → + Linear(SiLU(temb)) → GroupNorm(32, eps 1e-6) → SiLU → conv1×1.

    No residual, no dropout, PyTorch's default (non-zero) init, so Δh ≠ 0 before training, as in the released
    checkpoints. Parameter names match those checkpoints. `use_temb=False` is the authors' `--ignore_timesteps`.
    """

    def __init__(self, channels: int, temb_dim: int, *, norm_groups: int = 32, use_temb: bool = True):
        super().__init__()
        self.use_temb = use_temb
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=1)
        self.temb_proj = nn.Linear(temb_dim, channels)
        self.norm2 = nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        x = self.conv1(h)
        if self.use_temb and temb is not None:
            x = x + self.temb_proj(F.silu(temb))[:, :, None, None]
        return self.conv2(F.silu(self.norm2(x)))


class ResDeltaBlock(nn.Module):
    """The authors' f_t for their iDDPM / ADM U-Nets (AFHQ-dog, METFACES; `models/improved_ddpm/unet.py` and
    `models/guided_diffusion/unet.py` `DeltaBlock`): GroupNorm(32) → SiLU → conv1×1, + Linear(SiLU(temb)),
    GroupNorm(32) → SiLU → dropout → conv1×1.

    No residual, PyTorch's default init (the authors' block does not zero its last conv). GroupNorm eps is PyTorch's
    default 1e-5, as in guided-diffusion's `normalization()`; the authors compute it in float32 (`GroupNorm32`), which
    is what this does for float32 inputs. Parameter names follow the authors' `in_layers` / `emb_layers` /
    `out_layers` Sequentials, so their released `dog_*` / `metface_*` checkpoints load as they are saved.
    """

    def __init__(self, channels: int, temb_dim: int, *, norm_groups: int = 32, dropout: float = 0.0,
                 use_temb: bool = True):
        super().__init__()
        self.use_temb = use_temb
        self.in_layers = nn.Sequential(nn.GroupNorm(norm_groups, channels), nn.SiLU(),
                                       nn.Conv2d(channels, channels, kernel_size=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(temb_dim, channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(norm_groups, channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(channels, channels, kernel_size=1))

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        x = self.in_layers(h)
        if self.use_temb and temb is not None:
            x = x + self.emb_layers(temb)[:, :, None, None]
        return self.out_layers(x)


class GlobalDelta(nn.Module):
    """One learned Δh shared by every timestep and image (the paper's Δh^global, §5.3); ignores h and temb.

    Initialised like the authors' `--train_delta_h --ignore_timesteps` path: `randn(C, H, W) * init_std`.
    """

    def __init__(self, channels: int, h_size: int, *, init_std: float = 0.2):
        super().__init__()
        self.delta = nn.Parameter(torch.randn(channels, h_size, h_size) * init_std)

    def forward(self, h: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        return self.delta.to(h.dtype).unsqueeze(0).expand_as(h)


@FT_REGISTRY.register("conv")
def _build_conv(*, h_channels: int, temb_dim: int, h_size: int, norm_groups: int = 32,
                use_temb: bool = True) -> nn.Module:
    if h_channels % norm_groups:
        divisors = [g for g in range(1, min(h_channels, 32) + 1) if h_channels % g == 0]
        raise BenchError(f"the conv f_t's GroupNorm cannot split {h_channels} h channels into {norm_groups} groups",
                         fix=f"pass the f_t option norm_groups={divisors[-1]} (the authors' 32 needs a multiple "
                             "of 32 channels)")
    return DeltaBlock(h_channels, temb_dim, norm_groups=norm_groups, use_temb=use_temb)


@FT_REGISTRY.register("resblock")
def _build_resblock(*, h_channels: int, temb_dim: int, h_size: int, norm_groups: int = 32, dropout: float = 0.0,
                    use_temb: bool = True) -> nn.Module:
    if h_channels % norm_groups:
        raise BenchError(f"the resblock f_t's GroupNorm cannot split {h_channels} h channels into {norm_groups} "
                         "groups", fix="pass the f_t option norm_groups with a divisor of the h channels")
    return ResDeltaBlock(h_channels, temb_dim, norm_groups=norm_groups, dropout=dropout, use_temb=use_temb)


@FT_REGISTRY.register("global")
def _build_global(*, h_channels: int, temb_dim: int, h_size: int, init_std: float = 0.2) -> nn.Module:
    return GlobalDelta(h_channels, h_size, init_std=init_std)


def build_ft(name: str, *, h_channels: int, temb_dim: int, h_size: int, seed: int | None = None,
             **options) -> nn.Module:
    """Build a registered f_t. With `seed`, its initialisation uses that seed and leaves the global RNG untouched."""
    factory = FT_REGISTRY.get(name)
    try:
        if seed is None:
            return factory(h_channels=h_channels, temb_dim=temb_dim, h_size=h_size, **options)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory(h_channels=h_channels, temb_dim=temb_dim, h_size=h_size, **options)
    except TypeError as e:
        raise BenchError(f"bad options for f_t {name!r}: {e}", fix="check the f_t options in the manifest") from None


def load_official_ft(path: str | Path, *, sha256: str | None = None) -> DeltaBlock | ResDeltaBlock:
    """Load one of the authors' released f_t checkpoints (`{"0": state_dict, "optimizer", "scheduler"}`): a
    `DeltaBlock` (DDPM U-Nets: CelebA-HQ, LSUN) or, when the keys are `in_layers` / `emb_layers` / `out_layers`, a
    `ResDeltaBlock` (iDDPM / ADM U-Nets: AFHQ-dog, METFACES).

    Safe (`torch.load(weights_only=True)`; a file that needs arbitrary unpickling is refused) and strict (no
    missing or unexpected keys). The digest is checked first when `sha256` is given or the file name is one of
    `OFFICIAL_FT_SHA256`. Returns the block in eval mode, on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"f_t checkpoint not found: {path}",
                        fix="point to a *_LC_<category>_t999_ninv40_ngen40_0.pth file from kwonminki/Asyrp_official")
    expected = sha256 or OFFICIAL_FT_SHA256.get(path.name)
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise DigestMismatchError(f"{path} has sha256 {actual}, expected {expected}",
                                      fix="re-download the checkpoint; the file is corrupt or a different one")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BenchError(f"{path} cannot be loaded safely (weights_only=True refused it): {e}",
                         fix="use the authors' released checkpoint, or re-save the state dict with safetensors"
                         ) from None
    state = payload.get("0", payload) if isinstance(payload, dict) else None
    block = _block_for(state)
    if block is None:
        raise DataError(f"{path} is not a DeltaBlock checkpoint (expected a dict with key '0' holding conv1/"
                        "temb_proj/norm2/conv2 or in_layers/emb_layers/out_layers weights)")
    try:
        result = block.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise DataError(f"{path} does not match the {type(block).__name__} layout: {e}") from None
    if result.missing_keys or result.unexpected_keys:
        raise DataError(f"{path} does not match the {type(block).__name__} layout: missing {result.missing_keys}, "
                        f"unexpected {result.unexpected_keys}")
    return block.eval()


def _block_for(state) -> nn.Module | None:
    if not isinstance(state, dict):
        return None
    if "conv1.weight" in state and "temb_proj.weight" in state:
        channels, temb_dim = state["temb_proj.weight"].shape
        return DeltaBlock(int(channels), int(temb_dim))
    if "in_layers.2.weight" in state and "emb_layers.1.weight" in state:
        channels, temb_dim = state["emb_layers.1.weight"].shape
        return ResDeltaBlock(int(channels), int(temb_dim))
    return None
