"""Batch sizes from free device memory, and batched inversion."""

import pytest
import torch
from models_helpers import micro_model, one_thread, smooth_images  # noqa: F401

import models as M
from benchmark.core.errors import BenchError
from models import batching


def test_batch_size_for_memory_fits_the_free_memory_with_headroom():
    assert M.batch_size_for_memory(10_000, 1_000) == 8  # 0.8 · 10 000 // 1 000
    assert M.batch_size_for_memory(10_000, 1_000, headroom=1.0) == 10
    assert M.batch_size_for_memory(500, 1_000) == 1  # never 0
    assert M.batch_size_for_memory(10**12, 1_000, maximum=64) == 64
    with pytest.raises(BenchError):
        M.batch_size_for_memory(10_000, 0)


def test_cpu_uses_a_fixed_default_and_an_override_always_wins():
    def never(): raise AssertionError("the per-item cost is only probed on CUDA")

    assert M.auto_batch_size("cpu", never) == batching.CPU_DEFAULT_BATCH
    assert M.auto_batch_size("cpu", never, cpu_default=3) == 3
    assert M.auto_batch_size("cuda", never, override=5) == 5
    with pytest.raises(BenchError, match=">= 1"):
        M.auto_batch_size("cpu", 1, override=0)


def test_cuda_reads_the_free_memory(monkeypatch):
    calls = []

    def mem_get_info(device):
        calls.append(torch.device(device))
        return 8 * 2**30, 80 * 2**30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert M.auto_batch_size("cuda:0", lambda: 2**30) == 6  # 0.8 · 8 GiB // 1 GiB
    assert calls == [torch.device("cuda:0")]


def test_batched_inversion_matches_one_batch():
    model = micro_model()
    images = smooth_images(4, size=16)
    whole = M.invert(model, images, 10, t0=299, reference_steps=10, reference_min_t=100, reconstruct=True)
    auto = M.invert(model, images, 10, t0=299, reference_steps=10, reference_min_t=100, reconstruct=True,
                    batch_size="auto")  # CPU: the default 8, capped at the 4 images: one batch
    assert torch.equal(auto.x_T, whole.x_T) and torch.equal(auto.reconstruction, whole.reconstruction)
    ones = M.invert(model, images, 10, t0=299, reference_steps=10, reference_min_t=100, reconstruct=True,
                    batch_size=1)
    # batch-size-dependent CPU rounding only (x_T is O(1))
    torch.testing.assert_close(ones.x_T, whole.x_T, atol=1e-5, rtol=0)
    for t in whole.reference.timesteps:
        torch.testing.assert_close(ones.reference.get(t), whole.reference.get(t), atol=1e-5, rtol=0)
