"""Forgers: one per pinned model, each writing that model's files in their published format and layout, full
size, with seeded random weights (`FORGERS`, keyed by model manifest name; the authors' f_t and LPIPS tables
without a fixture copy: `benchmark.rehearsal.forge_asyrp`).

A forger is `fn(manifest, seed, dest) -> None` where `dest(path)` is where the file the manifest lists as `path`
must be written. The authors' released f_t with a published digest are real and small; they are copied from the
shared fixtures instead.
Formats (and where each was read) are in `benchmark.rehearsal.formats` and in each forger's docstring.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from benchmark.core.atomic import atomic_path, torch_save, write_text
from benchmark.core.errors import BenchError
from benchmark.core.registry import Registry
from benchmark.rehearsal import forge_asyrp, formats
from benchmark.rehearsal.fill import fill_module_, fill_state_dict, meta_build

Dest = Callable[[str], Path]
FORGERS: Registry[Callable[..., None]] = Registry("forger")


def _json(path: Path, doc: dict) -> None:
    write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _only(manifest, suffix: str) -> str:
    names = [f.path for f in manifest.files if f.path.endswith(suffix)]
    if len(names) != 1:
        raise BenchError(f"{manifest.ref}: expected one file ending in {suffix}, the manifest lists "
                         f"{[f.path for f in manifest.files]}", fix="update the forger with the manifest")
    return names[0]


#: SDEdit's ermongroup DDPMs (model manifest -> the authors' config, model section).
SDEDIT_CONFIGS = {"sdedit-celebahq": formats.CELEBA_HQ_DDPM, "sdedit-church-outdoor": formats.LSUN_CHURCH_DDPM,
                  "sdedit-bedroom": formats.LSUN_BEDROOM_DDPM}


def forge_sdedit(manifest, seed: int, dest: Dest) -> None:
    """`celeba_hq.ckpt`, `church_outdoor.ckpt`, `bedroom.ckpt`: a bare state dict of the ermongroup DDPM `Model`
    (SDEdit loads it with `model.load_state_dict(ckpt)`), fp32, keys and shapes from
    `formats.ermongroup_ddpm_shapes` of the model's config."""
    shapes = formats.ermongroup_ddpm_shapes(**SDEDIT_CONFIGS[manifest.name])
    state = fill_state_dict({k: torch.empty(s) for k, s in shapes.items()}, seed)
    torch_save(dest(_only(manifest, ".ckpt")), state)


for _name in SDEDIT_CONFIGS:
    FORGERS.register(_name, forge_sdedit)
for _name in ("asyrp-lpips-church", "asyrp-lpips-bedroom"):
    FORGERS.register(_name, forge_asyrp.forge_lpips_tables)


def _unet_attention_prefixes(unet) -> list[str]:
    from diffusers.models.attention_processor import Attention

    return [name for name, m in unet.named_modules() if isinstance(m, Attention)]


def _diffusers_bin(model_class, config: dict, seed: int, path: Path) -> None:
    """A diffusers model's `.bin` as the 2022 Hub snapshots hold it: torch.save of the state dict, attention
    parameters under their pre-2023 names."""
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    model = fill_module_(meta_build(model_class, **kwargs), seed)
    state = formats.with_deprecated_attention_names(model.state_dict(), _unet_attention_prefixes(model))
    torch_save(path, state)


@FORGERS.register("ddpm-ema-celebahq-256")
def forge_ddpm_ema(manifest, seed: int, dest: Dest) -> None:
    """google/ddpm-ema-celebahq-256: `config.json` + `diffusion_pytorch_model.bin` (a UNet2DModel folder)."""
    from diffusers import UNet2DModel

    _json(dest("config.json"), formats.DDPM_EMA_CELEBAHQ_CONFIG)
    _diffusers_bin(UNet2DModel, formats.DDPM_EMA_CELEBAHQ_CONFIG, seed, dest("diffusion_pytorch_model.bin"))


@FORGERS.register("ldm-celebahq-256")
def forge_ldm(manifest, seed: int, dest: Dest) -> None:
    """CompVis/ldm-celebahq-256: the LDMPipeline folder (model_index, scheduler, unet, vqvae)."""
    from diffusers import UNet2DModel, VQModel

    _json(dest("model_index.json"), formats.LDM_CELEBAHQ_MODEL_INDEX)
    _json(dest("scheduler/scheduler_config.json"), formats.LDM_CELEBAHQ_SCHEDULER)
    _json(dest("unet/config.json"), formats.LDM_CELEBAHQ_UNET)
    _json(dest("vqvae/config.json"), formats.LDM_CELEBAHQ_VQVAE)
    _diffusers_bin(UNet2DModel, formats.LDM_CELEBAHQ_UNET, seed, dest("unet/diffusion_pytorch_model.bin"))
    _diffusers_bin(VQModel, formats.LDM_CELEBAHQ_VQVAE, seed + 1, dest("vqvae/diffusion_pytorch_model.bin"))


