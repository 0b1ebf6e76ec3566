"""Model manifests → objects: the model-loader registry, keyed by a model manifest's `loader`.

Each loader takes `(manifest, *, device, weights_root=None)` and returns the loaded object (a
`models.DiffusionModel`, an open_clip model with its tokenizer). Digests were checked by the pre-run checks
(`benchmark.inputs.validate`) before any loader runs. Metric back-ends are loaded by `metrics.backends`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.core.errors import MissingWeightsError
from benchmark.core.registry import Registry
from benchmark.inputs.fetch import fetch_command, local_path, model_dir
from benchmark.inputs.manifests import LocalSource

# loader name (a model manifest's `loader`) -> fn(manifest, *, device, weights_root) -> object
LOADERS: Registry[Callable[..., Any]] = Registry("model loader")


def is_random(manifest) -> bool:
    """A tiny test model built from a seed and a config, not read from a file."""
    return getattr(manifest.source, "type", None) == "random"


def weights_file(manifest, weights_root: Path | None = None) -> Path:
    """The one file a single-file loader reads."""
    files = manifest.files
    if len(files) != 1:
        raise MissingWeightsError(f"model {manifest.ref} lists {len(files)} files; its loader expects exactly one")
    return local_path(manifest, files[0], weights_root)


@LOADERS.register("diffusers-unet2d")
def _diffusers_unet2d(manifest, *, device, weights_root=None):
    """A pixel DDPM `UNet2DModel` with the authors' linear schedule (never the Hub scheduler's x0 clipping)."""
    import models

    if is_random(manifest):
        return models.random_diffusion_model(manifest.source.config, manifest.source.seed,
                                             name=manifest.ref).to(device)
    # Digests were checked before any loader runs (benchmark.inputs.validate).
    return models.load_ddpm_celebahq(model_dir(manifest, weights_root), verify=False, device=device)


@LOADERS.register("diffusers-ldm")
def _diffusers_ldm(manifest, *, device, weights_root=None):
    """A latent diffusion model (UNet2DModel + VQModel/AutoencoderKL + scheduler config) from a diffusers
    snapshot folder: fetched (hub), shipped in the repo (local: the folder holding all listed files), or random.
    `loader_args.scaling_factor` overrides the autoencoder config's latent scale."""
    import os

    import models

    scaling = manifest.loader_args.get("scaling_factor")
    if is_random(manifest):
        config = dict(manifest.source.config)
        if scaling is not None:
            config["scaling_factor"] = scaling
        return models.random_latent_diffusion_model(config, manifest.source.seed, name=manifest.ref).to(device)
    if getattr(manifest.source, "type", None) == "local":
        root = Path(os.path.commonpath([local_path(manifest, f) for f in manifest.files]))
    else:
        root = model_dir(manifest, weights_root)
    # Digests were checked before any loader runs (benchmark.inputs.validate).
    return models.load_latent_diffusion(root, scaling_factor=scaling, device=device, name=manifest.ref,
                                        fetch_hint=f"run `{fetch_command([manifest.ref])}` (on a machine with "
                                                   "internet)")


@LOADERS.register("ddpm-checkpoint")
def _ddpm_checkpoint(manifest, *, device, weights_root=None):
    """An SDEdit DDPM checkpoint (ermongroup layout: CelebA-HQ, LSUN church, LSUN bedroom), converted to a
    `UNet2DModel`. `loader_args.config` names the authors' config (`models.ERMONGROUP_CONFIGS`: celeba.yml,
    church.yml, bedroom.yml); `loader_args.arch` (+ `schedule`) describes another one inline, named after the
    manifest (tests, forged rehearsal checkpoints)."""
    import models

    args = manifest.loader_args
    config = (models.ErmongroupConfig.from_args(manifest.ref, args["arch"], args.get("schedule"))
              if "arch" in args else args.get("config", "celeba.yml"))
    # Digests were checked before any loader runs (benchmark.inputs.validate).
    return models.load_ermongroup_ddpm(weights_file(manifest, weights_root), config, device=device,
                                       missing_fix=f"run `{fetch_command([manifest.ref])}`")


