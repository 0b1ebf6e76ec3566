"""Retrain every model of the synthetic world with one seeded command, then publish them into the repo.

    python -m benchmark.synthetic.train --out DIR [--only ddpm clip oracle segmenter]
    python -m benchmark.synthetic.train publish --out DIR      # copy safetensors into assets/, write manifests

Each model is written to DIR as `<name>.safetensors` (weights + JSON metadata: config, training settings, wall
time) with a `<name>.json` log of its training. Seeds are fixed; CPU reruns with the same torch version and thread
count give the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

MODELS = ("ddpm", "clip", "oracle", "segmenter")
POOL_SEED = {"ddpm": 11}
DDPM_POOL = 1500


POOL_CACHE: Path | None = None  # set by main(): renders are kept under DIR/pools and reused by a rerun


def _cached_render(factors: list, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Render `factors` (or read the renders a previous run of the same code cached under `key`)."""
    from benchmark.core.hashing import json_digest

    digest = json_digest({"key": key, "factors": [f.to_dict() for f in factors],
                          "renderer": _renderer_digest()})
    path = POOL_CACHE / f"{digest[:16]}.safetensors" if POOL_CACHE is not None else None
    if path is not None and path.is_file():
        from safetensors.torch import load_file

        cached = load_file(str(path))
        return cached["images"], cached["masks"]
    images, masks = _render_factors(factors)
    if path is not None:
        from benchmark.core.atomic import save_safetensors

        save_safetensors(path, {"images": images, "masks": masks})
    return images, masks


def _renderer_digest() -> str:
    from benchmark.core.hashing import sha256_file
    from benchmark.synthetic import renderer

    return sha256_file(renderer.__file__)


def render_pool(n: int, seed: int, *, unseen: bool) -> tuple[torch.Tensor, torch.Tensor, list]:
    """uint8 images, uint8 masks and the factors of `n` training faces."""
    from benchmark.synthetic.dataset import train_factors

    factors = train_factors(n, seed, unseen=unseen)
    images, masks = _cached_render(factors, f"train-{n}-{seed}-{unseen}")
    return images, masks, factors


def _save(out: Path, name: str, state: dict[str, torch.Tensor], meta: dict) -> None:
    from benchmark.core.atomic import save_safetensors, write_json

    tensors = {k: v.detach().cpu().contiguous().float() for k, v in state.items()}
    # the weights depend on the intra-op thread count (reduction order), so a rerun of the recipe needs it
    meta = {**meta, "threads": torch.get_num_threads()}
    save_safetensors(out / f"{name}.safetensors", tensors, metadata={"info": json.dumps(meta, sort_keys=True)})
    write_json(out / f"{name}.json", meta)


def train_ddpm_stage(out: Path, steps: int | None = None) -> None:
    from benchmark.core.images import from_uint8
    from benchmark.synthetic.ddpm import DDPM_CONFIG, DdpmTrainConfig, train_ddpm

    cfg = DdpmTrainConfig() if steps is None else DdpmTrainConfig(steps=steps)
    start = time.time()
    images, _, _ = render_pool(DDPM_POOL, POOL_SEED["ddpm"], unseen=False)
    pool = from_uint8(images)

    def checkpoint(step, ema):
        _save(out / "checkpoints", f"ddpm-step{step}", ema.state_dict(), {"step": step})

    ema, history = train_ddpm(pool, cfg, on_checkpoint=checkpoint)
    meta = {"config": DDPM_CONFIG, "train": {**cfg.__dict__, "pool": DDPM_POOL, "pool_seed": POOL_SEED["ddpm"],
                                             "green_excluded": True},
            "wall_s": round(time.time() - start, 1), "final_loss_mean_last100": sum(history[-100:]) / 100,
            "torch": torch.__version__}
    _save(out, "ddpm", ema.state_dict(), meta)
    print(f"ddpm done in {meta['wall_s']} s", file=sys.stderr)


# The CLIP, the oracle and the segmenter share one pool of renders (with green faces) and one held-out set of
# other persons (identities >= 2e6, so disjoint from the pool's).
WORLD_POOL = {"persons": 500, "per_person": 6, "seed": 12}
HELD_OUT = {"persons": 60, "per_person": 5, "seed": 99, "identity_base": 2_000_000}
_CACHE: dict[str, tuple] = {}


def _render_factors(factors: list) -> tuple[torch.Tensor, torch.Tensor]:
    from tqdm import tqdm

    from benchmark.synthetic.renderer import render

    images, masks = [], []
    for f in tqdm(factors, desc=f"rendering {len(factors)} faces", file=sys.stderr, leave=False):
        img, mask = render(f)
        images.append(torch.from_numpy(img))
        masks.append(torch.from_numpy(mask))
    return torch.stack(images).permute(0, 3, 1, 2).contiguous(), torch.stack(masks)


