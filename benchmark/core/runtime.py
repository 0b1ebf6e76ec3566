"""Devices, seeds and determinism, recorded so a result says how it was computed."""

from __future__ import annotations

import os
import random
from typing import Any

from benchmark.core.errors import DeviceError


def resolve_device(name: str | None = "auto"):
    """'auto' -> cuda if present else cpu; 'cuda' without CUDA is a DeviceError, not a silent CPU fallback."""
    import torch

    name = name or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was requested but torch sees no CUDA device",
                          fix="run on a GPU machine, or pass --device cpu where the suite allows the CPU")
    return dev


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
