"""An independent forward of the ermongroup DDPM `Model` (the layout of SDEdit's celeba_hq.ckpt), written with
torch.nn.functional directly on the original state-dict keys, plus a generator of random state dicts in that
layout. Used only to test `models.from_ddpm_checkpoint` against something that is not diffusers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def ddpm_shapes(*, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, in_channels=3, out_ch=3):
    """key -> shape of the ermongroup DDPM state dict."""
    shapes: dict[str, tuple[int, ...]] = {}
    temb = 4 * ch

    def conv(name, cin, cout, k):
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        shapes[f"{name}.bias"] = (cout,)

    def norm(name, c):
        shapes[f"{name}.weight"] = (c,)
        shapes[f"{name}.bias"] = (c,)

    def resblock(name, cin, cout):
        norm(f"{name}.norm1", cin)
        conv(f"{name}.conv1", cin, cout, 3)
        shapes[f"{name}.temb_proj.weight"] = (cout, temb)
        shapes[f"{name}.temb_proj.bias"] = (cout,)
        norm(f"{name}.norm2", cout)
        conv(f"{name}.conv2", cout, cout, 3)
        if cin != cout:
            conv(f"{name}.nin_shortcut", cin, cout, 1)

    def attn(name, c):
        norm(f"{name}.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, 1)

    shapes["temb.dense.0.weight"], shapes["temb.dense.0.bias"] = (temb, ch), (temb,)
    shapes["temb.dense.1.weight"], shapes["temb.dense.1.bias"] = (temb, temb), (temb,)
    conv("conv_in", in_channels, ch, 3)
    mults = (1, *ch_mult)
    res, c = resolution, ch
    for i in range(len(ch_mult)):
        c_out = ch * ch_mult[i]
        for j in range(num_res_blocks):
            resblock(f"down.{i}.block.{j}", c, c_out)
            c = c_out
            if res in attn_resolutions:
                attn(f"down.{i}.attn.{j}", c)
        if i != len(ch_mult) - 1:
            conv(f"down.{i}.downsample.conv", c, c, 3)
            res //= 2
    resblock("mid.block_1", c, c)
    attn("mid.attn_1", c)
    resblock("mid.block_2", c, c)
    for i in reversed(range(len(ch_mult))):
        c_out = ch * ch_mult[i]
        for j in range(num_res_blocks + 1):
            skip = ch * (ch_mult[i] if j < num_res_blocks else mults[i])
            resblock(f"up.{i}.block.{j}", c + skip, c_out)
            c = c_out
            if res in attn_resolutions:
                attn(f"up.{i}.attn.{j}", c)
        if i != 0:
            conv(f"up.{i}.upsample.conv", c, c, 3)
            res *= 2
    norm("norm_out", c)
    conv("conv_out", c, out_ch, 3)
    return shapes


def random_ddpm_state_dict(seed: int = 0, **arch) -> dict[str, torch.Tensor]:
    """Random values with fan-in scaling (so activations stay O(1)) and non-trivial norm affines."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in ddpm_shapes(**arch).items():
        if len(shape) == 1:
            base = 1.0 if key.endswith(".weight") else 0.0  # GroupNorm weight near 1, biases near 0
            state[key] = base + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return state


def ddpm_forward(state, x, t, *, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, **_):
    """ε of the ermongroup DDPM, from its state dict."""
    p = state

    def gn(name, h):
        return F.group_norm(h, 32, p[f"{name}.weight"], p[f"{name}.bias"], eps=1e-6)

    def conv(name, h, stride=1, padding=1):
        return F.conv2d(h, p[f"{name}.weight"], p[f"{name}.bias"], stride=stride, padding=padding)

    def resblock(name, h, temb):
        out = conv(f"{name}.conv1", F.silu(gn(f"{name}.norm1", h)))
        out = out + F.linear(F.silu(temb), p[f"{name}.temb_proj.weight"], p[f"{name}.temb_proj.bias"])[:, :, None, None]
        out = conv(f"{name}.conv2", F.silu(gn(f"{name}.norm2", out)))
        if f"{name}.nin_shortcut.weight" in p:
            h = conv(f"{name}.nin_shortcut", h, padding=0)
        return h + out

    def attn(name, h):
        b, c, hh, ww = h.shape
        n = gn(f"{name}.norm", h)
        q, k, v = (conv(f"{name}.{s}", n, padding=0).reshape(b, c, hh * ww) for s in ("q", "k", "v"))
        w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c), dim=2)  # [query i, key j]
        out = torch.einsum("bcj,bij->bci", v, w).reshape(b, c, hh, ww)
        return h + conv(f"{name}.proj_out", out, padding=0)

    half = ch // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    temb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    temb = F.linear(F.silu(F.linear(temb, p["temb.dense.0.weight"], p["temb.dense.0.bias"])),
                    p["temb.dense.1.weight"], p["temb.dense.1.bias"])

    hs = [conv("conv_in", x)]
    res = resolution
    for i in range(len(ch_mult)):
        for j in range(num_res_blocks):
            h = resblock(f"down.{i}.block.{j}", hs[-1], temb)
            if res in attn_resolutions:
                h = attn(f"down.{i}.attn.{j}", h)
            hs.append(h)
        if i != len(ch_mult) - 1:
            hs.append(conv(f"down.{i}.downsample.conv", F.pad(hs[-1], (0, 1, 0, 1)), stride=2, padding=0))
            res //= 2
    h = resblock("mid.block_2", attn("mid.attn_1", resblock("mid.block_1", hs[-1], temb)), temb)
    for i in reversed(range(len(ch_mult))):
        for j in range(num_res_blocks + 1):
            h = resblock(f"up.{i}.block.{j}", torch.cat([h, hs.pop()], dim=1), temb)
            if res in attn_resolutions:
                h = attn(f"up.{i}.attn.{j}", h)
        if i != 0:
            h = conv(f"up.{i}.upsample.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
            res *= 2
    return conv("conv_out", F.silu(gn("norm_out", h)))
