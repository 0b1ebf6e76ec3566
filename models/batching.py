"""Batch sizes from free device memory.

On CUDA, the free memory (`torch.cuda.mem_get_info`) divided by a per-item cost measured once (the peak memory of
one call at batch 2 minus that at batch 1, so fixed costs such as weights and workspace cancel), with headroom.
On any other device a fixed default: host memory is not the limit there, and a CPU gains little from larger
batches. An explicit `override` always wins.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchmark.core.errors import BenchError

CPU_DEFAULT_BATCH = 8
DEFAULT_HEADROOM = 0.8  # use at most this fraction of the free memory (allocator fragmentation, other tensors)


def batch_size_for_memory(free_bytes: int, bytes_per_item: int, *, headroom: float = DEFAULT_HEADROOM,
                          maximum: int | None = None) -> int:
    """The largest batch whose per-item cost fits in `headroom · free_bytes` (at least 1, at most `maximum`)."""
    if bytes_per_item <= 0:
        raise BenchError(f"bytes_per_item must be positive, got {bytes_per_item}")
    if not 0 < headroom <= 1:
        raise BenchError(f"headroom must be in (0, 1], got {headroom}")
    size = max(1, int(free_bytes * headroom) // bytes_per_item)
    return min(size, maximum) if maximum else size


def free_device_memory(device: torch.device | str) -> int | None:
    """Free bytes on a CUDA device; None elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def probe_bytes_per_item(run: Callable[[int], object], device: torch.device | str) -> int:
    """Peak CUDA memory of `run(2)` minus that of `run(1)`: what one more item costs."""
    device = torch.device(device)
    if device.type != "cuda":
        raise BenchError("probing memory per item needs a CUDA device", fix="pass an explicit batch size")
    peaks = []
    for batch in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run(batch)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    return max(peaks[1] - peaks[0], 1)


def auto_batch_size(device: torch.device | str, bytes_per_item: int | Callable[[], int], *,
                    override: int | None = None, cpu_default: int = CPU_DEFAULT_BATCH,
                    headroom: float = DEFAULT_HEADROOM, maximum: int | None = None) -> int:
    """`override` if given; on CUDA the batch that fits the free memory (`bytes_per_item` may be a callable,
    evaluated only there, e.g. a `probe_bytes_per_item` closure); elsewhere `cpu_default`."""
    if override is not None:
        if override < 1:
            raise BenchError(f"batch size must be >= 1, got {override}")
        return override
    free = free_device_memory(device)
    if free is None:
        return min(cpu_default, maximum) if maximum else cpu_default
    per_item = bytes_per_item() if callable(bytes_per_item) else bytes_per_item
    return batch_size_for_memory(free, per_item, headroom=headroom, maximum=maximum)


def unet_forward_batch_size(model, *, override: int | None = None, maximum: int | None = None) -> int:
    """A batch size for no-grad UNet forwards (inversion, editing) on `model`'s device."""
    shape = model.latent_shape

    def run(batch: int):
        with torch.no_grad():
            model.unet(torch.zeros(batch, *shape, device=model.device), model.num_train_timesteps // 2)

    return auto_batch_size(model.device, lambda: probe_bytes_per_item(run, model.device), override=override,
                           maximum=maximum)
