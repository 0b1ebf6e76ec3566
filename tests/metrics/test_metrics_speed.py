"""Throughput of every metric on 100 image pairs at 256² on the CPU, with tiny or random back-ends.

Runs only with `--benchmark-enable` (it takes minutes on 2 cores). Each test times 100 pairs with
pytest-benchmark and 20 pairs in the same run, and asserts on the ratio: batched inference with models loaded
once must scale no worse than linearly in N. Images per second (edited + reference images processed) go into
`extra_info`; no absolute time is asserted.
"""

from __future__ import annotations

import time

import pytest
import torch
from metrics_helpers import load_fixture_images, random_images

from metrics import EditSet, get_metric
from metrics.backends.identity import export_tiny_arcface

pytestmark = pytest.mark.benchmark_ratio

N, SMALL = 100, 20
FACES = ["celebamaskhq_0.jpg", "celebamaskhq_1.jpg", "celebamaskhq_2.jpg", "celebamaskhq_3.jpg", "000121.jpg",
         "000231.jpg", "000255.jpg", "000445.jpg", "005152.jpg", "006930.jpg"]


@pytest.fixture(scope="module")
def pairs(fixtures):
    """100 real faces at 256² (10 fixture images, each with 10 seeded small perturbations) and their 'edits'."""
    base = load_fixture_images(fixtures, FACES, size=256).repeat(N // len(FACES), 1, 1, 1)
    noise = random_images(N, 256, seed=7, high=16).to(torch.int16) - 8
    original = (base.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)
    edited = original.flip(-1)
    return EditSet(edited=edited, original=original, reconstruction=original, source_text="face",
                   target_text="smiling face")


def subset(edits: EditSet, n: int) -> EditSet:
    return EditSet(edited=edits.edited[:n], original=edits.original[:n], reconstruction=edits.reconstruction[:n],
                   source_text=edits.source_text, target_text=edits.target_text)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return export_tiny_arcface(tmp_path_factory.mktemp("onnx") / "tiny_arcface.onnx")


CASES = {
    "sdir-tiny-clip": lambda tmp, onnx: get_metric("sdir@1", backend="tiny-clip-random", device="cpu"),
    "sc-random-bisenet": lambda tmp, onnx: get_metric("sc@1", backend="bisenet-random", device="cpu"),
    "fid-random-inception-2048": lambda tmp, onnx: get_metric("fid@1", backend="tiny-inception-random", device="cpu",
                                                              cache_dir=tmp),
    "id-dlib": lambda tmp, onnx: get_metric("id@1", backend="dlib-resnet", device="cpu"),
    "id-arcface-tiny-onnx": lambda tmp, onnx: get_metric("id@1", backend="arcface-onnx", weights=onnx, device="cpu"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_metric_throughput(benchmark, pairs, tiny_onnx, tmp_path_factory, case):
    if benchmark.disabled:
        pytest.skip("throughput benchmark: run with --benchmark-enable")
    fresh = iter(tmp_path_factory.mktemp(f"cache-{case}-{i}") for i in range(100))  # FID: never a cache hit

    def make():
        return CASES[case](next(fresh), tiny_onnx)

    make().compute(subset(pairs, 2))  # load the models once, outside the timings
    started = time.perf_counter()
    make().compute(subset(pairs, SMALL))
    t_small = time.perf_counter() - started

    result = benchmark.pedantic(lambda: make().compute(pairs), rounds=1, iterations=1)
    t_full = benchmark.stats.stats.mean
    benchmark.extra_info.update({"pairs": N, "images_per_second": round(2 * N / t_full, 2),
                                 "seconds_100_pairs": round(t_full, 3), "seconds_20_pairs": round(t_small, 3)})
    print(f"\n{case}: {2 * N / t_full:.1f} images/s ({t_full:.2f} s for {N} pairs; {t_small:.2f} s for {SMALL})")
    assert result.primary.n == N
    # linear scaling is 5×; the margin absorbs timing noise on a shared 2-core machine
    assert t_full / t_small < (N / SMALL) * 1.5
