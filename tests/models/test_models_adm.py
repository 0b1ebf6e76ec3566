"""iDDPM / ADM U-Nets converted to diffusers, against guided-diffusion's own `UNetModel` as the reference.

The reference is openai's guided-diffusion code as packaged on PyPI (`guided-diffusion-sdk==1.0.0`, imported as
`guided_diffusion`; the authors' models/improved_ddpm and models/guided_diffusion U-Nets are copies of it with
h-space hooks). It is a test-only dependency: `pip install --no-deps guided-diffusion-sdk==1.0.0` (its unet and
script_util need only torch and numpy). Random weights everywhere, including the layers guided-diffusion zero-inits,
so that every path carries signal.
"""

import pytest
import torch
from models_helpers import one_thread  # noqa: F401

import models as M
from benchmark.core.errors import BenchError, DataError
from models.adm import ADM_ARCHS, adm_unet_config, build_adm_unet, convert_adm_state_dict, from_adm_checkpoint

gd = pytest.importorskip("guided_diffusion.script_util",
                         reason="needs guided-diffusion as the reference: pip install --no-deps "
                                "guided-diffusion-sdk==1.0.0")

SMALL = {"image_size": 32, "num_channels": 32, "num_res_blocks": 1, "channel_mult": (1, 1, 2),
         "attention_resolutions": (16,), "num_head_channels": 16, "learn_sigma": True, "resblock_updown": True,
         "use_scale_shift_norm": True, "use_new_attention_order": False, "dropout": 0.0}
VARIANTS = {
    "authors-like": {},
    "two-res-blocks": {"num_res_blocks": 2},
    "conv-resample": {"resblock_updown": False},
    "additive-temb": {"use_scale_shift_norm": False, "learn_sigma": False},
    "new-attention-order": {"use_new_attention_order": True},
    "head-count": {"num_head_channels": -1, "num_heads": 2, "attention_resolutions": (8,)},
}


def _reference(arch, seed=0):
    args = dict(arch)
    args["channel_mult"] = ",".join(str(m) for m in args["channel_mult"])
    args["attention_resolutions"] = ",".join(str(r) for r in args["attention_resolutions"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = gd.create_model(**args).eval()
        for module in model.modules():  # undo zero_module, and give the norms a non-trivial affine
            if isinstance(module, torch.nn.GroupNorm):
                torch.nn.init.normal_(module.weight, 1.0, 0.2)
                torch.nn.init.normal_(module.bias, 0.0, 0.2)
            elif hasattr(module, "reset_parameters") and not list(module.children()):
                module.reset_parameters()
    return model


def _inputs(arch, n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    size = arch["image_size"]
    return torch.randn(n, 3, size, size, generator=g), torch.tensor([3, 871][:n])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_converted_unet_matches_guided_diffusion(variant):
    arch = {**SMALL, **VARIANTS[variant]}
    ref = _reference(arch)
    unet = from_adm_checkpoint(ref.state_dict(), **arch)
    x, t = _inputs(arch)
    with torch.no_grad():
        expected = ref(x, t)
        got = unet(x, t).sample
    assert got.shape == expected.shape == (2, 6 if arch["learn_sigma"] else 3, 32, 32)
    scale = expected.abs().max()
    assert scale > 0.1  # the random weights carry signal
    assert (got - expected).abs().max() <= 1e-5 * scale


def test_h_space_is_the_authors_middle_h_and_eps_is_the_first_half():
    arch = SMALL
    ref = _reference(arch, seed=2)
    hs = M.HSpaceUNet(from_adm_checkpoint(ref.state_dict(), **arch))
    seen = {}
    ref.middle_block.register_forward_hook(lambda module, args, out: seen.update(h=out))
    x, t = _inputs(arch, seed=3)
    with torch.no_grad():
        out = ref(x, t)
        enc = hs.encode(x, t)
        eps = hs.decode(enc.h, enc.skips, enc.temb)
    assert hs.learned_sigma and eps.shape == (2, 3, 32, 32)
    assert (enc.h - seen["h"]).abs().max() <= 1e-5 * seen["h"].abs().max()
    # the authors' split: ε, logvar = torch.split(out, 3, dim=1)
    assert (eps - out[:, :3]).abs().max() <= 1e-5 * out.abs().max()
    assert (hs.h_channels, hs.h_size, hs.temb_dim) == (64, 8, 128)


def test_legacy_attention_order_matters():
    """A plain chunk(3) of the legacy qkv (right only for the new order) gives a different, wrong model."""
    arch = SMALL
    ref = _reference(arch, seed=4)
    wrong = adm_unet_config(**{**arch, "use_new_attention_order": True})  # mis-declared order, same shapes
    unet = build_adm_unet(wrong)
    unet.load_state_dict(convert_adm_state_dict(ref.state_dict(), wrong))
    x, t = _inputs(arch, seed=5)
    with torch.no_grad():
        assert (unet(x, t).sample - ref(x, t)).abs().max() > 1e-3


def test_mismatched_architectures_are_refused():
    ref = _reference(SMALL)
    with pytest.raises(DataError, match="checkpoint"):
        from_adm_checkpoint(ref.state_dict(), **{**SMALL, "num_res_blocks": 2})
    with pytest.raises(DataError, match="no place"):
        from_adm_checkpoint({**ref.state_dict(), "label_emb.weight": torch.zeros(3, 128)}, **SMALL)
    with pytest.raises(BenchError, match="class-conditional"):
        adm_unet_config(**SMALL, class_cond=True)
    with pytest.raises(BenchError, match="head width"):
        adm_unet_config(**{**SMALL, "num_head_channels": -1, "num_heads": 2, "attention_resolutions": (16, 8)})


def test_authors_architecture_shapes():
    """AFHQ_DICT / METFACE_DICT at full size, on the meta device: h is 512×8×8 and temb 512, like CelebA-HQ."""
    for arch in ADM_ARCHS.values():
        with torch.device("meta"):
            hs = M.HSpaceUNet(build_adm_unet(adm_unet_config(**arch)))
            h = hs.encode(torch.empty(1, 3, 256, 256), 999).h
        assert (hs.h_channels, hs.h_size, hs.temb_dim) == (512, 8, 512) and tuple(h.shape) == (1, 512, 8, 8)
        assert hs.learned_sigma


@pytest.mark.slow
def test_full_size_afhq_architecture_matches_guided_diffusion():
    arch = ADM_ARCHS["afhq-dog-iddpm"]
    ref = _reference(arch, seed=6)
    unet = from_adm_checkpoint(ref.state_dict(), **arch)
    x, t = _inputs(arch, n=1, seed=7)
    with torch.no_grad():
        expected = ref(x, t)
        got = unet(x, t).sample
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
