"""f_t networks: the DeltaBlock against a hand computation, the registry, and the authors' released checkpoints."""

import math

import pytest
import torch
from models_helpers import one_thread  # noqa: F401

import models as M
from benchmark.core.errors import BenchError, DataError, DigestMismatchError, UnknownNameError

PAPER_ATTRIBUTES = ["smiling", "sad", "tanned", "pixar", "neanderthal"]


def _checkpoint(fixtures, attribute):
    return fixtures / "asyrp_official" / "checkpoints" / f"{attribute}_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"


def _hand_delta_block(block, h, temb, groups):
    """conv1×1 → + Linear(SiLU(temb)) → GroupNorm → SiLU → conv1×1, written out in float64."""
    p = {k: v.double() for k, v in block.state_dict().items()}
    h, temb = h.double(), temb.double()
    x = torch.einsum("oc,bchw->bohw", p["conv1.weight"][:, :, 0, 0], h) + p["conv1.bias"][None, :, None, None]
    silu_t = temb * torch.sigmoid(temb)
    x = x + (silu_t @ p["temb_proj.weight"].T + p["temb_proj.bias"])[:, :, None, None]
    b, c, hh, ww = x.shape
    g = x.reshape(b, groups, c // groups, hh, ww)
    mean = g.mean(dim=(2, 3, 4), keepdim=True)
    var = ((g - mean) ** 2).mean(dim=(2, 3, 4), keepdim=True)
    x = ((g - mean) / torch.sqrt(var + 1e-6)).reshape(b, c, hh, ww)
    x = x * p["norm2.weight"][None, :, None, None] + p["norm2.bias"][None, :, None, None]
    x = x * torch.sigmoid(x)
    return torch.einsum("oc,bchw->bohw", p["conv2.weight"][:, :, 0, 0], x) + p["conv2.bias"][None, :, None, None]


@pytest.mark.parametrize(("channels", "groups", "temb_dim"), [(8, 4, 6), (64, 32, 16)])
def test_delta_block_matches_a_hand_computation(channels, groups, temb_dim):
    torch.manual_seed(3)
    block = M.DeltaBlock(channels, temb_dim, norm_groups=groups)
    with torch.no_grad():  # non-trivial affine GroupNorm parameters
        block.norm2.weight.uniform_(0.5, 1.5)
        block.norm2.bias.uniform_(-0.5, 0.5)
    h, temb = torch.randn(2, channels, 3, 3), torch.randn(2, temb_dim)
    assert torch.allclose(block(h, temb).double(), _hand_delta_block(block, h, temb, groups), atol=1e-5)
    no_temb = M.DeltaBlock(channels, temb_dim, norm_groups=groups, use_temb=False)
    no_temb.load_state_dict(block.state_dict())
    assert torch.equal(no_temb(h, temb), no_temb(h, torch.zeros_like(temb)))


def test_default_init_is_pytorch_default_not_zero():
    torch.manual_seed(0)
    block = M.build_ft("conv", h_channels=512, temb_dim=512, h_size=8)
    expected_std = 1 / math.sqrt(3 * 512)  # kaiming-uniform(a=√5) bound 1/sqrt(fan_in), std = bound/√3
    for name in ("conv1.weight", "conv2.weight"):
        assert abs(float(block.state_dict()[name].std()) - expected_std) < 0.02 * expected_std
    out = block(torch.randn(1, 512, 8, 8), torch.randn(1, 512))
    assert out.shape == (1, 512, 8, 8) and out.abs().mean() > 1e-3


def test_registry_is_open_and_explains_typos():
    assert {"conv", "global"} <= set(M.FT_REGISTRY.names())
    with pytest.raises(UnknownNameError, match="Did you mean: conv"):
        M.build_ft("cnv", h_channels=8, temb_dim=8, h_size=2)
    with pytest.raises(BenchError, match="norm_groups=24"):
        M.build_ft("conv", h_channels=48, temb_dim=8, h_size=2)
    with pytest.raises(BenchError, match="bad options"):
        M.build_ft("conv", h_channels=8, temb_dim=8, h_size=2, heads=4)

    @M.FT_REGISTRY.register("test-scaled-h", replace=True)
    def _scaled(*, h_channels, temb_dim, h_size, factor=2.0):
        class Scaled(torch.nn.Module):
            def forward(self, h, temb):
                return factor * h

        return Scaled()

    ft = M.build_ft("test-scaled-h", h_channels=8, temb_dim=8, h_size=2, factor=3.0)
    assert torch.equal(ft(torch.ones(1, 8, 2, 2), None), torch.full((1, 8, 2, 2), 3.0))


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(42)
    before = torch.rand(1)
    torch.manual_seed(42)
    a = M.build_ft("conv", h_channels=32, temb_dim=16, h_size=4, seed=5)
    after = torch.rand(1)
    b = M.build_ft("conv", h_channels=32, temb_dim=16, h_size=4, seed=5)
    assert torch.equal(before, after)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_global_delta_is_shared_by_images_and_timesteps():
    ft = M.build_ft("global", h_channels=16, temb_dim=8, h_size=4, seed=0)
    h = torch.randn(3, 16, 4, 4)
    d1, d2 = ft(h, torch.randn(3, 8)), ft(h * 5, torch.randn(3, 8))
    assert d1.shape == h.shape and torch.equal(d1, d2) and torch.equal(d1[0], d1[2])
    assert 0.1 < float(ft.delta.detach().std()) < 0.3  # the authors' randn · 0.2 init
    assert M.build_ft("global", h_channels=16, temb_dim=8, h_size=4, init_std=0.0).delta.abs().max() == 0


@pytest.mark.parametrize("attribute", PAPER_ATTRIBUTES)
def test_official_checkpoints_load_strictly_and_safely(fixtures, attribute):
    path = _checkpoint(fixtures, attribute)
    block = M.load_official_ft(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)["0"]
    state = block.state_dict()
    assert set(state) == set(raw)
    assert all(torch.equal(state[k], raw[k]) for k in raw)
    assert not block.training
    out = block(torch.randn(1, 512, 8, 8), torch.randn(1, 512))
    assert out.shape == (1, 512, 8, 8)
    # asyrp-reference.md §3: all CelebA checkpoints share one init, so conv1.bias has mean −0.00111 in each
    assert float(raw["conv1.bias"].mean()) == pytest.approx(-0.00111, abs=5e-6)


def test_official_loader_checks_digests_and_refuses_unsafe_or_foreign_files(fixtures, tmp_path):
    with pytest.raises(DigestMismatchError):
        M.load_official_ft(_checkpoint(fixtures, "smiling"), sha256="0" * 64)
    with pytest.raises(DataError, match="not found"):
        M.load_official_ft(tmp_path / "missing.pth")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"0": _NotATensor()}, unsafe)
    with pytest.raises(BenchError, match="safely"):
        M.load_official_ft(unsafe)
    partial = tmp_path / "partial.pth"
    state = M.DeltaBlock(32, 16).state_dict()
    state.pop("norm2.bias")
    torch.save({"0": state}, partial)
    with pytest.raises(DataError, match="missing"):
        M.load_official_ft(partial)


class _NotATensor:
    """Pickled by reference to this module: `weights_only=True` must refuse it."""