def _forge_clip(manifest, seed: int, dest: Dest) -> None:
    """OpenAI's CLIP release: a TorchScript archive (`benchmark.rehearsal.forge_clip`)."""
    from benchmark.rehearsal.forge_clip import forge_openai_clip

    name = _only(manifest, ".pt")
    forge_openai_clip(dest(name), seed, name)


for _name in ("clip-vit-b16-openai", "clip-vit-b32-openai", "clip-vit-l14-openai"):
    FORGERS.register(_name, _forge_clip)


@FORGERS.register("bisenet-79999")
def forge_bisenet(manifest, seed: int, dest: Dest) -> None:
    """zllrunning's `79999_iter.pth`: torch.save of the BiSeNet state dict (train.py saves
    `net.module.state_dict()`), keys as `metrics.backends.bisenet` writes zllrunning's module names, fp32."""
    from metrics.backends.bisenet import BiSeNet

    net = fill_module_(meta_build(BiSeNet, 19), seed, gain=2 ** 0.5)
    torch_save(dest(_only(manifest, ".pth")), net.state_dict())


@FORGERS.register("inception-v3-compat")
def forge_inception(manifest, seed: int, dest: Dest) -> None:
    """torch-fidelity's Inception `.pth`: its FeatureExtractorInceptionV3 state dict, convolutions re-initialised
    kaiming-normal (offline-assets.md: default init collapses the features, FID ≈ 0)."""
    from metrics.backends.features import random_inception_state_dict

    torch_save(dest(_only(manifest, ".pth")), random_inception_state_dict(seed))


@FORGERS.register("arcface-buffalo-l")
def forge_buffalo(manifest, seed: int, dest: Dest) -> None:
    """insightface's `buffalo_l.zip` (`benchmark.rehearsal.forge_arcface`)."""
    from benchmark.rehearsal.forge_arcface import write_buffalo_zip

    write_buffalo_zip(dest(_only(manifest, ".zip")), seed)


@FORGERS.register("segformer-face-parsing")
def forge_segformer(manifest, seed: int, dest: Dest) -> None:
    """jonathandinu/face-parsing: a transformers SegFormer (MiT-B5) folder, `model.safetensors`, CelebAMask-HQ
    labels in `config.json`, a SegformerImageProcessor config."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from benchmark.core.atomic import save_safetensors
    from metrics.labels import CELEBAMASK_HQ

    labels = dict(enumerate(CELEBAMASK_HQ.classes))
    config = SegformerConfig(num_channels=3, num_encoder_blocks=4, depths=[3, 6, 40, 3], sr_ratios=[8, 4, 2, 1],
                             hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
                             decoder_hidden_size=768, num_labels=len(labels), id2label=labels,
                             label2id={v: k for k, v in labels.items()},
                             architectures=["SegformerForSemanticSegmentation"])
    model = fill_module_(meta_build(SegformerForSemanticSegmentation, config), seed)
    _json(dest("config.json"), config.to_dict())
    _json(dest("preprocessor_config.json"), {
        "do_normalize": True, "do_reduce_labels": False, "do_rescale": True, "do_resize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "image_processor_type": "SegformerImageProcessor", "resample": 2, "rescale_factor": 1 / 255,
        "size": {"height": 512, "width": 512}})
    save_safetensors(dest("model.safetensors"), {k: v.contiguous() for k, v in model.state_dict().items()},
                     metadata={"format": "pt"})


def copy_released_ft(manifest, seed: int, dest: Dest) -> None:
    """The authors' released f_t are real (shared fixtures); copied, never forged. `seed` is unused."""
    from benchmark.core.paths import fixtures_dir

    for f in manifest.files:
        source = fixtures_dir() / "asyrp_official" / "checkpoints" / f.path
        if not source.is_file():
            raise BenchError(f"{manifest.ref}: the released checkpoint {source} is not in the shared fixtures",
                             fix="set ASYRP_FIXTURES to the folder holding asyrp_official/checkpoints")
        with atomic_path(dest(f.path)) as tmp:
            shutil.copyfile(source, tmp)


def forger_for(manifest) -> Callable[..., None]:
    """The forger of a model manifest. Released f_t (loader asyrp-deltablock) with a published digest are the
    fixtures' real files, copied; those without one (no fixture copy: LSUN, most CelebA-HQ attributes) are forged
    in the authors' layout (`forge_asyrp`)."""
    if manifest.loader == "asyrp-deltablock":
        return copy_released_ft if all(f.sha256 for f in manifest.files) else forge_asyrp.forge_released_ft
    return FORGERS.get(manifest.name)
