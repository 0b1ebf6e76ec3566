"""Whether a suite's released f_t checkpoints fit its base model, checked before any compute.

A released f_t (the authors' DeltaBlock) acts on the h-space it was trained on: 512 channels for the CelebA-HQ
DDPM. A profile that swaps in another base model (a tiny random one, for a CPU wiring check) while keeping the
checkpoints cannot edit with them; without this check the run would fail at its edit stage, after inverting every
image. The base model's channel count is known without loading it only where its manifest declares the
architecture (a `random` source's config); elsewhere the pairing is the released one and is not checked here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmark.core.errors import BenchError
from benchmark.inputs.manifests import RandomSource, ResolvedSuite, parse_ref


def declared_h_channels(model) -> int | None:
    """The h-space channels a model manifest declares (the last of a random U-Net's `block_out_channels`)."""
    if isinstance(model.source, RandomSource) and model.source.config.get("block_out_channels"):
        return int(model.source.config["block_out_channels"][-1])
    return None


def checkpoint_channels(path: Path) -> int | None:
    """The h channels a released f_t checkpoint acts on (its time-embedding projection's output size)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the loader, with its own message
        return None
    state = payload.get("0", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        return None
    for key in ("temb_proj.weight", "emb_layers.1.weight"):  # DeltaBlock, ResDeltaBlock
        if key in state and getattr(state[key], "ndim", 0) == 2:
            return int(state[key].shape[0])
    return None


def ft_misfit(resolved: ResolvedSuite, files, attributes: Sequence[str] | None,
              other_suites: Sequence[str] = ()) -> BenchError | None:
    """The error when a selected attribute's released f_t (present on disk) does not fit the base model."""
    base = resolved.base_model
    channels = declared_h_channels(base.manifest) if base is not None else None
    if channels is None or not resolved.ft_checkpoints:
        return None
    wanted = {parse_ref(a)[0] for a in attributes} if attributes else set(resolved.ft_checkpoints)
    present = {f.model: f.path for f in files if f.state in ("ok", "unverified")}
    misfits: dict[int, list[str]] = {}
    for name, ck in resolved.ft_checkpoints.items():
        got = checkpoint_channels(present[ck.ref]) if name in wanted and ck.ref in present else None
        if got is not None and got != channels:
            misfits.setdefault(got, []).append(ck.ref)
    if not misfits:
        return None
    listed = "; ".join(f"{', '.join(refs)} act on a {got}-channel h-space" for got, refs in misfits.items())
    return BenchError(f"the released f_t do not fit the base model {base.ref}, whose h-space has {channels} channels "
                      f"({listed}): the run would stop at its edit stage", fix=_fix(resolved, other_suites))


def _fix(resolved: ResolvedSuite, other_suites: Sequence[str]) -> str:
    name, profile = resolved.suite.name, resolved.profile
    if profile is None:
        return "use the base model the checkpoints were trained on (their manifests' provenance names it)"
    also = (f"; for a CPU check of the pipeline, a suite that trains its f_t: `python run_all.py run --suite "
            f"{other_suites[0]} --profile {profile} --device cpu`" if other_suites else "")
    return (f"run `{name}` without `--profile {profile}`: its own base model is the one the checkpoints were trained "
            f"on (it needs a GPU){also}; `--profile {profile}` still serves `fetch` and `lock`")
