"""Speed of attribute-batched training, as ratios measured in one run (pytest-benchmark; `--benchmark-enable`).

The same pattern as test_models_speed.py: the variants run interleaved, round by round, and the ratio of their
medians is asserted; absolute times are only recorded.
"""

from __future__ import annotations

import pytest
import torch
from models_helpers import one_thread, smooth_images, tiny_clip  # noqa: F401
from test_models_speed import SPEED_T_EDIT, SPEED_UNET, _interleaved_medians, ratio_benchmark  # noqa: F401

import models as M

pytestmark = pytest.mark.benchmark_ratio

K = 4
PROMPTS = ["smiling face", "sad face", "tanned face", "angry face"]


def _setup(n_images: int):
    model = M.random_diffusion_model(SPEED_UNET, seed=0)
    clip, tokenizer = tiny_clip()
    losses = [M.DirectionalClipLoss(clip, tokenizer, "face", target) for target in PROMPTS[:K]]
    images = smooth_images(n_images, size=64)
    # t0 = 299 keeps a random UNet's P_t O(1); the work per step is the same as from t0 = 999
    inv = M.invert(model, images, 10, t0=299, reference_steps=10, reference_min_t=SPEED_T_EDIT)
    return model, losses, images, inv


def _ft(model):
    u = model.unet
    return M.build_ft("conv", h_channels=u.h_channels, temb_dim=u.temb_dim, h_size=u.h_size, seed=0)


def test_attribute_batched_training_beats_sequential_runs(ratio_benchmark):  # noqa: F811
    model, losses, images, inv = _setup(4)

    def config(official: bool):
        return M.TrainConfig(t_edit=SPEED_T_EDIT, n_train_steps=10, t0=299, official_loop=official)

    def sequential(official: bool):
        def run():
            for loss in losses:
                M.train_ft(model, _ft(model), loss, images, inv, config(official), progress=False)
        return run

    def batched():
        runs = [M.AttributeRun(_ft(model), loss, config(True)) for loss in losses]
        M.train_attributes(model, runs, images, inv, progress=False)

    med = _interleaved_medians(ratio_benchmark, {"sequential_official": sequential(True),
                                                 "sequential_cached": sequential(False),
                                                 "batched_on_the_fly": batched}, rounds=3)
    ratio = med["sequential_official"] / med["batched_on_the_fly"]
    ratio_cached = med["sequential_cached"] / med["batched_on_the_fly"]
    ratio_benchmark.extra_info.update(ratio_vs_official=ratio, ratio_vs_cached=ratio_cached, k=K,
                                      threads=torch.get_num_threads())
    print(f"\nK={K} attributes in one pass vs {K} sequential runs: {ratio:.3f}x (official loop), "
          f"{ratio_cached:.3f}x (cached reference)")
    assert ratio >= 2.0


@pytest.mark.gpu
def test_gpu_attribute_batched_training_at_256(ratio_benchmark):  # noqa: F811
    """On a GPU, at paper-table's shapes (the CelebA-HQ UNet and a ViT-B/16-shaped CLIP, random weights): K = 4
    attributes in one pass against four sequential official-loop runs, two images, three training steps each.
    The same floor as on the CPU; the absolute times are only recorded."""
    import open_clip

    device = torch.device("cuda")
    unet = M.random_unet(M.ddpm_unet_config(**M.CELEBAHQ_DDPM_ARCH), seed=0)
    model = M.DiffusionModel(M.HSpaceUNet(unet), M.celebahq_alphas_cumprod(), 256, name="celebahq-random").to(device)
    clip = open_clip.create_model("ViT-B-16", pretrained=None).to(device)
    losses = [M.DirectionalClipLoss(clip, open_clip.get_tokenizer("ViT-B-16"), "face", target,
                                    templates=M.IMAGENET_TEMPLATES[:1]) for target in PROMPTS[:K]]
    images = smooth_images(2, size=256).to(device)
    inv = M.invert(model, images, 40)
    config = M.TrainConfig(t_edit=947, n_train_steps=40, official_loop=True)  # 3 steps: 999, 973, 947

    def ft():
        return M.build_ft("conv", h_channels=512, temb_dim=512, h_size=8, seed=0)

    def synced(fn):
        def run():
            fn()
            torch.cuda.synchronize()
        return run

    def sequential():
        for loss in losses:
            M.train_ft(model, ft(), loss, images, inv, config, progress=False)

    def batched():
        M.train_attributes(model, [M.AttributeRun(ft(), loss, config) for loss in losses], images, inv,
                           progress=False)  # the process's own flags, as train_ft runs under

    med = _interleaved_medians(ratio_benchmark, {"sequential_official": synced(sequential),
                                                 "batched_on_the_fly": synced(batched)}, rounds=3)
    ratio = med["sequential_official"] / med["batched_on_the_fly"]
    ratio_benchmark.extra_info.update(ratio=ratio, k=K, device=torch.cuda.get_device_name(device))
    print(f"\nGPU, 256²: K={K} attributes in one pass vs {K} sequential official runs: {ratio:.3f}x")
    assert ratio >= 2.0
