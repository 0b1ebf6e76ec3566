"""Devices, seeds and determinism, recorded so a result says how it was computed."""

from __future__ import annotations

import os
import random
from typing import Any

from benchmark.core.errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(name="auto"):
    """'auto' -> cuda if present else cpu. Only `DEVICE_CHOICES` are accepted: 'cuda' without CUDA, 'cuda:N' with N
    at or above the device count, and anything else (mps, meta, gpu, ...) is a DeviceError, never a silent
    fallback or a crash after setup."""
    import torch

    name = str(name or "auto").strip()  # a torch.device passes through as its name
    listed = ", ".join(DEVICE_CHOICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    index = name[5:] if name.startswith("cuda:") else None
    if name != "cuda" and not (index is not None and index.isdigit()):
        raise DeviceError(f"device {name!r} is not supported", fix=f"pass --device as one of: {listed}")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was requested but torch sees no CUDA device",
                          fix="run on a GPU machine, or pass --device cpu where the suite allows the CPU")
    if index is not None and int(index) >= torch.cuda.device_count():
        raise DeviceError(f"device {name!r} does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)",
                          fix=f"pass --device cuda:N with N below {torch.cuda.device_count()}, or cuda")
    return torch.device(name)


def fix_cpu_thread_count() -> None:
    """Keep MKL at the thread count it is given. By default (MKL_DYNAMIC on) MKL lowers its thread count when it
    finds the CPU busy, which changes the order of its sums: the same run then gives different floats on a loaded
    machine, and a worker beside another worker differs from an inline run (measured on the quick synthetic suite,
    docs/scale-out.md). Must run before torch loads MKL; child processes (local and SLURM workers) inherit it. A
    value the user set is kept."""
    os.environ.setdefault("MKL_DYNAMIC", "FALSE")


def seed_everything(seed: int, *, deterministic: bool = True) -> dict[str, Any]:
    """Seed python, numpy and torch (all devices); set the deterministic flags. Returns what it set."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    flags: dict[str, Any] = {"seed": seed, "deterministic": deterministic}
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        flags.update(cudnn_deterministic=True, cudnn_benchmark=False, allow_tf32=False)
    return flags


def generator(seed: int, device="cpu"):
    """A local torch.Generator, so one stage's randomness never shifts another's."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def device_description(device) -> dict[str, Any]:
    import torch

    d = {"type": str(getattr(device, "type", device)), "torch": torch.__version__, "cuda": torch.version.cuda}
    if d["type"] == "cuda":
        d["name"] = torch.cuda.get_device_name(device)
    else:
        import platform

        d["name"] = platform.processor() or platform.machine()
        d["threads"] = torch.get_num_threads()
    return d