@LOADERS.register("adm-checkpoint")
def _adm_checkpoint(manifest, *, device, weights_root=None):
    """An iDDPM / ADM (guided-diffusion `UNetModel`) state dict, converted to a `UNet2DModel` by
    `models.from_adm_checkpoint`: AFHQ-dog (ILVR) and METFACES (P2), user-supplied files. `loader_args.arch` names
    an `models.ADM_ARCHS` entry or gives the `adm_unet_config` arguments inline (tests); `loader_args.schedule`
    (beta_start, beta_end, num_diffusion_timesteps; default the authors' linear 1e-4 -> 0.02, T = 1000), as the
    `ddpm-checkpoint` loader reads it. A learned σ (6 output channels) is left to `HSpaceUNet`, which returns the
    ε half, as the authors' `denoising_step` does."""
    import torch

    import models

    args = manifest.loader_args
    arch = _adm_arch(manifest.ref, args.get("arch"))
    path = weights_file(manifest, weights_root)
    _check_weights_digest(manifest, path)
    state = _load_state_dict(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        from benchmark.core.errors import DataError

        raise DataError(f"{path} holds a {type(state).__name__}, not the bare `UNetModel` state dict the authors "
                        "load (`model.load_state_dict(torch.load(path))`)",
                        fix="supply the model file itself, not a training checkpoint")
    schedule = models.ErmongroupConfig.from_args(manifest.ref, {}, args.get("schedule"))
    unet = models.HSpaceUNet(models.from_adm_checkpoint(state, **arch))
    model = models.DiffusionModel(unet, schedule.alphas_cumprod(), int(arch["image_size"]), models.PixelCodec(),
                                  name=manifest.ref)
    return model.to(device)


def _load_state_dict(path: Path):
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        from benchmark.core.errors import BenchError

        raise BenchError(f"{path} cannot be loaded safely (weights_only=True refused it): {e}",
                         fix="supply the plain state dict the authors load") from None


def _adm_arch(ref: str, arch) -> dict:
    import models

    if isinstance(arch, dict):
        return {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
    if arch not in models.ADM_ARCHS:
        from benchmark.core.errors import UnknownNameError
        from benchmark.core.registry import unknown_name_message

        raise UnknownNameError(unknown_name_message(f"ADM architecture of {ref}", str(arch), list(models.ADM_ARCHS)),
                               fix="name one of models.ADM_ARCHS in loader_args.arch, or give the arguments inline")
    return dict(models.ADM_ARCHS[arch])


def _check_weights_digest(manifest, path: Path) -> None:
    """The file read is the one pinned or locked (a user-supplied file can change between validate and the
    load); a file nobody has recorded yet was warned about by validate and is recorded by `lock`."""
    from benchmark.core.errors import DigestMismatchError
    from benchmark.core.hashing import sha256_file
    from benchmark.inputs.lock import LockFile, model_key

    f = manifest.files[0]
    expected = f.sha256 or LockFile.load().digest(model_key(manifest.ref), f.path)
    if expected is not None and (actual := sha256_file(path)) != expected:
        raise DigestMismatchError(f"{path} has sha256 {actual}, expected {expected} (model {manifest.ref})",
                                  fix=f"put the file recorded for {manifest.ref} back at {path}")


@LOADERS.register("lpips-tables")
def _lpips_tables(manifest, *, device=None, weights_root=None):
    """The authors' LPIPS tables (`utils/<prefix>_LPIPS_distance_*.tsv`) as `models.LpipsCurves`."""
    import models

    return models.LpipsCurves.load(model_dir(manifest, weights_root), manifest.loader_args["prefix"])


@LOADERS.register("open-clip")
def _open_clip(manifest, *, device, weights_root=None):
    """(model, tokenizer) of open_clip, random for tests or from the fetched weights file. Real weights go through
    the S_dir back-ends' loader (`metrics.backends.clip.build_openai_clip`), so the loss's CLIP and the metric's
    read a file the same way (TorchScript or state dict, QuickGELU as `loader_args.quick_gelu` says)."""
    import models

    if is_random(manifest):
        model, tokenizer = models.random_open_clip(manifest.source.config, manifest.source.seed)
        return model.to(device), tokenizer
    import open_clip

    from benchmark.inputs.lock import LockFile, model_key
    from metrics.backends.clip import build_openai_clip

    args = manifest.loader_args
    name = args["model_name"]
    path = weights_file(manifest, weights_root)
    pinned = manifest.files[0].sha256 or LockFile.load().digest(model_key(manifest.ref), manifest.files[0].path)
    model = build_openai_clip(name, path, sha256=pinned, quick_gelu=bool(args.get("quick_gelu", False)),
                              format=args.get("format", "auto"))
    return model.eval().to(device), open_clip.get_tokenizer(name)


def backend_weights(manifest) -> Path:
    """A back-end's weights: the shipped file for weights in the repo, else the folder `fetch` fills."""
    if isinstance(manifest.source, LocalSource) and len(manifest.files) == 1:
        return local_path(manifest, manifest.files[0])
    return model_dir(manifest)
