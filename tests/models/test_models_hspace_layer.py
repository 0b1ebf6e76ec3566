"""h taken at other layers than the mid block (`HSpaceUNet(layer="up{k}")`): the wrapper still reproduces
`UNet2DModel.forward`, Δh = 0 is still plain DDIM, and Δh lands exactly where a forward hook on that block puts it."""

import pytest
import torch
from models_helpers import MICRO_UNET_CONFIG, one_thread  # noqa: F401

import models as M
from benchmark.core.errors import BenchError
from models.hspace import hspace_layers

LATENT_LIKE = {  # an LDM-style UNet: 4-channel 16² latents, two attention levels, 2 layers per block
    "sample_size": 16, "in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64, 64],
    "layers_per_block": 2, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 16,
    "attention_head_dim": 32,
}
CONFIGS = {"tiny": None, "micro": MICRO_UNET_CONFIG, "latent-like": LATENT_LIKE}


def _case_list():
    for config_id, config in CONFIGS.items():
        for layer in hspace_layers(M.random_unet(config, seed=0)):
            yield pytest.param(config, layer, id=f"{config_id}-{layer}")


def _cases():
    return list(_case_list())


def _block(unet, layer):
    return unet.mid_block if layer == "mid" else unet.up_blocks[int(layer[2:])]


def _hooked_forward(unet, layer, x, t, delta):
    """UNet2DModel.forward (diffusers' own code path) with `delta` added to the output of the layer's block."""
    handle = _block(unet, layer).register_forward_hook(lambda module, args, out: out + delta)
    try:
        return unet(x, t).sample
    finally:
        handle.remove()


@pytest.mark.parametrize(("config", "layer"), _cases())
def test_every_layer_decodes_to_unet_forward_and_puts_delta_h_at_that_block(config, layer):
    unet = M.random_unet(config, seed=1)
    hs = M.HSpaceUNet(unet, layer=layer)
    g = torch.Generator().manual_seed(3)
    size = unet.config.sample_size
    x = torch.randn(2, unet.config.in_channels, size, size, generator=g)
    t = torch.tensor([40, 800])
    with torch.no_grad():
        h, skips, temb = hs.encode(x, t)
        assert h.shape == (2, hs.h_channels, hs.h_size, hs.h_size)
        assert (hs(x, t) - unet(x, t).sample).abs().max() <= 1e-5
        delta = 0.5 * torch.randn(h.shape, generator=g)
        edited = hs.decode(h + delta, skips, temb)
        assert (edited - _hooked_forward(unet, layer, x, t, delta)).abs().max() <= 1e-5
        assert (edited - unet(x, t).sample).abs().max() > 1e-3  # the Δh really reached ε
    consumed = sum(len(b.resnets) for b in unet.up_blocks[:hs.up_split])
    total = 1 + sum(len(b.resnets) + (b.downsamplers is not None) for b in unet.down_blocks)
    assert len(skips) == total - consumed


@pytest.mark.parametrize(("config", "layer"), _cases())
def test_zero_delta_h_is_plain_ddim_at_every_layer(config, layer):
    model = M.random_diffusion_model(config, seed=2).with_hspace_layer(layer)
    size = model.unet.sample_size
    x_T = torch.randn(2, model.unet.in_channels, size, size, generator=torch.Generator().manual_seed(4))
    schedule = M.EditSchedule(n_steps=6, t_edit=0)
    zero = M.generate(model, x_T, [(lambda h, temb: torch.zeros_like(h), 1.0)], schedule).latents
    plain = M.generate(model, x_T, (), schedule).latents
    assert torch.equal(zero, plain)
    independent = _plain_ddim_over_diffusers(model, x_T, 6)
    assert (plain - independent).abs().max() <= 1e-5 * independent.abs().max()
    # an f_t built for this layer's shape runs and edits
    ft = M.build_ft("conv", h_channels=model.unet.h_channels, temb_dim=model.unet.temb_dim,
                    h_size=model.unet.h_size, seed=0, norm_groups=8)
    edited = M.generate(model, x_T, [(ft, 1.0)], schedule).latents
    assert (edited - plain).abs().max() > 1e-3


