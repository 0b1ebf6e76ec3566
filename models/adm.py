"""iDDPM / ADM (openai improved-diffusion, guided-diffusion) U-Nets as diffusers `UNet2DModel`s.

The authors edit AFHQ-dog with ILVR's iDDPM model (`models/improved_ddpm`, `AFHQ_DICT`) and METFACES with P2
weighting's ADM model (`models/guided_diffusion`, `METFACE_DICT`); both are the guided-diffusion `UNetModel` (keys
`time_embed.*`, `input_blocks.*`, `middle_block.*`, `output_blocks.*`, `out.*`). Everything in them has a diffusers
counterpart (docs/unet-mapping.md says module by module); the conversion needs three non-defaults:

- the timestep embedding is [cos | sin] with frequencies exp(−ln(1e4)·i/half): `flip_sin_to_cos=True`,
  `freq_shift=0`;
- `resnet_time_scale_shift="scale_shift"` makes diffusers drop the mid block attention's GroupNorm unless
  `attn_norm_num_groups` is given, so it is set to 32;
- the "legacy" attention (`use_new_attention_order=False`) interleaves q, k, v per head in the qkv conv, so the
  rows are regrouped per head before they become to_q / to_k / to_v (a plain `chunk(3)` is only right for the new
  order, or for one head).

A learned σ (`learn_sigma`) gives 6 output channels; `HSpaceUNet` returns the first 3 as ε, as the authors do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from diffusers import UNet2DModel

from benchmark.core.errors import BenchError, DataError

# The authors' settings (kwonminki/Asyrp_official models/improved_ddpm/script_util.py AFHQ_DICT and
# models/guided_diffusion/script_util.py METFACE_DICT; channel_mult "" -> (1, 1, 2, 2, 4, 4) at 256²).
_AUTHORS_256 = {"image_size": 256, "num_channels": 128, "num_res_blocks": 1, "channel_mult": (1, 1, 2, 2, 4, 4),
                "attention_resolutions": (16,), "num_head_channels": 64, "num_heads": 4, "learn_sigma": True,
                "resblock_updown": True, "use_scale_shift_norm": True, "use_new_attention_order": False,
                "dropout": 0.0}
ADM_ARCHS: dict[str, dict[str, Any]] = {"afhq-dog-iddpm": dict(_AUTHORS_256), "metfaces-p2": dict(_AUTHORS_256)}


def adm_unet_config(*, image_size: int, num_channels: int, num_res_blocks: int, channel_mult: Sequence[float],
                    attention_resolutions: Sequence[int], num_head_channels: int = -1, num_heads: int = 1,
                    num_heads_upsample: int = -1, learn_sigma: bool = False, resblock_updown: bool = False,
                    use_scale_shift_norm: bool = False, use_new_attention_order: bool = False, dropout: float = 0.0,
                    in_channels: int = 3, class_cond: bool = False) -> dict[str, Any]:
    """The `UNet2DModel` config equivalent to guided-diffusion's `create_model(...)` with these arguments.

    `attention_resolutions` are feature-map sizes (the authors' "16" = attention at 16×16), as in `create_model`.
    """
    if class_cond:
        raise BenchError("class-conditional iDDPM/ADM models are not supported (h-space editing is unconditional)")
    channels = [int(m * num_channels) for m in channel_mult]
    sizes = [image_size // 2 ** level for level in range(len(channel_mult))]
    attn = [size in set(attention_resolutions) for size in sizes]
    updown = "resnet" if resblock_updown else "conv"
    down = [("AttnDownBlock2D" if a else "ResnetDownsampleBlock2D" if resblock_updown else "DownBlock2D")
            for a in attn]
    up = [("AttnUpBlock2D" if a else "ResnetUpsampleBlock2D" if resblock_updown else "UpBlock2D")
          for a in reversed(attn)]
    return {
        "sample_size": image_size, "in_channels": in_channels, "out_channels": 2 * in_channels if learn_sigma
        else in_channels, "block_out_channels": channels, "layers_per_block": num_res_blocks,
        "down_block_types": down, "up_block_types": up, "downsample_type": updown, "upsample_type": updown,
        "downsample_padding": 1, "time_embedding_type": "positional", "flip_sin_to_cos": True, "freq_shift": 0,
        "act_fn": "silu", "norm_num_groups": 32, "attn_norm_num_groups": 32, "norm_eps": 1e-5,
        "resnet_time_scale_shift": "scale_shift" if use_scale_shift_norm else "default",
        "attention_head_dim": _head_dim(channels, attn, num_head_channels, num_heads, num_heads_upsample),
        "mid_block_scale_factor": 1, "dropout": dropout, "add_attention": True,
        "_attention_order": "new" if use_new_attention_order else "legacy",
    }


def _head_dim(channels, attn, num_head_channels, num_heads, num_heads_upsample) -> int | None:
    """diffusers has one head width for every attention layer; guided-diffusion has a head width or a head count."""
    if num_head_channels > 0:
        return num_head_channels
    if num_heads_upsample not in (-1, num_heads):
        raise BenchError("num_heads_upsample != num_heads has no UNet2DModel equivalent")
    widths = {c for c, a in zip(channels, attn) if a} | {channels[-1]}
    if num_heads == 1:
        return None  # one head as wide as each layer
    if len(widths) != 1 or next(iter(widths)) % num_heads:
        raise BenchError(f"{num_heads} heads over attention layers of widths {sorted(widths)} have no single head "
                         "width, which UNet2DModel needs", fix="only num_head_channels, or equal widths, map")
    return next(iter(widths)) // num_heads


def build_adm_unet(config: Mapping[str, Any]) -> UNet2DModel:
    return UNet2DModel(**{k: v for k, v in config.items() if not k.startswith("_")})


def convert_adm_state_dict(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """guided-diffusion `UNetModel` keys -> `UNet2DModel` keys (for `adm_unet_config(...)`). Every source key must
    be used exactly once; anything left over or missing is an error."""
    state = _Tracked({k.removeprefix("module."): v for k, v in state.items()})
    out: dict[str, torch.Tensor] = {}
    try:
        for src, dst, kind in _key_plan(config):
            if kind == "resnet":
                _copy_prefixed(state, out, src, dst, _RESNET_KEYS)
            elif kind == "attention":
                _convert_attention(state, out, src, dst, config)
            else:  # plain modules: conv / linear / norm, same parameter names
                for param in ("weight", "bias"):
                    out[f"{dst}.{param}"] = state[f"{src}.{param}"]
    except KeyError as e:
        raise DataError(f"the checkpoint lacks {e}, which this architecture needs",
                        fix="check the architecture arguments against the checkpoint") from None
    unused = [k for k in state if k not in state.used]
    if unused:
        raise DataError(f"{len(unused)} checkpoint keys have no place in this architecture: {unused[:6]}",
                        fix="check the architecture arguments (channel_mult, num_res_blocks, attention_resolutions)")
    return out


class _Tracked(dict):
    """A state dict that remembers which keys were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.used: set[str] = set()

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.used.add(key)
        return value


_RESNET_KEYS = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
                "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
                "op": "conv", "conv": "conv"}


