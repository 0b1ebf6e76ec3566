"""Base diffusion models: the diffusers CelebA-HQ DDPM, and the authors' SDEdit checkpoint converted to diffusers.

Nothing here downloads. The harness's `fetch` command brings the files; the pins it needs are the constants
below. Loading verifies known digests before unpickling, and uses the authors' schedule (linear β 1e-4 → 0.02,
T = 1000, no x0 clipping) rather than the hub scheduler's `clip_sample=True`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel

from benchmark.core.errors import DataError, DigestMismatchError, MissingWeightsError
from benchmark.core.hashing import sha256_file
from models.codec import PixelCodec
from models.diffusion_model import DiffusionModel
from models.hspace import HSpaceUNet
from models.schedule import linear_alphas_cumprod


@dataclass(frozen=True)
class HubSnapshot:
    """A pinned Hugging Face Hub snapshot: repo, full commit, and the sha256 of the files where known (None =
    not yet known; the harness's lock step records it on first fetch)."""

    repo_id: str
    revision: str
    files: Mapping[str, str | None] = field(default_factory=dict)
    env_var: str = ""


# google/ddpm-ema-celebahq-256 at its main commit of 2022-11-08 (4cb6117). The weights file last changed in
# commit 7026fab ("convert weights"); its LFS sha256 is the one the hub lists for this revision.
DDPM_CELEBAHQ = HubSnapshot(
    repo_id="google/ddpm-ema-celebahq-256",
    revision="4cb6117472e6e4f45c5afe606b101858c27c3802",
    files={
        "diffusion_pytorch_model.bin": "3ec1b462abd49605d4f7cddfe453626e9aea1edc8c2449450a1c054efb863abf",
        "config.json": None,
        "scheduler_config.json": None,
        "model_index.json": None,
    },
    env_var="ASYRP_DDPM_CELEBAHQ",
)

# SDEdit's CelebA-HQ DDPM, which the authors' code downloads (`celeba_hq.ckpt`, ermongroup DDPM layout).
SDEDIT_CELEBAHQ_URL = "https://image-editing-test-12345.s3-us-west-2.amazonaws.com/checkpoints/celeba_hq.ckpt"
SDEDIT_CELEBAHQ_SHA256: str | None = None  # not known from any stored source; record it on first fetch
SDEDIT_CELEBAHQ_ENV = "ASYRP_SDEDIT_CELEBAHQ"

# The authors' configs/celeba.yml model section, in `from_ddpm_checkpoint` terms.
CELEBAHQ_DDPM_ARCH: dict[str, Any] = {"ch": 128, "ch_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2,
                                      "attn_resolutions": (16,), "resolution": 256}


# ---------------------------------------------------------------------------------------------------------------
# ermongroup DDPM layout -> diffusers UNet2DModel
# ---------------------------------------------------------------------------------------------------------------
def ddpm_unet_config(*, ch: int, ch_mult: Sequence[int], num_res_blocks: int, attn_resolutions: Sequence[int],
                     resolution: int, in_channels: int = 3, out_ch: int = 3) -> dict[str, Any]:
    """The `UNet2DModel` config equivalent to a DDPM (Ho et al. / ermongroup `Model`) of this shape."""
    levels = [resolution // 2 ** i for i in range(len(ch_mult))]
    attn = set(attn_resolutions)
    return {
        "sample_size": resolution, "in_channels": in_channels, "out_channels": out_ch,
        "block_out_channels": [ch * m for m in ch_mult], "layers_per_block": num_res_blocks,
        "down_block_types": ["AttnDownBlock2D" if r in attn else "DownBlock2D" for r in levels],
        "up_block_types": ["AttnUpBlock2D" if r in attn else "UpBlock2D" for r in reversed(levels)],
        "time_embedding_type": "positional", "flip_sin_to_cos": False, "freq_shift": 1, "act_fn": "silu",
        "norm_num_groups": 32, "norm_eps": 1e-6, "downsample_padding": 0, "mid_block_scale_factor": 1,
        "attention_head_dim": None, "dropout": 0.0, "add_attention": True,
    }


def from_ddpm_checkpoint(state_dict: Mapping[str, torch.Tensor], *, ch: int, ch_mult: Sequence[int],
                         num_res_blocks: int, attn_resolutions: Sequence[int], resolution: int,
                         in_channels: int = 3, out_ch: int = 3) -> UNet2DModel:
    """Convert an ermongroup-layout DDPM state dict (`temb.dense.*`, `down.i.block.j.*`, `down.i.downsample.conv`,
    `mid.block_1/attn_1/block_2`, `up.*`, `norm_out`) to a `UNet2DModel`, loaded strictly."""
    n_levels = len(ch_mult)
    mapped, unknown = {}, []
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        new = _map_ddpm_key(key, n_levels)
        if new is None:
            unknown.append(key)
            continue
        if ".attentions." in new and value.ndim == 4:  # 1×1 convs become the Linear layers of diffusers' Attention
            value = value[:, :, 0, 0]
        mapped[new] = value
    if unknown:
        raise DataError(f"{len(unknown)} keys are not in the DDPM layout: {unknown[:8]}",
                        fix="pass a state dict of the ermongroup DDPM `Model` (e.g. SDEdit's celeba_hq.ckpt)")
    config = ddpm_unet_config(ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
                              attn_resolutions=attn_resolutions, resolution=resolution, in_channels=in_channels,
                              out_ch=out_ch)
    unet = UNet2DModel(**config)
    try:
        unet.load_state_dict(mapped, strict=True)
    except RuntimeError as e:
        raise DataError(f"the DDPM checkpoint does not fit the given architecture: {e}",
                        fix="check ch / ch_mult / num_res_blocks / attn_resolutions / resolution") from None
    return unet.eval()


_RESNET = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
           "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_TOP = {"temb.dense.0": "time_embedding.linear_1", "temb.dense.1": "time_embedding.linear_2",
        "conv_in": "conv_in", "norm_out": "conv_norm_out", "conv_out": "conv_out",
        "mid.block_1": "mid_block.resnets.0", "mid.attn_1": "mid_block.attentions.0",
        "mid.block_2": "mid_block.resnets.1"}


def _map_ddpm_key(key: str, n_levels: int) -> str | None:
    module, _, param = key.rpartition(".")
    for old, new in _TOP.items():
        if module == old:
            return f"{new}.{param}"
        if module.startswith(old + "."):
            return _sublayer(f"{new}", module[len(old) + 1:], param, attention="attn" in old)
    parts = module.split(".")
    if len(parts) < 3 or parts[0] not in ("down", "up") or not parts[1].isdigit():
        return None
    level = int(parts[1])
    prefix = f"down_blocks.{level}" if parts[0] == "down" else f"up_blocks.{n_levels - 1 - level}"
    kind = parts[2]
    if kind in ("downsample", "upsample") and parts[3:] == ["conv"]:
        return f"{prefix}.{kind}rs.0.conv.{param}"
    if kind in ("block", "attn") and len(parts) >= 5 and parts[3].isdigit():
        sub = "resnets" if kind == "block" else "attentions"
        return _sublayer(f"{prefix}.{sub}.{parts[3]}", ".".join(parts[4:]), param, attention=kind == "attn")
    return None


def _sublayer(prefix: str, layer: str, param: str, *, attention: bool) -> str | None:
    table = _ATTN if attention else _RESNET
    return f"{prefix}.{table[layer]}.{param}" if layer in table else None


# ---------------------------------------------------------------------------------------------------------------
# Loading the real CelebA-HQ models (local files only)
# ---------------------------------------------------------------------------------------------------------------
def celebahq_alphas_cumprod() -> torch.Tensor:
    """The authors' CelebA-HQ schedule (configs/celeba.yml): linear β 1e-4 → 0.02, T = 1000."""
    return linear_alphas_cumprod(1000, 1e-4, 0.02)


def load_ddpm_celebahq(snapshot_dir: str | Path, *, verify: bool = True, device: torch.device | str = "cpu",
                       precision: str = "fp32") -> DiffusionModel:
    """`google/ddpm-ema-celebahq-256` from a local snapshot folder (as `huggingface_hub.snapshot_download` leaves
    it), with the authors' schedule. The weights digest is checked first when `verify`."""
    root = Path(snapshot_dir)
    fetch = (f"fetch {DDPM_CELEBAHQ.repo_id} at revision {DDPM_CELEBAHQ.revision} with the harness's `fetch` "
             f"command, then set {DDPM_CELEBAHQ.env_var} to the snapshot folder")
    subfolder = "unet" if (root / "unet" / "config.json").is_file() else None
    unet_dir = root / subfolder if subfolder else root
    if not (unet_dir / "config.json").is_file():
        raise MissingWeightsError(f"no diffusers UNet snapshot at {root} (config.json missing)", fix=fetch)
    weights = [unet_dir / name for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
               if (unet_dir / name).is_file()]
    if not weights:
        raise MissingWeightsError(f"no diffusion_pytorch_model.{{safetensors,bin}} in {unet_dir}", fix=fetch)
    if verify:
        expected = DDPM_CELEBAHQ.files.get(weights[0].name)
        if expected is not None and (actual := sha256_file(weights[0])) != expected:
            raise DigestMismatchError(f"{weights[0]} has sha256 {actual}, expected {expected} (the pinned "
                                      f"revision {DDPM_CELEBAHQ.revision})", fix=fetch)
    _check_scheduler(root)
    unet = UNet2DModel.from_pretrained(root, subfolder=subfolder, local_files_only=True)
    model = DiffusionModel(HSpaceUNet(unet, precision=precision), celebahq_alphas_cumprod(), 256, PixelCodec(),
                           name="ddpm-ema-celebahq-256")
    return model.to(device)


def _check_scheduler(root: Path) -> None:
    """The hub scheduler must describe the same β schedule we rebuild (its clip_sample is deliberately ignored)."""
    for candidate in (root / "scheduler_config.json", root / "scheduler" / "scheduler_config.json"):
        if candidate.is_file():
            cfg = json.loads(candidate.read_text())
            wanted = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_timesteps": 1000}
            wrong = {k: cfg.get(k) for k, v in wanted.items() if k in cfg and cfg[k] != v}
            if wrong:
                raise DataError(f"{candidate} describes a different schedule than the authors' ({wrong})",
                                fix="use the pinned google/ddpm-ema-celebahq-256 snapshot")
            return
