"""Speed options, each off by default, recorded with every result that used them (`FastPath`).

The default is the authors' arithmetic: fp32 everywhere, no TF32. Each option changes the numbers only at the
rounding level (bf16, TF32) or not at all in exact arithmetic (channels_last, compile, CUDA graphs); its measured
effect is in docs/speed.md. `activated(model, fast)` applies the options to a `DiffusionModel` for the duration of a
`with` block and restores everything afterwards (torch flags, the UNet's memory format and its encode/decode).

- `precision="bf16"`: `torch.autocast(bfloat16)` over the UNet, f_t and the CLIP image encoder; f_t's weights,
  gradients and optimiser state stay fp32 (the master copy), and so do ε, the DDIM step and the losses.
- `tf32`: "off" = IEEE fp32 matmuls and cuDNN convolutions (the default); "torch-default" = whatever PyTorch does
  when nobody sets the flags (cuDNN convolutions in TF32, matmuls in fp32 — what the code did before this option
  existed, on Ampere and later GPUs); "on" = both in TF32. Only CUDA reads these flags.
- `cudnn_benchmark`: let cuDNN time its algorithms (faster; the chosen kernel, and so the rounding, can vary).
- `channels_last`: the UNet's weights and inputs in NHWC memory layout.
- `compile`: `torch.compile` of the UNet's encode and decode halves.
- `cuda_graphs`: `compile` with mode "reduce-overhead" (CUDA graph trees: a graph per input shape).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, model_validator

from benchmark.core.errors import BenchError

GPU_ONLY_HINT = "run on a CUDA device (--device cuda), or leave this option at its default"


class FastPath(BaseModel):
    """Speed options (frozen; `model_dump()` goes into results). Every field's default is the authors' fp32."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    precision: Literal["fp32", "bf16"] = "fp32"
    tf32: Literal["off", "torch-default", "on"] = "off"
    cudnn_benchmark: bool = False
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False

    @model_validator(mode="after")
    def _graphs_need_compile(self):
        if self.cuda_graphs and not self.compile:
            raise ValueError("cuda_graphs are captured by torch.compile(mode='reduce-overhead'); set compile=True")
        return self

    @property
    def is_default(self) -> bool:
        return self == FastPath()

    def check(self, device: torch.device | str) -> None:
        """Refuse, naming the option, what needs a GPU on another device."""
        device = torch.device(device)
        if device.type == "cuda":
            return
        gpu_only = [name for name, on in (("tf32='on'", self.tf32 == "on"), ("cuda_graphs", self.cuda_graphs),
                                          ("cudnn_benchmark", self.cudnn_benchmark)) if on]
        if gpu_only:
            raise BenchError(f"{', '.join(gpu_only)} only work on a CUDA device, and this runs on {device.type}",
                             fix=GPU_ONLY_HINT)

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager:
        """The autocast context of `precision` (a no-op for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)

    def record(self) -> dict[str, Any]:
        """The options plus the torch flags they imply, for results."""
        return {**self.model_dump(), "torch": torch.__version__, "flags": _flags_for(self)}


# What a caller that passes no FastPath gets: no flag set, nothing converted (on CUDA, PyTorch's own default then
# runs cuDNN convolutions in TF32).
UNTOUCHED = FastPath(tf32="torch-default")


def _flags_for(fast: FastPath) -> dict[str, bool | None]:
    """The (legacy-API) torch flags `fast` sets; None = left as PyTorch has them."""
    if fast.tf32 == "torch-default":
        return {"cuda.matmul.allow_tf32": None, "cudnn.allow_tf32": None,
                "cudnn.benchmark": True if fast.cudnn_benchmark else None}
    on = fast.tf32 == "on"
    return {"cuda.matmul.allow_tf32": on, "cudnn.allow_tf32": on, "cudnn.benchmark": fast.cudnn_benchmark}


_FLAG_OBJECTS = {
    "cuda.matmul.allow_tf32": (torch.backends.cuda.matmul, "allow_tf32"),
    "cudnn.allow_tf32": (torch.backends.cudnn, "allow_tf32"),
    "cudnn.benchmark": (torch.backends.cudnn, "benchmark"),
}


@contextlib.contextmanager
def _torch_flags(fast: FastPath) -> Iterator[None]:
    saved = {}
    try:
        for name, value in _flags_for(fast).items():
            if value is None:
                continue
            owner, attr = _FLAG_OBJECTS[name]
            try:
                saved[name] = getattr(owner, attr)
            except RuntimeError as e:  # flags were set through torch's newer fp32_precision API
                raise BenchError(f"cannot read torch.backends.{name}: {e}",
                                 fix="set TF32 only through FastPath.tf32, not torch's fp32_precision API") from None
            setattr(owner, attr, value)
        yield
    finally:
        for name, value in saved.items():
            owner, attr = _FLAG_OBJECTS[name]
            setattr(owner, attr, value)


def _channels_last_encode(encode):
    def encode_nhwc(x: torch.Tensor, timesteps: torch.Tensor):
        return encode(x.contiguous(memory_format=torch.channels_last), timesteps)

    return encode_nhwc


def _cloned_outputs(fn):
    """CUDA graph trees reuse a graph's output memory on its next replay; the loops keep ε of one decode while
    running the next, so outputs are copied out."""

    def run(*args):
        return _clone_tree(fn(*args))

    return run


def _clone_tree(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple | list):
        return type(value)(_clone_tree(v) for v in value)
    return value


def mark_step(fast: FastPath | None) -> None:
    """Tell CUDA graph trees that a new iteration starts (needed between training steps); no-op otherwise."""
    if fast is not None and fast.cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()


@contextlib.contextmanager
def activated(model, fast: FastPath | None) -> Iterator[FastPath]:
    """Apply `fast` to `model` (a `DiffusionModel`) inside the block; restores flags, memory format and the UNet's
    encode/decode on exit. Autocast is not entered here: callers wrap their forward passes in `fast.autocast`.

    `fast=None` changes nothing (it is `UNTOUCHED`: torch's flags stay as the process has them), which is what
    the code did before these options existed; pass `FastPath()` for strict fp32."""
    fast = fast or UNTOUCHED
    fast.check(model.device)
    unet = model.unet
    saved = (unet._encode_fn, unet._decode_fn)
    with _torch_flags(fast):
        try:
            encode, decode = unet._encode_fn, unet._decode_fn
            if fast.channels_last:
                unet.unet.to(memory_format=torch.channels_last)
                encode = _channels_last_encode(encode)
            if fast.compile:
                mode = "reduce-overhead" if fast.cuda_graphs else None
                encode, decode = torch.compile(encode, mode=mode), torch.compile(decode, mode=mode)
            if fast.cuda_graphs:
                encode, decode = _cloned_outputs(encode), _cloned_outputs(decode)
            unet._encode_fn, unet._decode_fn = encode, decode
            yield fast
        finally:
            unet._encode_fn, unet._decode_fn = saved
            if fast.channels_last:
                unet.unet.to(memory_format=torch.contiguous_format)
