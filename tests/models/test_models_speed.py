"""Speed, as ratios measured in one run (pytest-benchmark; run with `--benchmark-enable`).

Both variants of a comparison run interleaved, round by round, inside one `benchmark.pedantic` target, and the
ratio of their medians is asserted; absolute times are only recorded (`extra_info`), never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import torch
from models_helpers import one_thread, smooth_images, tiny_clip  # noqa: F401

import models as M

pytestmark = pytest.mark.benchmark_ratio

# A 4-level UNet at 64² with an 8×8 bottleneck (64 → 32 → 16 → 8).
SPEED_UNET = {
    "sample_size": 64, "in_channels": 3, "out_channels": 3, "block_out_channels": [16, 32, 64, 128],
    "layers_per_block": 2, "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"], "norm_num_groups": 16,
    "attention_head_dim": None, "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1,
}


@pytest.fixture
def ratio_benchmark(benchmark):
    """The benchmark fixture, or a skip (before any setup work) when timing is disabled."""
    if benchmark.disabled:
        benchmark(lambda: None)  # mark the fixture used, so pytest-benchmark does not warn about the skip
        pytest.skip("timing ratios need --benchmark-enable")
    return benchmark


def _interleaved_medians(benchmark, variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}

    def one_round():
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=1)
    medians = {name: statistics.median(v[1:]) for name, v in times.items()}  # drop the warm-up round
    benchmark.extra_info.update({f"median_s_{k}": v for k, v in medians.items()})
    return medians


def test_shared_encoder_beats_two_full_forwards(ratio_benchmark):
    model = M.random_diffusion_model(SPEED_UNET, seed=0)
    unet = model.unet
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def two_forwards():
        with torch.no_grad():
            unet.unet(x, 500)
            unet.unet(x, 500)

    def shared_encoder():
        with torch.no_grad():
            enc = unet.encode(x, 500)
            unet.decode(torch.cat([enc.h, enc.h + 0.1]), enc.skips, enc.temb)

    def encoder_only():
        with torch.no_grad():
            unet.encode(x, 500)

    med = _interleaved_medians(ratio_benchmark, {"two_forwards": two_forwards, "shared_encoder": shared_encoder,
                                           "encoder_only": encoder_only}, rounds=15)
    ratio = med["two_forwards"] / med["shared_encoder"]
    encoder_share = med["encoder_only"] / (med["two_forwards"] / 2)
    ratio_benchmark.extra_info.update(ratio=ratio, encoder_share=encoder_share, ideal_ratio=2 / (2 - encoder_share))
    print(f"\nshared encoder: {ratio:.3f}x (encoder {encoder_share:.1%} of a forward; ideal "
          f"{2 / (2 - encoder_share):.3f}x)")
    assert ratio >= 1.15


SPEED_T_EDIT = 232  # 3 training steps (299, 265, 232) on the 10-step grid up to t0 = 299


def _training_setup(n_images: int = 8):
    model = M.random_diffusion_model(SPEED_UNET, seed=0)
    clip, tokenizer = tiny_clip()
    loss = M.DirectionalClipLoss(clip, tokenizer, "face", "smiling face")
    images = smooth_images(n_images, size=64)
    # t0 = 299 keeps a random UNet's P_t O(1); the work per step is the same as from t0 = 999
    inv = M.invert(model, images, 10, t0=299, reference_steps=10, reference_min_t=SPEED_T_EDIT)
    return model, loss, images, inv


def _trainer(model, loss, images, inv, **config):
    cfg = M.TrainConfig(t_edit=SPEED_T_EDIT, n_train_steps=10, t0=299, **config)

    def run():
        u = model.unet
        ft = M.build_ft("conv", h_channels=u.h_channels, temb_dim=u.temb_dim, h_size=u.h_size, seed=0)
        M.train_ft(model, ft, loss, images, inv, cfg, progress=False)

    return run


def test_cached_reference_trajectory_speeds_up_training(ratio_benchmark):
    model, loss, images, inv = _training_setup(2)
    med = _interleaved_medians(ratio_benchmark, {
        "recomputed": _trainer(model, loss, images, inv, batch_size=1, official_loop=True),
        "cached": _trainer(model, loss, images, inv, batch_size=1),
    }, rounds=3)
    ratio = med["recomputed"] / med["cached"]
    ratio_benchmark.extra_info["ratio"] = ratio
    print(f"\ncached reference (batch 1 both): {ratio:.3f}x")
    assert ratio >= 1.1


def test_batched_trainer_throughput_against_the_official_loop(ratio_benchmark):
    model, loss, images, inv = _training_setup(8)
    steps = len(M.training_steps(10, SPEED_T_EDIT, 299))
    med = _interleaved_medians(ratio_benchmark, {
        "official_loop": _trainer(model, loss, images, inv, batch_size=1, official_loop=True),
        "batched_cached": _trainer(model, loss, images, inv, batch_size=8),
    }, rounds=3)
    ratio = med["official_loop"] / med["batched_cached"]
    ratio_benchmark.extra_info.update(ratio=ratio, images_x_steps=8 * steps,
                                throughput_batched=8 * steps / med["batched_cached"],
                                throughput_official=8 * steps / med["official_loop"])
    print(f"\ntraining throughput (batch 8, cached) vs official loop: {ratio:.3f}x")
    assert ratio >= 1.5


@pytest.mark.gpu
def test_gpu_ratios_and_step_time_at_256(ratio_benchmark):
    """On a GPU: the two ratios above and the absolute time of one training step (batch 8) with the CelebA-HQ
    UNet config and ViT-B/16-shaped CLIP, random weights. Only recorded, except the ratio floors."""
    import open_clip

    device = torch.device("cuda")
    unet = M.random_unet(M.ddpm_unet_config(**M.CELEBAHQ_DDPM_ARCH), seed=0)
    model = M.DiffusionModel(M.HSpaceUNet(unet), M.celebahq_alphas_cumprod(), 256, name="celebahq-random").to(device)
    clip = open_clip.create_model("ViT-B-16", pretrained=None).to(device)
    loss = M.DirectionalClipLoss(clip, open_clip.get_tokenizer("ViT-B-16"), "face", "smiling face")
    images = smooth_images(8, size=256).to(device)
    inv = M.invert(model, images, 40, reference_steps=40, reference_min_t=513)
    x = torch.randn(8, 3, 256, 256, device=device)

    def sync(fn):
        def run():
            fn()
            torch.cuda.synchronize()
        return run

    def two_forwards():
        with torch.no_grad():
            model.unet(x, 500)
            model.unet(x, 500)

    def shared_encoder():
        with torch.no_grad():
            enc = model.unet.encode(x, 500)
            model.unet.decode(torch.cat([enc.h, enc.h + 0.1]), enc.skips, enc.temb)

    def trainer(**config):
        cfg = M.TrainConfig(t_edit=947, n_train_steps=40, **config)  # 3 steps: 999, 973, 947

        def run():
            ft = M.build_ft("conv", h_channels=512, temb_dim=512, h_size=8, seed=0)
            M.train_ft(model, ft, loss, images, inv, cfg, progress=False)
        return run

    med = _interleaved_medians(ratio_benchmark, {
        "two_forwards": sync(two_forwards), "shared_encoder": sync(shared_encoder),
        "official_loop": sync(trainer(batch_size=1, official_loop=True)),
        "batched_cached": sync(trainer(batch_size=8)),
    }, rounds=5)
    step_time = med["batched_cached"] / 3
    ratio_benchmark.extra_info.update(shared_encoder_ratio=med["two_forwards"] / med["shared_encoder"],
                                training_ratio=med["official_loop"] / med["batched_cached"],
                                seconds_per_training_step_batch8=step_time,
                                device=torch.cuda.get_device_name(device))
    print(f"\nGPU: shared encoder {med['two_forwards'] / med['shared_encoder']:.3f}x, training "
          f"{med['official_loop'] / med['batched_cached']:.3f}x, one step (batch 8, 256²) {step_time * 1e3:.1f} ms")
    assert med["official_loop"] / med["batched_cached"] >= 1.5
