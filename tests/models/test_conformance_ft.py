"""Conformance of every registered f_t (`models.FT_REGISTRY`): the contract the trainer, the editor and the stage
cache rely on, checked on a tiny h for each entry, so a newly registered f_t is held to it without a test of its own.

The contract (models/ft.py, docs/architecture.md): `build_ft(name, *, h_channels, temb_dim, h_size, seed)` builds it
with its default options; it is called as `ft(h, temb) -> Δh` with Δh shaped like h; a seed fixes its weights (and
leaves the global RNG alone); it has trainable parameters that the loss reaches; and its state dict goes through
safetensors (what the stage cache stores) into a fresh f_t that then computes the same Δh.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import models as M

# The smallest h every f_t's defaults must fit: 32 channels (the authors' GroupNorm(32)), 4×4, temb of 16.
H_CHANNELS, TEMB_DIM, H_SIZE = 32, 16, 4
FT_NAMES = M.FT_REGISTRY.names()


def build(name: str, seed: int = 0) -> torch.nn.Module:
    return M.build_ft(name, h_channels=H_CHANNELS, temb_dim=TEMB_DIM, h_size=H_SIZE, seed=seed)


def h_and_temb(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, H_CHANNELS, H_SIZE, H_SIZE, generator=g), torch.randn(2, TEMB_DIM, generator=g)


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_registry_holds_the_authors_block_and_the_variants():
    assert {"conv", "resblock", "global", "transformer-pixel", "transformer-channel"} <= set(FT_NAMES)


@pytest.mark.parametrize("name", FT_NAMES)
def test_maps_h_and_temb_to_a_delta_h_of_h_shape(name):
    ft = build(name)
    assert isinstance(ft, torch.nn.Module)
    h, temb = h_and_temb()
    with torch.no_grad():
        delta = ft(h, temb)
    assert delta.shape == h.shape and delta.dtype == h.dtype
    assert torch.isfinite(delta).all() and delta.abs().max() > 0  # non-zero at init, as the released f_t


@pytest.mark.parametrize("name", FT_NAMES)
def test_a_seed_fixes_the_weights_and_leaves_the_global_rng_alone(name):
    before = torch.random.get_rng_state()
    a, b, other = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert same_state(a, b) and not same_state(a, other)
    h, temb = h_and_temb()
    with torch.no_grad():
        assert torch.equal(a(h, temb), b(h, temb))
        assert torch.equal(a(h, temb), a(h, temb))  # no hidden state between calls


@pytest.mark.parametrize("name", FT_NAMES)
def test_has_trainable_parameters_that_the_loss_reaches(name):
    ft = build(name).train()
    trainable = [(n, p) for n, p in ft.named_parameters() if p.requires_grad]
    assert trainable, f"{name} has no trainable parameters"
    h, temb = h_and_temb()
    ft(h, temb).square().mean().backward()
    unreached = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not unreached, f"{name}: no gradient reaches {unreached}"
    assert any(p.grad.abs().max() > 0 for _, p in trainable)


@pytest.mark.parametrize("name", FT_NAMES)
def test_state_dict_round_trips_through_safetensors(name, tmp_path):
    trained = build(name, seed=0)
    path = tmp_path / "ft.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in trained.state_dict().items()}, str(path))
    fresh = build(name, seed=1)
    assert not same_state(trained, fresh)
    fresh.load_state_dict(load_file(str(path)), strict=True)
    assert same_state(trained, fresh)
    h, temb = h_and_temb()
    with torch.no_grad():
        assert torch.equal(fresh.eval()(h, temb), trained.eval()(h, temb))
