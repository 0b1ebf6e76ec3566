"""K f_t networks applied to one attribute-major batch, each to its own slice.

Rows [i·B, (i+1)·B) of h belong to the i-th active attribute; its f_t sees only those rows, so each network's
output and gradient are the ones it would have alone (the parameters are disjoint). Three ways to do it:

- `loop`: call each f_t on its slice (any f_t of the registry; each call has exactly the batch of a solo run);
- `vmap`: `torch.func.vmap` of `functional_call` over the stacked parameters (any f_t whose networks share one
  architecture and draw no random numbers: fewer, larger kernels);
- `grouped-conv`: the DeltaBlock (`conv`) as grouped 1×1 convolutions, a batched matmul for the time projection
  and one GroupNorm with K·G groups (GroupNorm's groups are contiguous channels, so K·G groups over K·C channels
  are exactly K separate GroupNorm(G) over C channels).

`auto` picks `grouped-conv` on CUDA when every f_t is a DeltaBlock of one shape (fewer kernel launches), else
`loop`. On the CPU the grouped convolutions are slower than the loop (measured on 512×8×8 h, K = 5: 86 vs 62 ms
forward + backward) and gave bit-identical outputs and gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from benchmark.core.errors import BenchError
from benchmark.core.registry import require_choice
from models.ft import DeltaBlock

FT_BATCHING = ("auto", "loop", "vmap", "grouped-conv")


class BatchedFt:
    """`BatchedFt(fts, mode)(h, temb, active)`: Δh for attribute-major rows of the attributes `active` (indices
    into `fts`), each slice by its own f_t."""

    def __init__(self, fts: Sequence[nn.Module], mode: str = "auto", *, device: torch.device | str = "cpu"):
        self.fts = list(fts)
        mode = require_choice("f_t batching", mode, list(FT_BATCHING))
        if mode == "auto":
            grouped = torch.device(device).type == "cuda" and _grouped_conv_problem(self.fts) is None
            mode = "grouped-conv" if grouped else "loop"
        problem = {"vmap": _vmap_problem, "grouped-conv": _grouped_conv_problem}.get(mode, lambda fts: None)(self.fts)
        if problem:
            raise BenchError(f"f_t batching {mode!r} cannot batch these f_t: {problem}",
                             fix="use ft_batching='loop' (works for every f_t)")
        self.mode = mode

    def __call__(self, h: torch.Tensor, temb: torch.Tensor, active: Sequence[int]) -> torch.Tensor:
        """Δh, attribute-major, for h and temb holding len(active)·B rows."""
        k = len(active)
        if h.shape[0] % k:
            raise BenchError(f"{h.shape[0]} h rows cannot be split into {k} attribute slices")
        if self.mode == "loop" or k == 1:
            return _cat([self.fts[a](hs, ts) for a, hs, ts in zip(active, h.chunk(k), temb.chunk(k), strict=True)])
        if self.mode == "vmap":
            return _vmapped(self.fts, h, temb, active)
        return _grouped_delta_blocks([self.fts[a] for a in active], h, temb)

    def shifted(self, h: torch.Tensor, temb: torch.Tensor, active: Sequence[int], *, shared: bool = False
                ) -> torch.Tensor:
        """h + Δh for every active attribute, attribute-major. `shared`: h and temb hold B rows that every
        attribute shares (its rows are the same h). The loop feeds each f_t the very tensor a solo run would
        (same values *and* memory layout: the UNet's h comes out channels-last-strided, and a contiguous copy
        would pick other kernels and round differently)."""
        k = len(active)
        if self.mode == "loop" or k == 1:
            if shared:
                return _cat([h + self.fts[a](h, temb) for a in active])
            return _cat([hs + self.fts[a](hs, ts) for a, hs, ts in zip(active, h.chunk(k), temb.chunk(k),
                                                                      strict=True)])
        if shared:
            h, temb = h.repeat(k, 1, 1, 1), temb.repeat(k, 1)
        return h + self(h, temb, active)


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _vmap_problem(fts: list[nn.Module]) -> str | None:
    first = fts[0]
    shapes = {n: p.shape for n, p in first.named_parameters()}
    for ft in fts[1:]:
        if type(ft) is not type(first) or {n: p.shape for n, p in ft.named_parameters()} != shapes:
            return "they do not share one architecture"
    for ft in fts:
        if ft.training and any(isinstance(m, nn.Dropout) and m.p > 0 for m in ft.modules()):
            return "they use dropout in training (random numbers inside vmap)"
    return None


def _vmapped(fts, h, temb, active) -> torch.Tensor:
    k = len(active)
    template = fts[active[0]]
    names = [n for n, _ in template.named_parameters()]
    params = {n: torch.stack([dict(fts[a].named_parameters())[n] for a in active]) for n in names}
    buffers = {n: torch.stack([dict(fts[a].named_buffers())[n] for a in active])
               for n, _ in template.named_buffers()}

    def one(p, b, hh, tt):
        return functional_call(template, (p, b), (hh, tt))

    out = vmap(one)(params, buffers, h.unflatten(0, (k, -1)), temb.unflatten(0, (k, -1)))
    return out.flatten(0, 1)


def _grouped_conv_problem(fts: list[nn.Module]) -> str | None:
    if not all(type(ft) is DeltaBlock for ft in fts):
        return "grouped-conv is the DeltaBlock ('conv') fast path and these are not all DeltaBlocks"
    signature = {(ft.conv1.in_channels, ft.temb_proj.in_features, ft.norm2.num_groups, ft.norm2.eps, ft.use_temb)
                 for ft in fts}
    if len(signature) > 1:
        return "the DeltaBlocks differ in shape, GroupNorm or use_temb"
    return None


def _grouped_delta_blocks(blocks: list[DeltaBlock], h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
    """DeltaBlock.forward for K blocks at once: rows attribute-major in, attribute-major out."""
    k, first = len(blocks), blocks[0]
    c = first.conv1.out_channels
    x = h.unflatten(0, (k, -1)).transpose(0, 1).flatten(1, 2)  # B × (K·C) × H × W, attribute-major channels

    def cat(get):
        return torch.cat([get(b) for b in blocks])

    x = F.conv2d(x, cat(lambda b: b.conv1.weight), cat(lambda b: b.conv1.bias), groups=k)
    if first.use_temb and temb is not None:
        t = F.silu(temb).unflatten(0, (k, -1))  # K × B × D
        weight = torch.stack([b.temb_proj.weight for b in blocks])  # K × C × D
        bias = torch.stack([b.temb_proj.bias for b in blocks]).unsqueeze(1)  # K × 1 × C
        proj = torch.baddbmm(bias, t, weight.transpose(1, 2))  # K × B × C
        x = x + proj.transpose(0, 1).flatten(1)[:, :, None, None]
    x = F.group_norm(x, k * first.norm2.num_groups, cat(lambda b: b.norm2.weight), cat(lambda b: b.norm2.bias),
                     first.norm2.eps)
    x = F.conv2d(F.silu(x), cat(lambda b: b.conv2.weight), cat(lambda b: b.conv2.bias), groups=k)
    return x.unflatten(1, (k, c)).transpose(0, 1).flatten(0, 1)