def _plain_ddim_over_diffusers(model, x_T, n_steps):
    x = x_T.clone()
    with torch.no_grad():
        for t, t_next in M.reverse_steps(n_steps, 999):
            eps = model.unet.unet(x, t).sample
            a, an = model.alpha(t), model.alpha(t_next)
            x = an ** 0.5 * (x - (1 - a) ** 0.5 * eps) / a ** 0.5 + (1 - an) ** 0.5 * eps
    return x


def test_shapes_follow_the_layer_on_the_celebahq_architecture():
    with torch.device("meta"):
        unet = M.random_unet(M.ddpm_unet_config(**M.CELEBAHQ_DDPM_ARCH), seed=0)
    expected = {"mid": (512, 8), "up0": (512, 16), "up1": (512, 32), "up2": (256, 64), "up3": (256, 128),
                "up4": (128, 256), "up5": (128, 256)}
    assert hspace_layers(unet) == list(expected)
    for layer, (channels, size) in expected.items():
        hs = M.HSpaceUNet(unet, layer=layer)
        with torch.device("meta"):
            h = hs.encode(torch.empty(1, 3, 256, 256), 999).h
        assert (hs.h_channels, hs.h_size) == (channels, size) == (h.shape[1], h.shape[2])


@pytest.mark.parametrize("layer", ["mid", "up0", "up1"])
def test_latent_diffusion_unet_at_every_layer(layer):
    model = M.random_latent_diffusion_model(M.TINY_VQ_LDM_CONFIG, seed=0).with_hspace_layer(layer)
    unet = model.unet.unet
    z = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (model.unet(z, 500) - unet(z, 500).sample).abs().max() <= 1e-5
    schedule = M.EditSchedule(n_steps=4, t_edit=0)
    zero = M.generate(model, z, [(lambda h, temb: torch.zeros_like(h), 1.0)], schedule)
    plain = M.generate(model, z, (), schedule)
    assert torch.equal(zero.latents, plain.latents) and torch.equal(zero.images, plain.images)
    assert (plain.latents - _plain_ddim_over_diffusers(model, z, 4)).abs().max() <= 1e-4


def test_the_layer_is_in_the_spec_and_names_are_checked():
    model = M.random_diffusion_model(MICRO_UNET_CONFIG, seed=0)
    assert model.unet.layer == "mid" and model.spec()["hspace_layer"] == "mid"
    up0 = model.with_hspace_layer("up0")
    assert up0.spec()["hspace_layer"] == "up0" and up0.spec() != model.spec()
    assert up0.unet.unet is model.unet.unet  # the same frozen weights, not a copy
    assert model.with_hspace_layer("mid") is model
    with pytest.raises(BenchError, match="Did you mean"):
        model.with_hspace_layer("up00")
    with pytest.raises(BenchError, match="h-space layer"):
        M.HSpaceUNet(M.random_unet(MICRO_UNET_CONFIG), layer="up7")


def test_the_default_layer_is_the_mid_block_bit_for_bit():
    unet = M.random_unet(seed=0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        default, explicit = M.HSpaceUNet(unet).encode(x, 300), M.HSpaceUNet(unet, layer="mid").encode(x, 300)
        assert torch.equal(default.h, unet.mid_block(*_mid_input(unet, x, 300)))
    assert torch.equal(default.h, explicit.h) and len(default.skips) == len(explicit.skips)


def _mid_input(unet, x, t):
    """The mid block's input by diffusers' own forward (a pre-hook records it)."""
    seen = {}
    handle = unet.mid_block.register_forward_pre_hook(lambda module, args: seen.update(args=args))
    try:
        unet(x, t)
    finally:
        handle.remove()
    return seen["args"]
