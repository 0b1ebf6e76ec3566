"""Transformer f_t variants: shapes, the token layouts against a hand computation, time conditioning, parameter
counts in closed form, seeded dropout, one training run on a micro UNet, and safetensors round trips."""

import math

import numpy as np
import pytest
import torch
from models_helpers import micro_model, one_thread, smiling_training_setup  # noqa: F401
from safetensors.torch import load_file, save_file

import models as M
from benchmark.core.errors import BenchError

VARIANTS = list(M.TRANSFORMER_VARIANTS)
CONDITIONINGS = ["add", "multiply", "adagn"]
TINY = {"h_channels": 8, "temb_dim": 6, "h_size": 4, "heads": 2, "dim_feedforward": 16, "norm_groups": 4}


def _tiny(name, seed=0, **options):
    return M.build_ft(name, seed=seed, **{**TINY, **options})


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_returns_a_delta_shaped_like_h_that_depends_on_t(name, conditioning):
    ft = _tiny(name, time_conditioning=conditioning).eval()
    torch.manual_seed(1)
    h, temb = torch.randn(3, 8, 4, 4), torch.randn(3, 6)
    out = ft(h, temb)
    assert out.shape == h.shape and torch.isfinite(out).all() and out.abs().mean() > 1e-2
    # another time embedding (same h) changes Δh; so does another h (same time embedding)
    assert (ft(h, temb + 1.0) - out).abs().max() > 1e-3
    assert (ft(h.flip(0), temb) - out).abs().max() > 1e-3


def test_the_registry_lists_the_variants_and_bad_options_name_the_fix():
    assert set(VARIANTS) <= set(M.FT_REGISTRY.names()) and "conv" in M.FT_REGISTRY.names()
    with pytest.raises(BenchError, match="heads=4"):  # 8 channels and 4·4 positions: gcd 8, largest ≤ 6 is 4
        _tiny("transformer-pixel-channel", heads=6)
    with pytest.raises(BenchError, match="add, multiply, adagn"):
        _tiny("transformer-pixel", time_conditioning="concat")
    with pytest.raises(BenchError, match="norm_groups="):
        _tiny("transformer-channel", norm_groups=3)
    with pytest.raises(BenchError, match="bad options"):
        _tiny("transformer-channel", head=2)


# --- the token layouts against a hand computation ------------------------------------------------------------------

