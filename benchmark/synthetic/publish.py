"""Publish trained synthetic-world models: copy the safetensors into `benchmark/synthetic/assets/`, write their
model manifests (`manifests/models/synthetic-*.yaml`, sha256 + size) and keep the training logs under
`results/synthetic-world/training/`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from benchmark.core.atomic import atomic_path, write_json, write_text
from benchmark.core.errors import BenchError
from benchmark.core.hashing import sha256_file
from benchmark.core.paths import REPO_ROOT, RESULTS_DIR, manifests_dir

ASSETS = Path("benchmark/synthetic/assets")
MAX_TOTAL_BYTES = 30_000_000  # the shipped weights' budget: at most 30 MB for everything under assets/, the LDM included
# Stored as float16 (loaded into float32 parameters by load_state_dict): the CLIP is the largest file, and halving it
# keeps the total under the limit; the DDPM stays float32 so DDIM inversion is not perturbed by weight rounding.
STORE_HALF = frozenset({"clip"})
# From version 2 on, the CLIP's token embedding keeps only the rows training changed (clip_model.keep_token_rows
# says why); the file records the rows' ids, and loading refuses text that needs a row left out. Without this, two
# CLIP versions would not fit the limit beside the other models.
STORE_TRAINED_TOKEN_ROWS = frozenset({"clip"})

# name -> (loader, loader_args, description)
MODELS = {
    "ddpm": ("synthetic-ddpm", {"codec": "pixel-unshuffle-2"},
             "The synthetic world's DDPM: a diffusers UNet2DModel (3 levels, h-space 128×8×8) on 64² faces seen "
             "as 32×32×12 by an exact 2×2 pixel-unshuffle; authors' linear β schedule, T = 1000; trained on "
             "renders without green skin (the unseen attribute)."),
    "clip": ("synthetic-clip", {},
             "The synthetic world's CLIP: open_clip's CLIP class (ViT 64², patch 8; text width 64), trained "
             "contrastively on captions of renders including green 'zombie' faces."),
    "oracle": ("metric-backend", {"kinds": ["factor-oracle", "identity", "fid-features"]},
               "The synthetic world's oracle: a CNN measuring every factor (attribute-shift, FID/KID features) and "
               "an identity embedding (ID)."),
    "segmenter": ("metric-backend", {"kind": "face-parser"},
                  "The synthetic world's segmenter: 7 classes in renderer.CLASSES order (SC)."),
}


def manifest_doc(name: str, path: Path, meta: dict, version: int = 1) -> dict:
    loader, args, description = MODELS[name]
    wall = meta.get("wall_s")
    stored = " (stored as float16" + (", trained token rows only" if _keeps_trained_rows(name, version) else "") + ")"
    return {
        "schema_version": 1, "kind": "model", "name": f"synthetic-{name}", "version": version,
        "description": description + _recipe_description(meta),
        "license": "MIT (this project; trained on renders of this project)",
        "provenance": f"python -m benchmark.synthetic.train --out DIR --only {name}{_recipe_flags(meta)} (seeded; "
                      f"{wall} s wall on the machine that trained it); then `python -m benchmark.synthetic.train "
                      f"publish --out DIR{_version_flag(version)}`{stored if name in STORE_HALF else ''}. "
                      f"Training log: results/synthetic-world/training/{_training_log_name(name, version)}",
        "loader": loader, "loader_args": args,
        "source": {"type": "local", "files": [{"path": path.relative_to(REPO_ROOT).as_posix(),
                                               "sha256": sha256_file(path), "size": path.stat().st_size}]},
    }


def _recipe_flags(meta: dict) -> str:
    """The train command's options that the model's metadata records, as flags that rerun its recipe."""
    # the weights depend on the intra-op thread count (reduction order), so a rerun must use the same one
    flags = f" --threads {meta['threads']}" if meta.get("threads", 1) != 1 else ""
    train = meta.get("train", {})
    if train.get("skin_chroma_jitter"):
        flags += f" --clip-skin-chroma-jitter {train['skin_chroma_jitter']}"
    if train.get("ddpm_versions"):
        flags += " --clip-ddpm-versions"
    return flags


def _recipe_description(meta: dict) -> str:
    train = meta.get("train", {})
    parts = []
    if train.get("skin_chroma_jitter"):
        parts.append(f"each render's skin shifted by up to ±{train['skin_chroma_jitter']} along the colour axis that "
                     "neither tan nor green moves, captions unchanged")
    if train.get("ddpm_versions"):
        parts.append("one SDEdit version of each render by synthetic-ddpm@1, captioned by synthetic-oracle@1's "
                     "reading of it")
    return f" Also trained on: {'; '.join(parts)} (docs/synthetic.md)." if parts else ""


def _version_flag(version: int) -> str:
    return f" --version {version}" if version != 1 else ""


def shipped_name(name: str, version: int) -> Path:
    """Where version `version` of a model's weights is shipped: version 1 keeps the original file name."""
    return ASSETS / (f"{name}.safetensors" if version == 1 else f"{name}-v{version}.safetensors")


def _training_log_name(name: str, version: int) -> str:
    return f"{name}.json" if version == 1 else f"{name}-v{version}.json"


def _keeps_trained_rows(name: str, version: int) -> bool:
    # synthetic-clip@1 was shipped with every row; its recipe must still publish the file its manifest pins
    return name in STORE_TRAINED_TOKEN_ROWS and version >= 2