def _key_plan(config) -> list[tuple[str, str, str]]:
    """(source prefix, destination prefix, kind) in the order guided-diffusion builds its blocks."""
    n = config["layers_per_block"]
    down, up = config["down_block_types"], config["up_block_types"]
    resnet_updown = config["downsample_type"] == "resnet"
    plan = [("time_embed.0", "time_embedding.linear_1", "plain"), ("time_embed.2", "time_embedding.linear_2", "plain"),
            ("input_blocks.0.0", "conv_in", "plain")]
    k = 1
    for level, kind in enumerate(down):
        for j in range(n):
            plan.append((f"input_blocks.{k}.0", f"down_blocks.{level}.resnets.{j}", "resnet"))
            if kind.startswith("Attn"):
                plan.append((f"input_blocks.{k}.1", f"down_blocks.{level}.attentions.{j}", "attention"))
            k += 1
        if level < len(down) - 1:
            plan.append((f"input_blocks.{k}.0", f"down_blocks.{level}.downsamplers.0",
                         "resnet" if resnet_updown else "downconv"))
            k += 1
    plan += [("middle_block.0", "mid_block.resnets.0", "resnet"), ("middle_block.1", "mid_block.attentions.0",
             "attention"), ("middle_block.2", "mid_block.resnets.1", "resnet")]
    k = 0
    for u, kind in enumerate(up):
        attn = kind.startswith("Attn")
        for j in range(n + 1):
            plan.append((f"output_blocks.{k}.0", f"up_blocks.{u}.resnets.{j}", "resnet"))
            if attn:
                plan.append((f"output_blocks.{k}.1", f"up_blocks.{u}.attentions.{j}", "attention"))
            k += 1
        if u < len(up) - 1:
            plan.append((f"output_blocks.{k - 1}.{2 if attn else 1}", f"up_blocks.{u}.upsamplers.0",
                         "resnet" if resnet_updown else "upconv"))
    plan += [("out.0", "conv_norm_out", "plain"), ("out.2", "conv_out", "plain")]
    return [(s, d, "resnet" if kind in ("downconv", "upconv") else kind) for s, d, kind in plan]


