"""Step units and their FLOP counts, checked against independent counts: diffusers' own UNet forward, a closed
form for the ViT image encoder, and the structure of the loops (the official loop = the project loop + one
reference forward)."""

import pytest
import torch
from models_helpers import micro_model, one_thread, tiny_clip, tiny_ft  # noqa: F401
from torch.utils.flop_counter import FlopCounterMode

import models as M
from models import units as U


def _vit_forward_flops(tokens: int, width: int, layers: int, patch: int, embed: int) -> int:
    """A ViT image encoder's matmul FLOPs (2 per multiply-add): per layer the qkv, output and MLP (4× width)
    projections, 24·N·d², and the two attention products, 4·N²·d; plus the patch embedding and the projection."""
    per_layer = 24 * tokens * width**2 + 4 * tokens**2 * width
    return layers * per_layer + 2 * 3 * patch**2 * width * (tokens - 1) + 2 * width * embed


def _vit_forward_backward_flops(tokens, width, layers, patch, embed, *, fused_attention: bool) -> int:
    """With frozen weights the backward computes input gradients only: each projection once more. Both attention
    products have two activation inputs (Q and K, A and V), so their backward is four products, five in the fused
    kernels (which recompute the scores): 8 or 10 · N²·d per layer instead of the forward's 4."""
    attention_backward = (10 if fused_attention else 8) * tokens**2 * width
    projections = _vit_forward_flops(tokens, width, layers, patch, embed) - layers * 4 * tokens**2 * width
    return _vit_forward_flops(tokens, width, layers, patch, embed) + projections + layers * attention_backward


@pytest.fixture(scope="module")
def parts():
    model = micro_model()
    clip, tokenizer = tiny_clip()
    return model, M.DirectionalClipLoss(clip, tokenizer, "face", "smiling face")


def test_encode_plus_decode_is_diffusers_own_forward(parts):
    model, loss = parts
    units = U.component_units(model, loss)
    x = torch.randn(1, *model.latent_shape)
    with FlopCounterMode(display=False, custom_mapping=U.cpu_attention_formulas()) as counter, torch.no_grad():
        model.unet.unet(x, 499)
    forward = counter.get_total_flops() / 1e9
    assert U.count_gflops(units["encode"]) + U.count_gflops(units["decode"]) == pytest.approx(forward, rel=1e-9)
    assert U.count_gflops(U.invert_step(model, 3)) == pytest.approx(forward, rel=1e-9)  # per image
    # the decoder's input gradient costs one more forward (frozen weights: no weight gradients, which would make
    # it ~3×), plus the attention backward's extra products (this micro UNet attends at 8×8 with 32 channels)
    decode = U.count_gflops(units["decode"])
    assert 2 * decode < U.count_gflops(units["decode_input_grad"]) < 2.1 * decode


