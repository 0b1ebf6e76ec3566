"""Conformance of the model-loader registry (`benchmark.plan.loaders.LOADERS`, plugins included) and the model
manifests that name its loaders, checked per entry.

Every loader is used by at least one model manifest; every model manifest is routed somewhere (a loader of
`LOADERS`, a metric back-end registered under its name, or the released-f_t checkpoint loader). A manifest whose
weights need no download (`source: random` or `local`) loads offline through its loader into the documented kind of
object: a `models.DiffusionModel` with h-space access (`LOADER_KINDS` "diffusion"), or an open_clip
`(model, tokenizer)` pair ("clip"), or the authors' LPIPS tables as `models.LpipsCurves` ("curves"). A manifest whose weights are fetched (`hub`, `url`) or copied in by the user (`user`) is
only resolved.
"""

from __future__ import annotations

import pytest
import torch

import models as M
from benchmark.inputs.fetch import model_dir
from benchmark.inputs.manifests import ManifestRegistry
from benchmark.plan.loaders import LOADERS
from benchmark.plan.plugins import load_plugins
from metrics.backends import BACKENDS

load_plugins()  # the synthetic world registers synthetic-ddpm and synthetic-clip
REGISTRY = ManifestRegistry()
MODEL_REFS = REGISTRY.names("model")
# The kind of object each loader returns (docs/architecture.md): a loader registered without one here fails.
LOADER_KINDS = {"diffusers-unet2d": "diffusion", "diffusers-ldm": "diffusion", "ddpm-checkpoint": "diffusion",
                "synthetic-ddpm": "diffusion", "adm-checkpoint": "diffusion", "open-clip": "clip",
                "synthetic-clip": "clip",
                "lpips-tables": "curves"}
# Model manifests that no loader of LOADERS loads: the authors' released f_t (`models.load_official_ft`).
FT_CHECKPOINT_LOADER = "asyrp-deltablock"


def manifest(ref: str):
    return REGISTRY.get("model", ref).manifest


def source_type(ref: str) -> str:
    return manifest(ref).source.type


LOADED_REFS = [r for r in MODEL_REFS if manifest(r).loader in LOADERS]
OFFLINE_REFS = [r for r in LOADED_REFS if source_type(r) in ("random", "local")]
FETCHED_REFS = [r for r in LOADED_REFS if r not in OFFLINE_REFS]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_manifests_load_and_every_loader_has_a_documented_kind():
    assert REGISTRY.errors == []
    assert set(LOADER_KINDS) == set(LOADERS.names())
    assert {"tiny-ddpm-random@1", "tiny-clip-random@1", "synthetic-ddpm@1", "synthetic-ldm@1"} <= set(OFFLINE_REFS)


@pytest.mark.parametrize("loader", LOADERS.names())
def test_every_loader_is_used_by_a_model_manifest(loader):
    users = [r for r in MODEL_REFS if manifest(r).loader == loader]
    assert users, f"no model manifest names loader {loader!r}"


@pytest.mark.parametrize("ref", MODEL_REFS)
def test_every_model_manifest_is_routed_to_a_loader_or_a_metric_back_end(ref):
    m = manifest(ref)
    if m.loader in LOADERS or m.loader == FT_CHECKPOINT_LOADER:
        return
    # a metric back-end: looked up under `loader_args.backend`, else the manifest's name, in the kind(s) it declares
    name = m.loader_args.get("backend", m.name)
    declared = m.loader_args.get("kinds") or ([m.loader_args["kind"]] if "kind" in m.loader_args else None)
    if declared:
        missing = [k for k in declared if k not in BACKENDS or name not in BACKENDS[k]]
        assert not missing, f"model {ref}: no back-end {name!r} is registered under {missing}"
    else:
        assert any(name in BACKENDS[k] for k in BACKENDS), (
            f"model {ref}: loader {m.loader!r} is not in LOADERS and no back-end {name!r} is registered")


@pytest.mark.parametrize("ref", OFFLINE_REFS)
def test_offline_manifest_loads_into_its_documented_kind(ref):
    m = manifest(ref)
    loaded = LOADERS.get(m.loader)(m, device="cpu")
    if LOADER_KINDS[m.loader] == "diffusion":
        check_diffusion_model(loaded)
    else:
        check_clip(loaded)


@pytest.mark.parametrize("ref", FETCHED_REFS)
def test_fetched_manifest_resolves_to_its_files(ref):
    m = manifest(ref)
    assert m.loader in LOADER_KINDS and m.files, f"model {ref} lists no files to fetch"
    assert all(f.path for f in m.files) and model_dir(m).name == m.ref


def check_diffusion_model(model) -> None:
    assert isinstance(model, M.DiffusionModel) and isinstance(model.unet, M.HSpaceUNet)
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(1, 3, model.image_size, model.image_size, generator=g) * 2 - 1
    with torch.no_grad():
        latent = model.codec.encode(pixels)
        assert tuple(latent.shape[1:]) == model.latent_shape
        u = model.unet
        h, skips, temb = u.encode(latent, torch.tensor([model.num_train_timesteps // 2]))
        assert h.shape == (1, u.h_channels, u.h_size, u.h_size) and temb.shape == (1, u.temb_dim)
        eps = u.decode(h, skips, temb)
        assert eps.shape == latent.shape and torch.isfinite(eps).all()
        assert model.codec.decode(latent).shape == pixels.shape


def check_clip(loaded) -> None:
    assert isinstance(loaded, tuple) and len(loaded) == 2, "a CLIP loader returns (model, tokenizer)"
    model, tokenizer = loaded
    size = model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    with torch.no_grad():
        text = model.encode_text(tokenizer(["a face", "a smiling face"]))
        image = model.encode_image(torch.zeros(1, 3, size, size))
    assert text.ndim == 2 and text.shape[0] == 2 and image.shape == (1, text.shape[1])
