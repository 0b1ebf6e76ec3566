"""The published layouts the forgers write, as data: written from the upstream sources, not from this project's
loaders, so a loader that misreads a format fails the rehearsal instead of agreeing with itself.

Sources (read with the search tool, or in the installed packages):
- ermongroup DDPM `Model` (SDEdit `models/diffusion.py`; Asyrp `configs/celeba.yml`): `ermongroup_ddpm_shapes`.
  SDEdit's `image_editing.py` loads `celeba_hq.ckpt` with `model.load_state_dict(ckpt)`: a bare state dict.
- diffusers' UNet2DModel / VQModel configs of `google/ddpm-ema-celebahq-256` and `CompVis/ldm-celebahq-256`
  (the DDPM config of Ho et al. for CelebA-HQ 256; CompVis latent-diffusion `ffhq-ldm-vq-4.yaml`, whose CelebA-HQ
  twin has the same UNet and VQ-f4: model_channels 224, channel_mult 1,2,3,4, attention at latent 32/16/8,
  num_head_channels 32; VQ embed_dim 3, n_embed 8192, ch 128, ch_mult 1,2,4; β linear_start 0.0015 → 0.0195).
  Both Hub snapshots were converted in 2022, before diffusers renamed its attention parameters (2023), so their
  `.bin` files carry the old names (`query`, `key`, `value`, `proj_attn`); diffusers still maps them on load
  (`ModelMixin._fix_state_dict_keys_on_load`).
- LSUN church_outdoor / bedroom DDPMs (SDEdit `church_outdoor.ckpt`, `bedroom.ckpt`): DiffusionCLIP@7573b88
  `configs/church.yml` and `configs/bedroom.yml` (model sections; the Asyrp copies are not in the index), the same
  `Model` class and layout as CelebA-HQ.
- The authors' released f_t (`*_LC_<category>_t999_ninv40_ngen40_0.pth`, Asyrp `diffusion_latent.py` saves
  `{"0": DeltaBlock state dict, "optimizer": SGD state, "scheduler": StepLR state}`): read from a released CelebA-HQ
  file (`torch.load(weights_only=True)`): SGD lr 0.5 without momentum, StepLR step 20, gamma 0.9.
- The authors' LPIPS tables (`utils/<prefix>_LPIPS_distance_{x,x0_t}{,_std}.tsv`, read with the search tool at
  16818a8: celeba, church, bedroom): one `t<TAB>repr(float)` row per t = 1 ... 997 and 999 (998 is missing in
  every table: the last inversion step jumps from 997 to 999).
"""

from __future__ import annotations

from typing import Any

#: SDEdit / Asyrp configs/celeba.yml, model section.
CELEBA_HQ_DDPM = {"ch": 128, "ch_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2, "attn_resolutions": (16,),
                  "resolution": 256, "in_channels": 3, "out_ch": 3}
#: DiffusionCLIP configs/church.yml and configs/bedroom.yml, model sections (identical to celeba.yml's).
LSUN_CHURCH_DDPM = {"ch": 128, "ch_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2, "attn_resolutions": (16,),
                    "resolution": 256, "in_channels": 3, "out_ch": 3}
LSUN_BEDROOM_DDPM = dict(LSUN_CHURCH_DDPM)

#: the authors' LPIPS tables: the timesteps they hold, in file order.
LPIPS_TABLE_TIMESTEPS = (*range(1, 998), 999)


def lpips_table_text(curve: dict[int, float]) -> str:
    """One of the authors' LPIPS tables as text: `t<TAB>repr(value)` per row, t ascending, newline-terminated."""
    return "".join(f"{t}\t{float(v)!r}\n" for t, v in sorted(curve.items()))


def asyrp_ft_checkpoint(block_state: dict) -> dict:
    """The payload of a released f_t file around one DeltaBlock state dict (keys in the release's order)."""
    n = len(block_state)
    return {"0": block_state,
            "optimizer": {"state": {i: {"momentum_buffer": None} for i in range(n)},
                          "param_groups": [{"lr": 0.5, "momentum": 0, "dampening": 0, "weight_decay": 0,
                                            "nesterov": False, "initial_lr": 0.5, "params": list(range(n))}]},
            "scheduler": {"step_size": 20, "gamma": 0.9, "base_lrs": [0.5], "last_epoch": 0, "_step_count": 1,
                          "verbose": False, "_get_lr_called_within_step": False, "_last_lr": [0.5]}}


def deltablock_shapes(h_channels: int, temb_dim: int) -> dict[str, tuple[int, ...]]:
    """key -> shape of the authors' DeltaBlock (`0` of a released f_t), in the release's key order."""
    c = h_channels
    return {"conv1.weight": (c, c, 1, 1), "conv1.bias": (c,), "temb_proj.weight": (c, temb_dim),
            "temb_proj.bias": (c,), "norm2.weight": (c,), "norm2.bias": (c,), "conv2.weight": (c, c, 1, 1),
            "conv2.bias": (c,)}


