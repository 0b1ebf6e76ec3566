"""The authors' ResBlock-style f_t for iDDPM / ADM U-Nets (`ResDeltaBlock`, registry name `resblock`)."""

import pytest
import torch
import torch.nn.functional as F
from models_helpers import one_thread  # noqa: F401

import models as M
from benchmark.core.errors import BenchError, DataError
from models.adm import adm_unet_config, build_adm_unet


def _by_formula(state, h, temb):
    """GN(32, eps 1e-5) → SiLU → conv1×1, + Linear(SiLU(temb)), GN → SiLU → conv1×1, from the raw parameters."""
    x = F.group_norm(h, 32, state["in_layers.0.weight"], state["in_layers.0.bias"], eps=1e-5)
    x = F.conv2d(F.silu(x), state["in_layers.2.weight"], state["in_layers.2.bias"])
    if temb is not None:
        x = x + F.linear(F.silu(temb), state["emb_layers.1.weight"], state["emb_layers.1.bias"])[:, :, None, None]
    x = F.silu(F.group_norm(x, 32, state["out_layers.0.weight"], state["out_layers.0.bias"], eps=1e-5))
    return F.conv2d(x, state["out_layers.3.weight"], state["out_layers.3.bias"])


def _randomised(block, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return block


def test_forward_is_the_authors_formula_with_and_without_time():
    block = _randomised(M.build_ft("resblock", h_channels=64, temb_dim=128, h_size=8, seed=0)).eval()
    h, temb = torch.randn(2, 64, 8, 8), torch.randn(2, 128)
    state = block.state_dict()
    assert sorted(state) == sorted(f"{m}.{p}" for m in ("in_layers.0", "in_layers.2", "emb_layers.1",
                                                           "out_layers.0", "out_layers.3") for p in ("weight", "bias"))
    with torch.no_grad():
        assert torch.allclose(block(h, temb), _by_formula(state, h, temb), atol=1e-5)
        assert torch.allclose(block(h, None), _by_formula(state, h, None), atol=1e-5)
        no_time = M.ResDeltaBlock(64, 128, use_temb=False)
        no_time.load_state_dict(state)
        assert torch.equal(no_time(h, temb), block(h, None))
    assert block(h, temb).abs().max() > 1e-3  # default init is not zero: Δh ≠ 0 before training, as the authors'
    with pytest.raises(BenchError, match="norm_groups"):
        M.build_ft("resblock", h_channels=48, temb_dim=128, h_size=8)


def test_released_layout_loads_safely_and_strictly(tmp_path):
    block = _randomised(M.ResDeltaBlock(64, 128), seed=1).eval()
    path = tmp_path / "dog_happy_LC_dog_t999_ninv40_ngen40_0.pth"
    torch.save({"0": block.state_dict(), "optimizer": {"state": {}, "param_groups": []},
                "scheduler": {"step_size": 20, "gamma": 0.9}}, path)
    loaded = M.load_official_ft(path)
    assert isinstance(loaded, M.ResDeltaBlock) and not loaded.training
    h, temb = torch.randn(1, 64, 8, 8), torch.randn(1, 128)
    with torch.no_grad():
        assert torch.equal(loaded(h, temb), block(h, temb))
    broken = {k: v for k, v in block.state_dict().items() if not k.startswith("out_layers.3")}
    torch.save({"0": broken}, path)
    with pytest.raises(DataError, match="missing"):
        M.load_official_ft(path)


def test_it_edits_through_an_adm_unet():
    arch = {"image_size": 32, "num_channels": 32, "num_res_blocks": 1, "channel_mult": (1, 1, 2),
            "attention_resolutions": (16,), "num_head_channels": 16, "learn_sigma": True, "resblock_updown": True,
            "use_scale_shift_norm": True}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_adm_unet(adm_unet_config(**arch)).eval()
    model = M.DiffusionModel(M.HSpaceUNet(unet), M.linear_alphas_cumprod(), 32)
    ft = M.build_ft("resblock", h_channels=model.unet.h_channels, temb_dim=model.unet.temb_dim,
                    h_size=model.unet.h_size, seed=0)
    x_T = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    schedule = M.EditSchedule(n_steps=4, t_edit=0)
    plain = M.generate(model, x_T, (), schedule)
    zero = M.generate(model, x_T, [(lambda h, temb: torch.zeros_like(h), 1.0)], schedule)
    edited = M.generate(model, x_T, [(ft, 1.0)], schedule)
    assert plain.latents.shape == (1, 3, 32, 32)  # ε is the first half of the 6 learned-σ channels
    assert torch.equal(zero.latents, plain.latents)
    assert (edited.latents - plain.latents).abs().max() > 1e-3