def person_pool(spec: dict) -> tuple[torch.Tensor, torch.Tensor, list, torch.Tensor]:
    """(images, masks, factors, person index) of a person pool, rendered once per process."""
    from benchmark.synthetic.oracle import person_factors

    key = json.dumps(spec, sort_keys=True)
    if key not in _CACHE:
        factors = person_factors(spec["persons"], spec["per_person"], spec["seed"],
                                 identity_base=spec.get("identity_base", 0))
        images, masks = _cached_render(factors, key)
        persons = torch.arange(spec["persons"]).repeat_interleave(spec["per_person"])
        _CACHE[key] = (images, masks, factors, persons)
    return _CACHE[key]


def attribute_pairs(n: int = 48, seed: int = 5) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Held-out render pairs differing in one factor only: (a, b) with b showing more of the attribute."""
    from benchmark.synthetic.dataset import test_factors

    base = test_factors(TEST_PAIR_OFFSET + n)[TEST_PAIR_OFFSET:]
    rng = torch.Generator().manual_seed(seed)
    lo = torch.rand(n, generator=rng) * 0.3
    changes = {
        "smiling": lambda f, i: (f.replace(mouth_curvature=round(-0.2 + float(lo[i]), 6)),
                                 f.replace(mouth_curvature=round(0.7 + float(lo[i]), 6))),
        "sad": lambda f, i: (f.replace(mouth_curvature=round(0.2 - float(lo[i]), 6)),
                             f.replace(mouth_curvature=round(-0.7 - float(lo[i]), 6))),
        "tanned": lambda f, i: (f.replace(tan=round(0.1 + float(lo[i]), 6)), f.replace(tan=round(0.7 + float(lo[i]), 6))),
        "zombie": lambda f, i: (f.replace(green=0.0), f.replace(green=round(0.7 + float(lo[i]), 6))),
    }
    out = {}
    for name, change in changes.items():
        a, b = zip(*(change(f, i) for i, f in enumerate(base)), strict=True)
        out[name] = (_render_factors(list(a))[0], _render_factors(list(b))[0])
    return out


TEST_PAIR_OFFSET = 100  # pairs come from test-stream faces after the 100 of the shipped test split


def ddpm_versions_of(images: torch.Tensor, factors: list) -> tuple[torch.Tensor, list, dict]:
    """(SDEdit versions of `images` by the shipped DDPM, their factors as the shipped oracle reads them, provenance)."""
    from benchmark.synthetic.backends import OracleFactors
    from benchmark.synthetic.clip_data import DdpmVersionsConfig, oracle_factors, sdedit_versions
    from benchmark.synthetic.weights import load_ddpm, load_oracle, shipped_file

    cfg = DdpmVersionsConfig()
    ddpm_file, oracle_file = shipped_file("synthetic-ddpm"), shipped_file("synthetic-oracle")
    versions = sdedit_versions(load_ddpm(*ddpm_file), images, cfg)
    oracle = OracleFactors(load_oracle(*oracle_file), torch.device("cpu"))
    with torch.no_grad():
        readings = torch.cat([oracle.measure(versions[s:s + 200]) for s in range(0, len(versions), 200)])
    provenance = {**cfg.to_dict(), "captions": "oracle readings", "ddpm_sha256": ddpm_file[1],
                  "oracle_sha256": oracle_file[1]}
    return versions, oracle_factors(factors, readings), provenance


def train_clip_stage(out: Path, skin_chroma_jitter: float = 0.0, ddpm_versions: bool = False) -> None:
    from benchmark.synthetic.captions import PROMPTS
    from benchmark.synthetic.clip_model import (
        CLIP_CONFIG,
        TOKENIZER_NAME,
        ClipTrainConfig,
        directional_cosines,
        train_clip,
    )
    from benchmark.synthetic.renderer import CLASS_INDEX

    cfg = ClipTrainConfig(skin_chroma_jitter=skin_chroma_jitter)
    start = time.time()
    images, masks, factors, _ = person_pool(WORLD_POOL)
    skin = (masks == CLASS_INDEX["skin"]) | (masks == CLASS_INDEX["nose"])  # the nose is skin colour, darker
    versions_provenance = None
    if ddpm_versions:  # one version per render, so half of what the CLIP sees is DDPM output
        versions, version_factors, versions_provenance = ddpm_versions_of(images, factors)
        images, factors, skin = torch.cat([images, versions]), factors + version_factors, torch.cat([skin, skin])
    model, history = train_clip(images, factors, cfg, skin=skin)
    cosines = directional_cosines(model, attribute_pairs(), PROMPTS)
    meta = {"config": CLIP_CONFIG, "tokenizer": TOKENIZER_NAME,
            "train": {**cfg.__dict__, "pool": WORLD_POOL, "ddpm_versions": versions_provenance},
            "wall_s": round(time.time() - start, 1), "final_loss_mean_last50": sum(history[-50:]) / 50,
            "directional_cosine": cosines, "torch": torch.__version__}
    print(f"clip directional cosines {cosines}", file=sys.stderr)
    _save(out, "clip", model.state_dict(), meta)


def train_oracle_stage(out: Path) -> None:
    from benchmark.synthetic.oracle import OracleTrainConfig, factor_accuracy, identity_accuracy, train_oracle

    cfg = OracleTrainConfig()
    start = time.time()
    images, _, factors, persons = person_pool(WORLD_POOL)
    model, history = train_oracle(images, factors, persons, cfg)
    h_images, _, h_factors, h_persons = person_pool(HELD_OUT)
    meta = {"train": {**cfg.__dict__, "pool": WORLD_POOL}, "held_out": HELD_OUT,
            "wall_s": round(time.time() - start, 1),
            "factor_accuracy": factor_accuracy(model, h_images, h_factors),
            "identity": identity_accuracy(model, h_images, h_persons), "torch": torch.__version__}
    print(f"oracle held-out {json.dumps(meta['factor_accuracy'])} {meta['identity']}", file=sys.stderr)
    _save(out, "oracle", model.state_dict(), meta)


def train_segmenter_stage(out: Path) -> None:
    from benchmark.synthetic.oracle import SegmenterTrainConfig, segmenter_accuracy, train_segmenter

    cfg = SegmenterTrainConfig()
    start = time.time()
    images, masks, _, _ = person_pool(WORLD_POOL)
    model, history = train_segmenter(images, masks, cfg)
    h_images, h_masks, _, _ = person_pool(HELD_OUT)
    meta = {"train": {**cfg.__dict__, "pool": WORLD_POOL}, "held_out": HELD_OUT,
            "wall_s": round(time.time() - start, 1), "accuracy": segmenter_accuracy(model, h_images, h_masks),
            "torch": torch.__version__}
    print(f"segmenter held-out {meta['accuracy']}", file=sys.stderr)
    _save(out, "segmenter", model.state_dict(), meta)


STAGES = {"ddpm": train_ddpm_stage, "clip": train_clip_stage, "oracle": train_oracle_stage,
          "segmenter": train_segmenter_stage}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="train", choices=("train", "publish"))
    p.add_argument("--out", type=Path, required=True, help="folder for the trained weights and logs")
    p.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1; the weights depend on the thread count, so rerun with the "
                        "one the model's manifest records: the shipped DDPM used 2)")
    p.add_argument("--clip-skin-chroma-jitter", type=float, default=0.0, metavar="W",
                   help="train the CLIP with each render's skin shifted by up to ±W along the colour axis that "
                        "neither tan nor green moves, captions unchanged (default 0: the recipe of the shipped "
                        "synthetic-clip@1; docs/synthetic.md says why 0.1 is the candidate for a next version)")
    p.add_argument("--clip-ddpm-versions", action="store_true",
                   help="also train the CLIP on one SDEdit version of each render by the shipped DDPM, captioned by "
                        "the shipped oracle's reading of it (default off: the recipe of synthetic-clip@1)")
    p.add_argument("--version", type=int, default=1,
                   help="publish: the model version to write (default 1). A higher version keeps the earlier ones: "
                        "their manifests move to synthetic-NAME-vN.yaml and their files stay shipped")
    args = p.parse_args(argv)
    if not 0.0 <= args.clip_skin_chroma_jitter <= 0.5:
        p.error(f"--clip-skin-chroma-jitter must lie in [0, 0.5], got {args.clip_skin_chroma_jitter}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "publish":
        from benchmark.synthetic.publish import publish

        publish(args.out, version=args.version)
        return 0
    global POOL_CACHE
    POOL_CACHE = args.out / "pools"
    # one intra-op thread by default: on a shared, oversubscribed CPU, OpenMP's spinning threads waste most of their
    # time, and a fixed count makes the float reductions' order (so the weights) independent of the machine's cores;
    # on an idle machine two threads train the DDPM about 1.8x faster
    torch.set_num_threads(args.threads)
    timings = {}
    for name in args.only:
        start = time.time()
        options = ({"skin_chroma_jitter": args.clip_skin_chroma_jitter, "ddpm_versions": args.clip_ddpm_versions}
                   if name == "clip" else {})
        STAGES[name](args.out, **options)
        timings[name] = round(time.time() - start, 1)
    print(json.dumps({"wall_s": timings}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