def test_clip_image_encoder_matches_the_closed_form(parts):
    model, loss = parts
    cfg = M.TINY_CLIP_CONFIG["vision_cfg"]
    tokens = (cfg["image_size"] // cfg["patch_size"]) ** 2 + 1
    shape = (tokens, cfg["width"], cfg["layers"], cfg["patch_size"], M.TINY_CLIP_CONFIG["embed_dim"])
    measured = U.count_gflops(U.component_units(model, loss)["clip_image_fwd_bwd"]) * 1e9
    # exactly the closed form (the CPU runs the fused attention kernel)
    assert measured == pytest.approx(_vit_forward_backward_flops(*shape, fused_attention=True), rel=1e-12)


def test_the_loops_are_made_of_their_parts(parts):
    model, loss = parts
    ft = tiny_ft(model)
    comp = {k: U.count_gflops(u) for k, u in U.component_units(model, loss).items()}
    project = U.count_gflops(U.train_step(model, ft, loss, 2))
    forward = U.count_gflops(U.invert_step(model))
    ft_cost = project - (comp["encode"] + comp["decode"] + comp["decode_input_grad"] + comp["clip_image_fwd_bwd"])
    assert 0 < ft_cost < 0.05 * project  # the f_t is a small share of a step
    assert U.count_gflops(U.train_step_official(model, ft, loss)) == pytest.approx(project + forward, rel=1e-9)
    fts = [tiny_ft(model, seed=i) for i in range(3)]
    batched = U.count_gflops(U.train_step_batched(model, fts, [loss] * 3, 2))
    assert batched == pytest.approx(project + forward / 3, rel=1e-9)  # one reference forward per image for K=3
    edit = U.count_gflops(U.edit_step(model, ft))
    assert edit == pytest.approx(comp["encode"] + 2 * comp["decode"], rel=0.05)


def test_units_run_on_meta_tensors_with_the_same_counts(parts):
    model, loss = parts
    real = U.count_gflops(U.edit_step(model, tiny_ft(model)))
    meta_model = M.random_diffusion_model(_micro_config(), seed=0)
    meta_model.unet.to("meta")
    assert U.count_gflops(U.edit_step(meta_model, tiny_ft(meta_model).to("meta"))) == pytest.approx(real, rel=1e-9)
    timing = U.time_unit(U.edit_step(model, tiny_ft(model)), repeats=2)
    assert timing["seconds_per_call"] > 0 and timing["repeats"] == 2


def _micro_config():
    from models_helpers import MICRO_UNET_CONFIG

    return MICRO_UNET_CONFIG


@pytest.mark.slow
def test_paper_table_step_costs_at_full_size():
    """The CelebA-HQ DDPM (113.7 M parameters, 256²) and ViT-B/16 on the meta device (about 45 s here)."""
    model, loss, ft = U.meta_celebahq()
    assert sum(p.numel() for p in model.unet.parameters()) == pytest.approx(113.7e6, rel=1e-3)
    comp = {k: U.count_gflops(u) for k, u in U.component_units(model, loss).items()}
    assert comp["encode"] == pytest.approx(135.2, rel=5e-3)
    assert comp["decode"] == pytest.approx(361.9, rel=5e-3)
    assert comp["decode_input_grad"] == pytest.approx(724.1, rel=5e-3)
    # 71.7 GFLOP; the meta device runs attention as plain matmuls
    clip = _vit_forward_backward_flops(197, 768, 12, 16, 512, fused_attention=False)
    assert comp["clip_image_fwd_bwd"] * 1e9 == pytest.approx(clip, rel=1e-12)
    step = U.count_gflops(U.train_step(model, ft, loss))
    assert step == pytest.approx(sum(comp.values()), rel=1e-3)  # ≈ 1,293 GFLOP per training image-step


def test_suite_budget_follows_the_loop_structure():
    from models.flop_budget import StepCosts, suite_pflops

    costs = StepCosts(encode=1.0, decode=2.0, decode_input_grad=4.0, clip_image_fwd_bwd=0.5)
    one = {"smiling": 513}
    steps = len(M.training_steps(40, 513))  # 19
    kw = {"n_train": 10, "n_test": 0, "n_scales": 2}
    cached, official = suite_pflops(costs, one, loop="cached", **kw), suite_pflops(costs, one, loop="official", **kw)
    batched = suite_pflops(costs, one, loop="batched", **kw)
    assert official["train"] * 1e6 == pytest.approx(10 * steps * (costs.train + costs.forward))
    assert cached["train"] * 1e6 == pytest.approx(10 * steps * costs.train)
    # one attribute on the fly = the official loop minus the reference forward shared with x_T at t0
    assert batched["train"] * 1e6 == pytest.approx(official["train"] * 1e6 - 10 * costs.forward)
    assert cached["invert"] - batched["invert"] == pytest.approx(10 * 40 * costs.forward / 1e6)
    two = suite_pflops(costs, {"a": 513, "b": 513}, loop="batched", **kw)
    assert two["train"] * 1e6 == pytest.approx(2 * batched["train"] * 1e6 - 10 * steps * costs.forward)
