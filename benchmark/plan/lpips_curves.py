"""Compute a base model's LPIPS curves (the authors' `compute_lpips_distance`) and write them where a suite's
`t_select` reads them:

    python -m benchmark.plan.lpips_curves --model ldm-celebahq-256@1 --data /path/to/celebahq \\
        --out results/lpips-curves/ldm-celebahq-256 --prefix ldm-celebahq

DDIM inversion with `--n-steps` (the authors: 1000) of the first `--n-images` (the authors: 100) training images;
LPIPS with AlexNet as the authors used, so torchvision's AlexNet weights must be in the torch hub cache. On a GPU
this takes minutes; on a CPU, hours (refused unless `--allow-cpu`). Writes the four TSV tables and `curves.json`
(provenance: model, dataset, image ids, steps, device, library versions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.core.errors import BenchError


def compute(model_ref: str, data: Path, dataset_ref: str, n_images: int, n_steps: int, out: Path, prefix: str,
            device: str, allow_cpu: bool, reference: str = "input") -> dict:
    import torch

    import models
    from benchmark.core.atomic import write_json
    from benchmark.core.images import from_uint8
    from benchmark.core.runtime import device_description, resolve_device
    from benchmark.inputs.data import load_dataset
    from benchmark.inputs.fetch import check_model_files, fetch_command
    from benchmark.inputs.lock import LockFile
    from benchmark.inputs.manifests import ManifestRegistry
    from benchmark.plan.loaders import LOADERS
    from benchmark.plan.plugins import load_plugins

    load_plugins()
    dev = resolve_device(device)
    if dev.type != "cuda" and not allow_cpu:
        raise BenchError(f"LPIPS curves with {n_steps} inversion steps on {n_images} images take hours on a CPU",
                         fix="run on a GPU machine, or pass --allow-cpu (e.g. with --n-steps 40 for a check)")
    registry = ManifestRegistry()
    model_manifest = registry.get("model", model_ref).manifest
    dataset_manifest = registry.get("dataset", dataset_ref).manifest
    lock = LockFile.load()
    bad = [f for f in check_model_files(model_manifest, lock=lock) if not f.ok]
    if bad:
        raise BenchError(f"{model_manifest.ref}: {', '.join(f'{f.path.name} {f.state}' for f in bad[:4])}",
                         fix=f"run `{fetch_command([model_manifest.ref])}` (on a machine with internet)")
    distance = models.lpips_alex_distance(dev)  # refuses before any compute if AlexNet is absent
    images = load_dataset(dataset_manifest, data, limit=n_images, lock=lock)
    model = LOADERS.get(model_manifest.loader)(model_manifest, device=dev)
    pixels = from_uint8(images.images)
    if pixels.shape[-1] != model.image_size:
        pixels = torch.nn.functional.interpolate(pixels, size=model.image_size, mode="bilinear", antialias=True)
    curves = models.compute_lpips_curves(model, pixels, n_steps=n_steps, distance=distance, reference=reference,
                                         progress=True)
    paths = curves.save(out, prefix)
    meta = {"model": model_manifest.ref, "dataset": dataset_manifest.ref, "ids": images.ids, "n_steps": n_steps,
            "reference": reference, "distance": "lpips-alex-v0.1", "device": device_description(dev),
            "files": sorted(p.name for p in paths.values()), "t_boost_at_1.2": models.select_t_boost(curves.x, 1.2)}
    write_json(out / "curves.json", meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model manifest ref, e.g. ldm-celebahq-256@1")
    p.add_argument("--data", type=Path, required=True, help="the dataset's folder / zip / LMDB")
    p.add_argument("--dataset", default="celebahq-train-first1000@1")
    p.add_argument("--n-images", type=int, default=100)
    p.add_argument("--n-steps", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--allow-cpu", action="store_true")
    p.add_argument("--reference", choices=["input", "autoencoder"], default="input",
                   help="compare decoded x_t / P_t with the input (the authors' rule) or with the autoencoder's "
                        "reconstruction (a latent model's curve then starts at 0)")
    args = p.parse_args(argv)
    try:
        meta = compute(args.model, args.data, args.dataset, args.n_images, args.n_steps, args.out, args.prefix,
                       args.device, args.allow_cpu, args.reference)
    except BenchError as e:
        print(f"error: {e.message}\n  fix: {e.fix}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({meta['model']}, {len(meta['ids'])} images, {meta['n_steps']} steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
