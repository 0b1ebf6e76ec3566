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


def manifest_doc(name: str, path: Path, meta: dict) -> dict:
    loader, args, description = MODELS[name]
    wall = meta.get("wall_s")
    # the weights depend on the intra-op thread count (reduction order), so a rerun must use the same one
    threads = f" --threads {meta['threads']}" if meta.get("threads", 1) != 1 else ""
    stored = " (stored as float16)" if name in STORE_HALF else ""
    return {
        "schema_version": 1, "kind": "model", "name": f"synthetic-{name}", "version": 1,
        "description": description, "license": "MIT (this project; trained on renders of this project)",
        "provenance": f"python -m benchmark.synthetic.train --out DIR --only {name}{threads} (seeded; {wall} s wall "
                      "on the machine that trained it); then `python -m benchmark.synthetic.train publish --out DIR`"
                      f"{stored}. "
                      "Training log: results/synthetic-world/training/" + f"{name}.json",
        "loader": loader, "loader_args": args,
        "source": {"type": "local", "files": [{"path": (ASSETS / path.name).as_posix(),
                                               "sha256": sha256_file(path), "size": path.stat().st_size}]},
    }


def publish(out: Path, names: list[str] | None = None) -> None:
    import yaml

    from benchmark.inputs.manifests import manifest_from_dict

    names = names or [n for n in MODELS if (out / f"{n}.safetensors").is_file()]
    missing = [n for n in names if not (out / f"{n}.safetensors").is_file()]
    if missing:
        raise BenchError(f"{out} has no trained {', '.join(missing)}", fix="train them first (--only ...)")
    shipped = {n: _file_to_ship(out, n) for n in names}  # float16 copies are made first, so sizes are exact
    sizes = {n: path.stat().st_size for n, path in shipped.items()}
    others = {p.relative_to(REPO_ROOT / ASSETS).as_posix(): p.stat().st_size
              for p in (REPO_ROOT / ASSETS).rglob("*.safetensors")
              if p.parent != REPO_ROOT / ASSETS or p.stem not in sizes}
    total = sum(others.values()) + sum(sizes.values())
    if total > MAX_TOTAL_BYTES:
        raise BenchError(f"shipped weights would total {total / 1e6:.1f} MB (limit {MAX_TOTAL_BYTES / 1e6:.0f} MB)",
                         fix="shrink the models' configs")
    for name in names:
        dest = REPO_ROOT / ASSETS / f"{name}.safetensors"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            shutil.copyfile(shipped[name], tmp)
        meta = json.loads((out / f"{name}.json").read_text()) if (out / f"{name}.json").is_file() else {}
        doc = manifest_doc(name, dest, meta)
        target = manifests_dir() / "models" / f"synthetic-{name}.yaml"
        manifest_from_dict(doc, target)
        write_text(target, "# Written by `python -m benchmark.synthetic.train publish`; do not edit by hand.\n"
                   + yaml.safe_dump(doc, sort_keys=False, width=110))
        write_json(RESULTS_DIR / "synthetic-world" / "training" / f"{name}.json", meta)
        print(f"published {name}: {dest.relative_to(REPO_ROOT)} ({sizes[name] / 1e6:.2f} MB), {target.name}",
              file=sys.stderr)
    print(f"shipped weights total {total / 1e6:.2f} MB", file=sys.stderr)


def _file_to_ship(out: Path, name: str) -> Path:
    """The trained file as it will be shipped: itself, or its float16 copy beside it for `STORE_HALF` models."""
    src = out / f"{name}.safetensors"
    if name not in STORE_HALF:
        return src
    half = out / f"{name}.float16.safetensors"
    save_half(src, half)
    return half


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
