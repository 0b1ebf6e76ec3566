"""Converting the ermongroup DDPM layout to diffusers, and loading the real CelebA-HQ models (`weights` tier)."""

import json
import os
from pathlib import Path

import pytest
import torch
from ddpm_reference import ddpm_forward, random_ddpm_state_dict
from models_helpers import MICRO_UNET_CONFIG, one_thread  # noqa: F401

import models as M
from benchmark.core.errors import DataError, DigestMismatchError, MissingWeightsError

ARCHS = {
    "attn-mid-level": {"ch": 32, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (8,),
                       "resolution": 16},
    "attn-top-and-bottom": {"ch": 32, "ch_mult": (1, 1, 2), "num_res_blocks": 2, "attn_resolutions": (16, 4),
                            "resolution": 16},
}


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_converted_ddpm_gives_the_reference_eps(arch):
    state = random_ddpm_state_dict(seed=1, **arch)
    unet = M.from_ddpm_checkpoint(state, **arch)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([3, 870])
    with torch.no_grad():
        expected = ddpm_forward(state, x, t, **arch)
        got = unet(x, t).sample
        via_hspace = M.HSpaceUNet(unet)(x, t)
    assert expected.abs().mean() > 0.1  # a non-trivial output
    assert (got - expected).abs().max() <= 1e-4
    assert (via_hspace - expected).abs().max() <= 1e-4


def test_conversion_is_strict_and_names_what_does_not_fit():
    arch = ARCHS["attn-mid-level"]
    state = random_ddpm_state_dict(seed=0, **arch)
    prefixed = {f"module.{k}": v for k, v in state.items()}  # DataParallel checkpoints load too
    assert isinstance(M.from_ddpm_checkpoint(prefixed, **arch), torch.nn.Module)
    with pytest.raises(DataError, match="not in the DDPM layout"):
        M.from_ddpm_checkpoint({**state, "layer_0.conv1.weight": torch.zeros(1)}, **arch)
    missing = dict(state)
    missing.pop("mid.attn_1.q.weight")
    with pytest.raises(DataError, match="Missing key"):
        M.from_ddpm_checkpoint(missing, **arch)
    with pytest.raises(DataError, match="architecture"):
        M.from_ddpm_checkpoint(state, **{**arch, "ch_mult": (1, 2, 4)})


def test_celebahq_arch_maps_to_the_hub_unet_config():
    """The google/ddpm-ema-celebahq-256 config.json at the pinned revision (values as published on the hub)."""
    hub = {"sample_size": 256, "block_out_channels": [128, 128, 256, 256, 512, 512], "layers_per_block": 2,
           "down_block_types": ["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
           "up_block_types": ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4, "flip_sin_to_cos": False,
           "freq_shift": 1, "norm_eps": 1e-6, "norm_num_groups": 32, "downsample_padding": 0,
           "attention_head_dim": None, "time_embedding_type": "positional", "mid_block_scale_factor": 1}
    ours = M.ddpm_unet_config(**M.CELEBAHQ_DDPM_ARCH)
    assert {k: ours[k] for k in hub} == hub
    assert len(M.DDPM_CELEBAHQ.revision) == 40


def _fake_snapshot(root: Path, scheduler: dict | None = None) -> Path:
    unet = M.random_unet(MICRO_UNET_CONFIG, seed=3)
    unet.save_pretrained(root, safe_serialization=True)
    (root / "scheduler_config.json").write_text(json.dumps(scheduler or {
        "_class_name": "DDPMScheduler", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
        "num_train_timesteps": 1000, "clip_sample": True}))
    return root


def test_snapshot_loader_reads_local_files_and_uses_the_authors_schedule(tmp_path):
    model = M.load_ddpm_celebahq(_fake_snapshot(tmp_path / "snap"))
    assert torch.equal(model.alphas_cumprod, M.linear_alphas_cumprod())
    reference = M.random_unet(MICRO_UNET_CONFIG, seed=3)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert (model.unet(x, 10) - reference(x, 10).sample).abs().max() <= 1e-6


def test_snapshot_loader_fails_with_the_fetch_step(tmp_path):
    with pytest.raises(MissingWeightsError, match=M.DDPM_CELEBAHQ.revision):
        M.load_ddpm_celebahq(tmp_path / "nothing")
    other = _fake_snapshot(tmp_path / "cosine", {"beta_schedule": "squaredcos_cap_v2"})
    with pytest.raises(DataError, match="different schedule"):
        M.load_ddpm_celebahq(other)
    bin_snapshot = tmp_path / "bin"
    M.random_unet(MICRO_UNET_CONFIG).save_pretrained(bin_snapshot, safe_serialization=False)
    with pytest.raises(DigestMismatchError, match="3ec1b462"):
        M.load_ddpm_celebahq(bin_snapshot)
    with pytest.raises(MissingWeightsError, match="celeba_hq.ckpt"):
        M.load_sdedit_celebahq(tmp_path / "celeba_hq.ckpt")


def _env_path(var: str, what: str) -> Path:
    value = os.environ.get(var)
    if not value or not Path(value).exists():
        pytest.skip(f"{what} not available: fetch it with the harness's `fetch` command and set {var}")
    return Path(value)


@pytest.mark.weights
def test_real_ddpm_celebahq_has_a_512x8x8_h_space():
    model = M.load_ddpm_celebahq(_env_path(M.DDPM_CELEBAHQ.env_var, "google/ddpm-ema-celebahq-256"))
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        enc = model.unet.encode(x, 500)
        eps = model.unet.decode(enc.h, enc.skips, enc.temb)
    assert enc.h.shape == (1, 512, 8, 8) and enc.temb.shape == (1, 512)
    assert torch.isfinite(eps).all()
    # a trained denoiser predicts most of the noise it is given at high t
    a = model.alpha(900)
    noise = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred = model.unet(a ** 0.5 * torch.zeros_like(x) + (1 - a) ** 0.5 * noise, 900)
    assert torch.nn.functional.cosine_similarity(pred.flatten(), noise.flatten(), dim=0) > 0.9


@pytest.mark.weights
def test_sdedit_checkpoint_and_diffusers_weights_give_the_same_eps():
    """Whether the two CelebA-HQ releases are the same weights is unverified (asyrp-reference.md §9)."""
    hub = M.load_ddpm_celebahq(_env_path(M.DDPM_CELEBAHQ.env_var, "google/ddpm-ema-celebahq-256"))
    sdedit = M.load_sdedit_celebahq(_env_path(M.SDEDIT_CELEBAHQ_ENV, "SDEdit celeba_hq.ckpt"))
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([50, 700])
    with torch.no_grad():
        a, b = hub.unet(x, t), sdedit.unet(x, t)
    assert (a - b).abs().max() <= 1e-4, f"max |Δε| = {(a - b).abs().max():.3g}"


def test_sdedit_loader_names_the_file_and_the_expected_layout(tmp_path):
    wrong = tmp_path / "celeba_hq.ckpt"
    torch.save({"layer_0.conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(DataError, match=f"{wrong}: 1 keys are not in the DDPM layout"):
        M.load_sdedit_celebahq(wrong, sha256=None)
    torch.save([{"conv_in.weight": torch.zeros(1)}, {"lr": torch.ones(1)}], wrong)  # a training checkpoint
    with pytest.raises(DataError, match="holds a list of 2 items, not a bare state dict"):
        M.load_sdedit_celebahq(wrong, sha256=None)
