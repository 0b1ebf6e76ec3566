"""h-space access: decoding the unmodified h reproduces `unet(x, t).sample` for several UNet2DModel shapes."""

import pytest
import torch
from models_helpers import MICRO_UNET_CONFIG, one_thread  # noqa: F401

import models as M
from benchmark.core.errors import BenchError

LATENT_LIKE = {  # an LDM-style UNet: 4-channel 16² latents, two attention levels, 2 layers per block
    "sample_size": 16, "in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64, 64],
    "layers_per_block": 2, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 16,
    "attention_head_dim": 32,
}


@pytest.mark.parametrize("config", [None, MICRO_UNET_CONFIG, LATENT_LIKE], ids=["tiny", "micro", "latent-like"])
@pytest.mark.parametrize("seed", [0, 1])
def test_decode_of_unmodified_h_equals_unet_forward(config, seed):
    unet = M.random_unet(config, seed=seed)
    hs = M.HSpaceUNet(unet)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size, generator=g)
    t = torch.tensor([10, 500, 999])
    with torch.no_grad():
        expected = unet(x, t).sample
        h, skips, temb = hs.encode(x, t)
        eps = hs.decode(h, skips, temb)
    assert (eps - expected).abs().max() <= 1e-5
    assert h.shape == (3, hs.h_channels, hs.h_size, hs.h_size)
    assert temb.shape == (3, hs.temb_dim)


def test_decode_many_variants_in_one_batch_keeps_the_order():
    hs = M.HSpaceUNet(M.random_unet(seed=0))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h, skips, temb = hs.encode(x, 700)
        variants = [h, h + 0.3, h * 0.5]
        batched = hs.decode(torch.cat(variants), skips, temb)
        one_by_one = torch.cat([hs.decode(v, skips, temb) for v in variants])
    assert batched.shape == (6, 3, 32, 32)
    assert (batched - one_by_one).abs().max() <= 1e-5
    assert (batched[:2] - batched[2:4]).abs().max() > 1e-3  # the variants really differ
    with pytest.raises(BenchError, match="multiple"):
        hs.decode(h[:1].repeat(3, 1, 1, 1), skips, temb)


def test_celebahq_config_gives_a_512x8x8_h_space():
    config = M.ddpm_unet_config(**M.CELEBAHQ_DDPM_ARCH)
    unet = torch.nn.Module()  # build on the meta device: only shapes matter here
    with torch.device("meta"):
        unet = M.random_unet(config, seed=0)
    hs = M.HSpaceUNet(unet)
    assert (hs.h_channels, hs.h_size, hs.temb_dim) == (512, 8, 512)
    with torch.device("meta"):
        h, skips, temb = hs.encode(torch.empty(1, 3, 256, 256), 999)
    assert tuple(h.shape) == (1, 512, 8, 8)


def test_unsupported_unets_are_refused_with_a_reason():
    no_mid = dict(MICRO_UNET_CONFIG, mid_block_type=None)
    with pytest.raises(BenchError, match="mid block"):
        M.HSpaceUNet(M.random_unet(no_mid))
    fourier = dict(MICRO_UNET_CONFIG, time_embedding_type="fourier")
    with pytest.raises(BenchError, match="positional"):
        M.HSpaceUNet(M.random_unet(fourier))
    with pytest.raises(BenchError, match="UNet2DModel"):
        M.HSpaceUNet(torch.nn.Linear(2, 2))


def test_bf16_autocast_is_close_and_returns_float32():
    unet = M.random_unet(MICRO_UNET_CONFIG, seed=0)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = M.HSpaceUNet(unet)(x, 300)
        bf16 = M.HSpaceUNet(unet, precision="bf16")(x, 300)
    assert bf16.dtype == torch.float32
    assert (bf16 - ref).abs().max() < 0.05 * ref.abs().max()
    assert not torch.equal(bf16, ref)
    with pytest.raises(BenchError, match="Did you mean"):
        M.HSpaceUNet(unet, precision="bf61")


@pytest.mark.slow
def test_compiled_halves_give_the_same_eps():
    unet = M.random_unet(MICRO_UNET_CONFIG, seed=0)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = M.HSpaceUNet(unet)(x, 300)
        # the eager backend checks the wiring without a C++ toolchain; inductor is the GPU default
        compiled = M.HSpaceUNet(unet).compile_unet(backend="eager")(x, 300)
    assert (compiled - ref).abs().max() <= 1e-6