def _copy_prefixed(state, out, src, dst, table) -> None:
    """Copy every `src.<old>.<param>` to `dst.<new>.<param>` (a conv up/down-sampler is `op` / `conv`)."""
    found = False
    for old, new in table.items():
        for param in ("weight", "bias"):
            key = f"{src}.{old}.{param}"
            if dict.__contains__(state, key):
                out[f"{dst}.{new}.{param}"] = state[key]
                found = True
    if not found:
        raise DataError(f"the checkpoint has no parameters under {src!r}",
                        fix="check the architecture arguments against the checkpoint")


def _convert_attention(state, out, src, dst, config) -> None:
    width = state[f"{src}.norm.weight"].shape[0]
    head_dim = config["attention_head_dim"] or width
    heads = width // head_dim
    qkv_w, qkv_b = state[f"{src}.qkv.weight"][:, :, 0], state[f"{src}.qkv.bias"]
    if config.get("_attention_order", "legacy") == "legacy":  # rows: head, then (q | k | v), then channel
        w = qkv_w.reshape(heads, 3, head_dim, width).transpose(0, 1).reshape(3, width, width)
        b = qkv_b.reshape(heads, 3, head_dim).transpose(0, 1).reshape(3, width)
    else:  # rows: (q | k | v), then head, then channel
        w, b = qkv_w.reshape(3, width, width), qkv_b.reshape(3, width)
    for i, name in enumerate(("to_q", "to_k", "to_v")):
        out[f"{dst}.{name}.weight"], out[f"{dst}.{name}.bias"] = w[i], b[i]
    out[f"{dst}.group_norm.weight"], out[f"{dst}.group_norm.bias"] = (state[f"{src}.norm.weight"],
                                                                      state[f"{src}.norm.bias"])
    out[f"{dst}.to_out.0.weight"] = state[f"{src}.proj_out.weight"][:, :, 0]
    out[f"{dst}.to_out.0.bias"] = state[f"{src}.proj_out.bias"]


def from_adm_checkpoint(state: Mapping[str, torch.Tensor], **arch) -> UNet2DModel:
    """A guided-diffusion / iDDPM `UNetModel` state dict as a `UNet2DModel` (loaded strictly); `arch` are
    `adm_unet_config` arguments, e.g. `**ADM_ARCHS["afhq-dog-iddpm"]`."""
    config = adm_unet_config(**arch)
    unet = build_adm_unet(config)
    converted = convert_adm_state_dict(state, config)
    try:
        unet.load_state_dict(converted, strict=True)
    except RuntimeError as e:
        raise DataError(f"the iDDPM/ADM checkpoint does not fit the given architecture: {e}",
                        fix="check the architecture arguments against the checkpoint") from None
    return unet.eval()
