"""`run_all.py bench`: the datasheet peak table, the suite unit counts (against counts written out by hand from the
manifests), the random-weight architectures, and a whole bench of the paper-table suite's tiny profile (seconds)
whose FLOPs are checked against diffusers' own forward counted independently."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models as M
from benchmark.bench.architectures import BASE_MODELS, METRIC_BACKENDS
from benchmark.bench.peaks import peak_for
from benchmark.bench.projection import property_generations, suite_counts
from benchmark.core.errors import UnknownNameError
from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
from benchmark.plan.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    load_plugins()
    return ManifestRegistry()


def test_peak_table_picks_the_datasheet_column_of_the_arithmetic():
    strict, bf16, tf32 = M.FastPath(), M.FastPath(precision="bf16"), M.FastPath(tf32="on")
    assert peak_for("NVIDIA H100 80GB HBM3", strict)["tflops"] == 67.0
    assert peak_for("NVIDIA H100 80GB HBM3", bf16)["tflops"] == pytest.approx(989.5)  # 1,979 with sparsity
    assert peak_for("NVIDIA H100 80GB HBM3", tf32)["tflops"] == pytest.approx(494.5)
    assert peak_for("NVIDIA H100 PCIe", strict)["tflops"] == 51.0
    assert peak_for("NVIDIA H200", bf16)["tflops"] == pytest.approx(989.5)
    assert peak_for("NVIDIA L40S", strict)["tflops"] == 91.6  # not the L4's
    assert peak_for("NVIDIA A100-SXM4-80GB", strict)["tflops"] == 19.5  # not the A10's
    assert peak_for("NVIDIA A10", bf16)["tflops"] == 125.0
    cpu = peak_for("x86_64", strict)
    assert cpu["tflops"] is None and "--peak-tflops" in cpu["source"]
    assert peak_for("x86_64", strict, override=2.5)["tflops"] == 2.5


def test_paper_table_counts_by_hand(registry):
    """The 40-point grid: inversion takes its 39 steps (0 → 999), a reverse pass 40 (the last one to ᾱ = 1). 100
    test images inverted and reconstructed, 1,000 training images inverted; t_edit 513/513/512/446/490 give
    19/19/20/22/20 training steps, and as many Δh steps of the 40 editing steps; two Δh scales; the
    consistency check of smiling trains a global Δh too (19 steps per image)."""
    counts = suite_counts(resolve_suite("paper-table", registry=registry))
    assert counts.invert_steps == 100 * (39 + 40) + 1000 * 39
    assert counts.train_steps == 1000 * (19 + 19 + 20 + 22 + 20)
    assert counts.edit_steps == 2 * 100 * (19 + 19 + 20 + 22 + 20)
    assert counts.plain_steps == 2 * 100 * 5 * 40 - counts.edit_steps
    assert counts.metric_images["sdir"] == 2 * 100 * 10  # edited + original, for each of the 10 edit keys
    assert counts.metric_images["fid_orig"] == 100 * 10 + 100  # the reference features are computed once
    assert counts.global_train_steps == 1000 * 19


def test_quick_synthetic_property_generations_by_hand(registry):
    """known_answers of the quick profile: 4 images (2 in figures), linearity over 5 scales for smiling and
    tanned, consistency of smiling with a global Δh, the smiling + tanned combination with coefficients {0, 1},
    a t_edit sweep over 2 values, the Δh = 0 check on 2 images."""
    resolved = resolve_suite("synthetic", profile="quick", registry=registry)
    t_edit = {n: r.manifest.t_edit for n, r in resolved.attributes.items()}
    got = property_generations(resolved.suite.known_answers, t_edit, 8)
    zero_delta, linearity, consistency, combination, sweep = 2, 5 * 4, 4 * 4, 4 * 4 + 2 * 2 * 2, 2 * 2
    smiling = zero_delta + linearity + consistency + combination + sweep
    assert got["generations"]["synthetic-smiling"] == (smiling, 2 + 4 + 2)
    assert got["generations"]["synthetic-tanned"] == (linearity, 0)
    assert got["global"] == ["synthetic-smiling"]


def test_random_architectures_are_the_real_shapes():
    model = BASE_MODELS.get("sdedit-celebahq")("meta")
    assert sum(p.numel() for p in model.unet.parameters()) == pytest.approx(113.7e6, rel=1e-3)
    assert model.unet.h_channels == 512 and model.unet.h_size == 8
    with pytest.raises(UnknownNameError, match="arcface-buffalo-l"):
        METRIC_BACKENDS.get("arcface-bufalo-l")


def test_iresnet50_counts_its_convolutions():
    """ArcFace r50 at 112²: the closed form of its convolutions and the linear layer (2 FLOP per multiply-add)."""
    from benchmark.bench.iresnet import LAYERS_R50, WIDTHS, IResNet

    def conv(k, cin, cout, size):
        return 2 * k * k * cin * cout * size * size

    expected, cin, size = conv(3, 3, 64, 112), 64, 112
    for n, width in zip(LAYERS_R50, WIDTHS, strict=True):
        size //= 2
        expected += conv(3, cin, width, 2 * size) + conv(3, width, width, size) + conv(1, cin, width, size)
        expected += (n - 1) * 2 * conv(3, width, width, size)
        cin = width
    expected += 2 * 512 * 7 * 7 * 512
    with torch.device("meta"):
        net = IResNet().eval()
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, 112, 112, device="meta"))
    assert counter.get_total_flops() == expected


@pytest.fixture(scope="module")
def tiny_report(registry):
    from benchmark.bench.report import run_bench

    return run_bench("paper-table", profile="tiny", device="cpu", batch=2, warmup=0, repeats=1, registry=registry)


def test_tiny_bench_reports_every_unit_with_flops_and_time(tiny_report):
    units = tiny_report["units"]
    for name in ("invert_step", "train_step", "train_step_official", "train_step_batched", "edit_step"):
        u = units[name]
        assert u["gflop"] > 0 and u["seconds"] > 0
        assert u["tflops"] == pytest.approx(u["gflop"] / u["seconds"] / 1e3)
        assert u["share_of_peak"] is None  # a CPU has no known peak
    assert {k for k in units if k.startswith("metric:")} == {"metric:sdir", "metric:sc", "metric:fid_orig",
                                                             "metric:kid_orig", "metric:id"}
    assert units["train_step_batched"]["items"] == 5  # K = 5 attributes at the suite's training batch 1
    assert tiny_report["ratios"]["k"] == 5
    assert set(tiny_report["ratios"]) >= {"attribute_batched_train", "train_vs_official"}
    assert tiny_report["device"]["type"] == "cpu" and "torch" in tiny_report["packages"]
    assert tiny_report["fast_path"]["tf32"] == "off"


def test_tiny_bench_flops_match_diffusers_own_forward(tiny_report, registry):
    """The inversion step is one UNet forward per image: count the tiny DDPM's diffusers forward directly (with
    the CPU's fused attention kernel counted like its CUDA twin, as `models.units` does)."""
    from benchmark.plan.loaders import LOADERS
    from models.units import cpu_attention_formulas

    resolved = resolve_suite("paper-table", profile="tiny", registry=registry)
    manifest = resolved.base_model.manifest
    model = LOADERS.get(manifest.loader)(manifest, device="cpu")
    x = torch.randn(1, *model.latent_shape)
    with FlopCounterMode(display=False, custom_mapping=cpu_attention_formulas()) as counter, torch.no_grad():
        model.unet.unet(x, 499)
    assert tiny_report["units"]["invert_step"]["gflop"] == pytest.approx(counter.get_total_flops() / 1e9, rel=1e-9)