def ermongroup_ddpm_shapes(*, ch: int, ch_mult, num_res_blocks: int, attn_resolutions, resolution: int,
                           in_channels: int = 3, out_ch: int = 3) -> dict[str, tuple[int, ...]]:
    """key -> shape of the ermongroup DDPM `Model` state dict, in its state-dict order (the up levels are built
    from the deepest one but prepended to their ModuleList, so they are listed up.0 ... up.n-1)."""
    temb = 4 * ch

    def conv(out: dict, name: str, cin: int, cout: int, k: int) -> None:
        out[f"{name}.weight"], out[f"{name}.bias"] = (cout, cin, k, k), (cout,)

    def resnet(out: dict, name: str, cin: int, cout: int) -> None:
        out[f"{name}.norm1.weight"], out[f"{name}.norm1.bias"] = (cin,), (cin,)
        conv(out, f"{name}.conv1", cin, cout, 3)
        out[f"{name}.temb_proj.weight"], out[f"{name}.temb_proj.bias"] = (cout, temb), (cout,)
        out[f"{name}.norm2.weight"], out[f"{name}.norm2.bias"] = (cout,), (cout,)
        conv(out, f"{name}.conv2", cout, cout, 3)
        if cin != cout:
            conv(out, f"{name}.nin_shortcut", cin, cout, 1)

    def attn(out: dict, name: str, c: int) -> None:
        out[f"{name}.norm.weight"], out[f"{name}.norm.bias"] = (c,), (c,)
        for part in ("q", "k", "v", "proj_out"):
            conv(out, f"{name}.{part}", c, c, 1)

    shapes: dict[str, tuple[int, ...]] = {"temb.dense.0.weight": (temb, ch), "temb.dense.0.bias": (temb,),
                                          "temb.dense.1.weight": (temb, temb), "temb.dense.1.bias": (temb,)}
    conv(shapes, "conv_in", in_channels, ch, 3)
    in_mult = (1, *ch_mult)
    res, block_in = resolution, ch
    for i, mult in enumerate(ch_mult):
        block_in = ch * in_mult[i]
        for j in range(num_res_blocks):
            resnet(shapes, f"down.{i}.block.{j}", block_in, ch * mult)
            block_in = ch * mult
            if res in attn_resolutions:
                attn(shapes, f"down.{i}.attn.{j}", block_in)
        if i != len(ch_mult) - 1:
            conv(shapes, f"down.{i}.downsample.conv", block_in, block_in, 3)
            res //= 2
    resnet(shapes, "mid.block_1", block_in, block_in)
    attn(shapes, "mid.attn_1", block_in)
    resnet(shapes, "mid.block_2", block_in, block_in)
    levels: dict[int, dict[str, tuple[int, ...]]] = {}
    for i in reversed(range(len(ch_mult))):
        level = levels[i] = {}
        for j in range(num_res_blocks + 1):
            skip = ch * (in_mult[i] if j == num_res_blocks else ch_mult[i])
            resnet(level, f"up.{i}.block.{j}", block_in + skip, ch * ch_mult[i])
            block_in = ch * ch_mult[i]
            if res in attn_resolutions:
                attn(level, f"up.{i}.attn.{j}", block_in)
        if i != 0:
            conv(level, f"up.{i}.upsample.conv", block_in, block_in, 3)
            res *= 2
    for i in sorted(levels):
        shapes.update(levels[i])
    shapes["norm_out.weight"], shapes["norm_out.bias"] = (block_in,), (block_in,)
    conv(shapes, "conv_out", block_in, out_ch, 3)
    return shapes


#: google/ddpm-ema-celebahq-256 unet config (diffusers UNet2DModel), Ho et al.'s CelebA-HQ 256 model.
DDPM_EMA_CELEBAHQ_CONFIG: dict[str, Any] = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.8.0",
    "act_fn": "silu", "attention_head_dim": None, "block_out_channels": [128, 128, 256, 256, 512, 512],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 256,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
}

#: CompVis/ldm-celebahq-256 (diffusers LDMPipeline: unet + vqvae + DDIM scheduler).
LDM_CELEBAHQ_MODEL_INDEX = {"_class_name": "LDMPipeline", "_diffusers_version": "0.8.0",
                            "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DModel"],
                            "vqvae": ["diffusers", "VQModel"]}
LDM_CELEBAHQ_SCHEDULER = {"_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0",
                          "beta_end": 0.0195, "beta_schedule": "scaled_linear", "beta_start": 0.0015,
                          "clip_sample": False, "num_train_timesteps": 1000, "set_alpha_to_one": True,
                          "steps_offset": 0, "trained_betas": None}
LDM_CELEBAHQ_UNET = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.8.0",
    "act_fn": "silu", "attention_head_dim": 32, "block_out_channels": [224, 448, 672, 896],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 3, "sample_size": 64,
    "time_embedding_type": "positional",
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}
LDM_CELEBAHQ_VQVAE = {
    "_class_name": "VQModel", "_diffusers_version": "0.8.0",
    "act_fn": "silu", "block_out_channels": [128, 256, 512],
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    "in_channels": 3, "latent_channels": 3, "layers_per_block": 2, "norm_num_groups": 32, "num_vq_embeddings": 8192,
    "out_channels": 3, "sample_size": 256,
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
}

#: diffusers' attention parameter names before 2023 -> now (the Hub .bin files above carry the old ones).
DEPRECATED_ATTENTION = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def with_deprecated_attention_names(state: dict, attention_prefixes: list[str]) -> dict:
    """Rename the parameters of the given attention modules to diffusers' pre-2023 names, keeping key order."""
    out = {}
    for key, value in state.items():
        for prefix in attention_prefixes:
            if key.startswith(prefix + "."):
                rest = key[len(prefix) + 1:]
                for new, old in DEPRECATED_ATTENTION.items():
                    if rest.startswith(new + "."):
                        key = f"{prefix}.{old}.{rest[len(new) + 1:]}"
                        break
                break
        out[key] = value
    return out