def _make_attention_transparent(ft):
    """One head, identity q/k/v/out projections, zero feed-forward output, random LayerNorm/GroupNorm affines."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for stack in ft.stacks:
            layer = stack.encoder.layers[0]
            d = layer.self_attn.embed_dim
            layer.self_attn.in_proj_weight.copy_(torch.eye(d).repeat(3, 1))
            layer.self_attn.in_proj_bias.zero_()
            layer.self_attn.out_proj.weight.copy_(torch.eye(d))
            layer.self_attn.out_proj.bias.zero_()
            layer.linear2.weight.zero_()
            layer.linear2.bias.zero_()
            for norm in (layer.norm1, stack.encoder.norm):
                norm.weight.copy_(torch.rand(d, generator=g) + 0.5)
                norm.bias.copy_(torch.rand(d, generator=g) - 0.5)
        ft.norm.weight.copy_(torch.rand(ft.channels, generator=g) + 0.5)
        ft.norm.bias.copy_(torch.rand(ft.channels, generator=g) - 0.5)


def _layer_norm(x, weight, bias):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + 1e-5) * weight + bias


def _hand_stack(x, stack, layout):
    """tokens → x + softmax(y yᵀ/√d) y with y = LN1(tokens) → final LN → back to B×C×H×W, in float64."""
    p = {k: v.double() for k, v in stack.state_dict().items()}
    b, c, hh, ww = x.shape
    tokens = torch.einsum("bchw->bhwc", x).reshape(b, hh * ww, c) if layout == "pixel" else x.reshape(b, c, hh * ww)
    y = _layer_norm(tokens, p["encoder.layers.0.norm1.weight"], p["encoder.layers.0.norm1.bias"])
    weights = torch.softmax(torch.einsum("bid,bjd->bij", y, y) / math.sqrt(y.shape[-1]), dim=-1)
    tokens = tokens + torch.einsum("bij,bjd->bid", weights, y)
    out = _layer_norm(tokens, p["encoder.norm.weight"], p["encoder.norm.bias"])
    if layout == "pixel":
        return torch.einsum("bhwc->bchw", out.reshape(b, hh, ww, c))
    return out.reshape(b, c, hh, ww)


def _hand_ft(ft, h, temb, groups):
    p = {k: v.double() for k, v in ft.state_dict().items()}
    h, temb = h.double(), temb.double()
    x = h + (temb * torch.sigmoid(temb) @ p["temb_proj.weight"].T + p["temb_proj.bias"])[:, :, None, None]
    b, c, hh, ww = x.shape
    g = x.reshape(b, groups, -1)
    x = ((g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + 1e-6))
    x = x.reshape(b, c, hh, ww) * p["norm.weight"][None, :, None, None] + p["norm.bias"][None, :, None, None]
    for stack, layout in zip(ft.stacks, ft.layouts, strict=True):
        x = _hand_stack(x, stack, layout)
    return x


@pytest.mark.parametrize("name", VARIANTS)
def test_token_layouts_match_a_hand_written_one_head_attention(name):
    # 6 channels, 3×3 positions: the layouts differ in sequence length (9 vs 6) and token size (6 vs 9)
    ft = M.build_ft(name, h_channels=6, temb_dim=5, h_size=3, seed=2, heads=1, depth=1, dim_feedforward=4,
                    norm_groups=3).eval()
    _make_attention_transparent(ft)
    torch.manual_seed(3)
    h, temb = torch.randn(2, 6, 3, 3), torch.randn(2, 5)
    assert torch.allclose(ft(h, temb).double(), _hand_ft(ft, h, temb, 3), atol=1e-5)


def test_the_two_layouts_attend_over_different_axes():
    ft = M.build_ft("transformer-pixel-channel", h_channels=6, temb_dim=5, h_size=3, seed=2, heads=1, depth=1,
                    dim_feedforward=4, norm_groups=3).eval()
    _make_attention_transparent(ft)
    x = torch.randn(2, 6, 3, 3)
    pixel, channel = ft.stacks
    with torch.no_grad():
        # pixel attention treats positions as a set: permuting positions permutes the output the same way
        perm = torch.randperm(9)
        moved = pixel(x.flatten(2)[:, :, perm].reshape(2, 6, 3, 3)).flatten(2)
        assert torch.allclose(moved, pixel(x).flatten(2)[:, :, perm], atol=1e-5)
        # channel attention treats channels as a set, and does not commute with a permutation of positions
        chan = torch.randperm(6)
        assert torch.allclose(channel(x[:, chan]), channel(x)[:, chan], atol=1e-5)
        moved = channel(x.flatten(2)[:, :, perm].reshape(2, 6, 3, 3)).flatten(2)
        assert not torch.allclose(moved, channel(x).flatten(2)[:, :, perm], atol=1e-3)


# --- parameter counts in closed form -----------------------------------------------------------------------------

def _encoder_layer_params(d, ff):
    return (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d


@pytest.mark.parametrize("conditioning", ["add", "adagn"])
@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_counts_on_the_real_ddpm_h_follow_the_closed_form(name, conditioning):
    c, hw, temb_dim, ff, depth = 512, 64, 512, 2048, 2
    ft = M.build_ft(name, h_channels=c, temb_dim=temb_dim, h_size=8, time_conditioning=conditioning)
    cond = (temb_dim * 2 * c + 2 * c) if conditioning == "adagn" else (temb_dim * c + c) + 2 * c
    stacks = sum(depth * _encoder_layer_params(d, ff) + 2 * d
                 for d in ({"pixel": c, "channel": hw}[lay] for lay in M.TRANSFORMER_VARIANTS[name]))
    assert sum(p.numel() for p in ft.parameters()) == cond + stacks


# --- dropout, training, saving -------------------------------------------------------------------------------------

def test_dropout_is_seeded_and_leaves_the_global_rng_alone():
    a, b = (_tiny("transformer-pixel-channel", dropout=0.3, dropout_seed=7).train() for _ in range(2))
    h, temb = torch.randn(2, 8, 4, 4), torch.randn(2, 6)
    state = torch.get_rng_state()
    first = [a(h, temb) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first[0], b(h, temb)) and torch.equal(first[1], b(h, temb))  # same stream, call by call
    assert not torch.equal(first[0], first[1])  # dropout is active and draws a new mask per call
    other = _tiny("transformer-pixel-channel", dropout=0.3, dropout_seed=8).train()
    assert not torch.equal(other(h, temb), first[0])
    a.eval()
    assert torch.equal(a(h, temb), a(h, temb))


T0, T_EDIT, STEPS = 299, 100, 6


@pytest.fixture(scope="module")
def micro_setup():
    return smiling_training_setup(micro_model(), 2, 16, steps=STEPS, t0=T0, t_edit=T_EDIT)


def _micro_ft(model, name, **options):
    u = model.unet
    return M.build_ft(name, h_channels=u.h_channels, temb_dim=u.temb_dim, h_size=u.h_size, seed=0, heads=2,
                      dim_feedforward=64, norm_groups=8, **options)


@pytest.mark.parametrize(("name", "conditioning"), [("transformer-pixel-channel", "adagn"),
                                                    ("transformer-channel-pixel", "multiply")])
def test_adam_training_on_a_micro_unet_gives_every_parameter_a_finite_gradient(micro_setup, name, conditioning):
    model, loss, images, inv = micro_setup
    ft = _micro_ft(model, name, time_conditioning=conditioning, dropout=0.1)
    initial = {k: v.clone() for k, v in ft.state_dict().items()}
    config = M.TrainConfig(t_edit=T_EDIT, n_train_steps=STEPS, t0=T0, optimizer="adam", lr=1e-3)
    before = M.evaluate_losses(model, ft, loss, images, inv, config)
    result = M.train_ft(model, ft, loss, images, inv, config, progress=False)
    after = M.evaluate_losses(model, ft, loss, images, inv, config)
    for name_, p in ft.named_parameters():  # the gradient of the last step is still there
        assert p.grad is not None and torch.isfinite(p.grad).all(), name_
        assert not torch.equal(p.detach(), initial[name_]), f"{name_} was not updated"
    losses = [s.loss for s in result.history.steps]
    assert np.isfinite(losses).all()
    assert np.mean([r["total"] for r in after.rows()]) < np.mean([r["total"] for r in before.rows()])


def test_default_learning_rate_follows_the_optimiser():
    assert M.TrainConfig(t_edit=1).lr == 0.5 and M.TrainConfig(t_edit=1).optimizer == "sgd"
    assert M.TrainConfig(t_edit=1, optimizer="adam").lr == M.trainer.DEFAULT_LR["adam"]
    assert M.TrainConfig(t_edit=1, optimizer="adam", lr=0.01).lr == 0.01
    assert M.TrainConfig(t_edit=1, optimizer="adam").model_dump()["lr"] == M.trainer.DEFAULT_LR["adam"]


@pytest.mark.parametrize("name", VARIANTS)
def test_safetensors_round_trip_is_exact_and_loading_is_strict(tmp_path, name):
    ft = _tiny(name, seed=3, time_conditioning="adagn").eval()
    save_file(ft.state_dict(), tmp_path / "ft.safetensors")
    state = load_file(tmp_path / "ft.safetensors")
    clone = _tiny(name, seed=4, time_conditioning="adagn").eval()
    clone.load_state_dict(state, strict=True)
    h, temb = torch.randn(2, 8, 4, 4), torch.randn(2, 6)
    assert torch.equal(clone(h, temb), ft(h, temb))
    with pytest.raises(RuntimeError, match="Missing key|Unexpected key"):
        _tiny(name, time_conditioning="add").load_state_dict(state, strict=True)