def test_tiny_bench_projection_is_counts_times_units(tiny_report):
    p, c, u = tiny_report["projection"], tiny_report["counts"], tiny_report["units"]
    assert p["seconds"] == pytest.approx(sum(p["stage_seconds"].values()))
    assert p["stage_seconds"]["train"] == pytest.approx(c["train_steps"] * u["train_step_batched"]["seconds"])
    assert p["stage_seconds"]["invert"] == pytest.approx(c["invert_steps"] * u["invert_step"]["seconds"])
    assert p["stage_pflop"]["edit"] * 1e6 == pytest.approx(c["edit_steps"] * u["edit_step"]["gflop"]
                                                          + c["plain_steps"] * u["invert_step"]["gflop"])
    assert p["missing_units"] == []


def test_bench_cli_json_and_a_refused_gpu_option(capsys):
    from benchmark.cli import main

    args = ["bench", "--suite", "paper-table", "--profile", "tiny", "--device", "cpu", "--batch", "1",
            "--warmup", "0", "--repeats", "1"]
    assert main([*args, "--json", "--peak-tflops", "1.0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["peak"]["tflops"] == 1.0
    assert report["units"]["edit_step"]["share_of_peak"] == pytest.approx(report["units"]["edit_step"]["tflops"])
    assert "projection" in report and report["projection"]["seconds"] > 0
    assert main([*args, "--tf32", "on"]) == 2
    assert "CUDA" in capsys.readouterr().err