def _latest_manifest(name: str) -> Path:
    """The latest version's manifest is `synthetic-NAME.yaml`; earlier versions are `synthetic-NAME-vN.yaml`, as with
    suites."""
    return manifests_dir() / "models" / f"synthetic-{name}.yaml"


def make_room_for_version(latest: Path, version: int) -> None:
    """Before writing `version` of a manifest to `latest` (`NAME.yaml`), move the version it holds to `NAME-vN.yaml`,
    so that every released version stays resolvable. Rewriting the same version is allowed; an older one is refused."""
    import yaml

    if not latest.is_file():
        return
    current = yaml.safe_load(latest.read_text())["version"]
    if current == version:
        return  # a republish of the same version replaces it
    if current > version:
        raise BenchError(f"{latest.name} already holds version {current}; refusing to write version {version}",
                         fix=f"pass --version {current + 1} or higher")
    retired = latest.with_name(f"{latest.stem}-v{current}.yaml")
    if retired.exists():
        raise BenchError(f"{retired} already exists",
                         fix=f"check which file holds version {current} and remove the other")
    latest.rename(retired)


def publish(out: Path, names: list[str] | None = None, version: int = 1) -> None:
    import yaml

    from benchmark.inputs.manifests import manifest_from_dict

    names = names or [n for n in MODELS if (out / f"{n}.safetensors").is_file()]
    missing = [n for n in names if not (out / f"{n}.safetensors").is_file()]
    if missing:
        raise BenchError(f"{out} has no trained {', '.join(missing)}", fix="train them first (--only ...)")
    if version < 1:
        raise BenchError(f"version {version}: versions start at 1", fix="pass --version 1 or higher")
    metas = {n: json.loads((out / f"{n}.json").read_text()) if (out / f"{n}.json").is_file() else {} for n in names}
    # the stored copies are made first, so the limit is checked on exact sizes
    shipped = {n: _file_to_ship(out, n, metas[n], version) for n in names}
    dests = {n: REPO_ROOT / shipped_name(n, version) for n in names}
    sizes = {n: path.stat().st_size for n, path in shipped.items()}
    others = {p.relative_to(REPO_ROOT / ASSETS).as_posix(): p.stat().st_size
              for p in (REPO_ROOT / ASSETS).rglob("*.safetensors") if p not in dests.values()}
    total = sum(others.values()) + sum(sizes.values())
    if total > MAX_TOTAL_BYTES:
        raise BenchError(f"shipped weights would total {total / 1e6:.1f} MB (limit {MAX_TOTAL_BYTES / 1e6:.0f} MB)",
                         fix="shrink the models' configs")
    for name in names:
        dest, target = dests[name], _latest_manifest(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            shutil.copyfile(shipped[name], tmp)
        doc = manifest_doc(name, dest, metas[name], version)
        manifest_from_dict(doc, target)
        make_room_for_version(target, version)
        write_text(target, "# Written by `python -m benchmark.synthetic.train publish`; do not edit by hand.\n"
                   + yaml.safe_dump(doc, sort_keys=False, width=110))
        write_json(RESULTS_DIR / "synthetic-world" / "training" / _training_log_name(name, version), metas[name])
        print(f"published synthetic-{name}@{version}: {dest.relative_to(REPO_ROOT)} ({sizes[name] / 1e6:.2f} MB), "
              f"{target.name}", file=sys.stderr)
    print(f"shipped weights total {total / 1e6:.2f} MB", file=sys.stderr)


def _file_to_ship(out: Path, name: str, meta: dict, version: int) -> Path:
    """The trained file as it will be shipped: itself, or a stored copy beside it (float16 for `STORE_HALF`
    models; the CLIP's trained token-embedding rows only, from version 2 on)."""
    src = out / f"{name}.safetensors"
    if _keeps_trained_rows(name, version):
        rows = out / f"{name}.trained-rows.safetensors"
        save_trained_token_rows(src, rows, meta)
        src = rows
    if name not in STORE_HALF:
        return src
    half = out / f"{name}.float16.safetensors"
    save_half(src, half)
    return half


def save_trained_token_rows(src: Path, dest: Path, meta: dict) -> None:
    """Copy a trained CLIP's safetensors file keeping only the token-embedding rows its training changed."""
    from safetensors import safe_open

    from benchmark.core.atomic import save_safetensors
    from benchmark.synthetic.clip_model import keep_token_rows, trained_token_rows

    if "seed" not in meta.get("train", {}):
        raise BenchError(f"{src}: its training log records no seed, so the untrained token rows cannot be told apart",
                         fix="retrain the CLIP with `python -m benchmark.synthetic.train --only clip`")
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        metadata = f.metadata()
    rows = trained_token_rows(tensors, meta["train"]["seed"], meta.get("config"))
    save_safetensors(dest, keep_token_rows(tensors, rows), metadata)


def save_half(src: Path, dest: Path) -> None:
    """Copy a safetensors file with its floating tensors cast to float16, keeping its metadata."""
    from safetensors import safe_open

    from benchmark.core.atomic import save_safetensors

    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        metadata = f.metadata()
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    overflow = [k for k, v in half.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if overflow:
        raise BenchError(f"{src}: {', '.join(overflow)} do not fit float16 (|value| > 65504 or not finite)",
                         fix=f"ship {src.stem} in float32 (remove it from STORE_HALF)")
    save_safetensors(dest, half, metadata)
