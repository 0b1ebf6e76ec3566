"""The synthetic world's splits: factors drawn from seeds, rendered on demand; the pinned test split on disk.

- Training split: `train_factors(n, seed, unseen=...)`, identities in [0, 1e6). The DDPM's split has `green = 0`
  (the unseen skin colour is excluded); the CLIP's and the oracles' splits include green faces.
- Test split `synthetic-test-first100`: the first 100 faces of the test stream (identities 1e6 + i, green = 0),
  committed as PNGs under `benchmark/synthetic/data/` with a dataset manifest listing each PNG's sha256 and true
  factors; `synthetic-train-first64` likewise holds f_t's training images. `write_split` regenerates them
  (`python -m benchmark.synthetic.dataset`).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from benchmark.synthetic.renderer import FACTOR_NAMES, FACTOR_RANGES, IMAGE_SIZE, Factors, render

TEST_NAME = "synthetic-test-first100"
TEST_COUNT = 100
TEST_IDENTITY_BASE = 1_000_000
TEST_SEED = 20230101
TRAIN_NAME = "synthetic-train-first64"  # f_t's training images: the first 64 faces of train stream seed 1
TRAIN_COUNT = 64
TRAIN_SEED = 1
DATA_DIR = Path("benchmark/synthetic/data")
IN_REPO_DISTRIBUTION = "in-repo"  # a distribution whose root is the repository itself (benchmark/plan/loaders.py)
UNSEEN_FRACTION = 0.25  # share of green faces in the splits that include the unseen colour


def sample_factors(rng: np.random.Generator, identity: int, *, unseen: bool) -> Factors:
    # rounded, so the factors written into a manifest render exactly the same image
    values = {n: round(float(rng.uniform(*FACTOR_RANGES[n])), 6) for n in FACTOR_NAMES if n != "green"}
    green = 0.0
    if unseen and rng.random() < UNSEEN_FRACTION:
        green = round(float(rng.uniform(0.5, 1.0)), 6)
    return Factors(green=green, identity=identity, **values)


def train_factors(n: int, seed: int = 0, *, unseen: bool = False) -> list[Factors]:
    """`n` training faces from `seed`; `unseen=True` includes green faces (never for the DDPM)."""
    rng = np.random.default_rng([seed, 1])
    return [sample_factors(rng, int(rng.integers(0, TEST_IDENTITY_BASE)), unseen=unseen) for _ in range(n)]


def test_factors(n: int = TEST_COUNT) -> list[Factors]:
    rng = np.random.default_rng([TEST_SEED, 2])
    return [sample_factors(rng, TEST_IDENTITY_BASE + i, unseen=False) for i in range(n)]


def test_id(i: int) -> str:
    return f"synth-{i:03d}"


def train_id(i: int) -> str:
    return f"synth-train-{i:03d}"


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


SPLITS = {
    TEST_NAME: ("The synthetic face world's test split: the first 100 faces of the test stream (identities "
                f"{TEST_IDENTITY_BASE}+i, no green skin), rendered at {IMAGE_SIZE}² and shipped as PNGs in the repo. "
                "Each item carries its true factors.", f"test_factors(), seed {TEST_SEED}"),
    TRAIN_NAME: ("The synthetic face world's f_t training images: the first 64 faces of training stream seed "
                 f"{TRAIN_SEED} (no green skin, as the DDPM's), rendered at {IMAGE_SIZE}², shipped as PNGs. Each "
                 "item carries its true factors.", f"train_factors(64, seed={TRAIN_SEED})"),
}


def split_factors(name: str) -> list[Factors]:
    return test_factors() if name == TEST_NAME else train_factors(TRAIN_COUNT, TRAIN_SEED)


def split_manifest(name: str, items: list[dict]) -> dict:
    description, how = SPLITS[name]
    return {
        "schema_version": 1, "kind": "dataset", "name": name, "version": 1, "description": description,
        "license": "MIT (this project; rendered by benchmark/synthetic/renderer.py)",
        "provenance": f"python -m benchmark.synthetic.dataset (benchmark/synthetic/dataset.py {how}); "
                      "docs/synthetic.md",
        "image_size": IMAGE_SIZE, "count": len(items),
        "preprocessing": {"name": "synthetic-png"},
        "distributions": {IN_REPO_DISTRIBUTION: {
            "layout": "files", "template": f"{(DATA_DIR / name).as_posix()}/{{file}}", "image_size": IMAGE_SIZE,
            "format": "png", "description": "PNGs committed in this repository (root = the repository)"}},
        "items": items,
    }


def write_split(name: str, repo_root: Path, manifest_path: Path) -> None:
    """Render a split, write the PNGs and the manifest (atomically, validated by the real schema)."""
    import yaml

    from benchmark.core.atomic import write_bytes, write_text
    from benchmark.core.hashing import sha256_bytes
    from benchmark.inputs.manifests import manifest_from_dict

    folder = repo_root / DATA_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    make_id = test_id if name == TEST_NAME else train_id
    items = []
    for i, f in enumerate(split_factors(name)):
        data = png_bytes(render(f)[0])
        file = f"{make_id(i)}.png"
        write_bytes(folder / file, data)
        items.append({"id": make_id(i), "file": file, "sha256": {IN_REPO_DISTRIBUTION: sha256_bytes(data)},
                      "factors": f.to_dict()})
    doc = split_manifest(name, items)
    manifest_from_dict(doc, manifest_path)
    header = ("# Generated by `python -m benchmark.synthetic.dataset`; do not edit by hand (rerun it).\n"
              "# Schema: docs/manifests.md; the world: docs/synthetic.md.\n")
    write_text(manifest_path, header + yaml.safe_dump(doc, sort_keys=False, width=110))
    print(f"wrote {len(items)} PNGs to {folder} and {manifest_path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from benchmark.core.paths import MANIFESTS_DIR, REPO_ROOT

    p = argparse.ArgumentParser(description="Regenerate the synthetic splits (PNGs + dataset manifests).")
    p.add_argument("--repo", type=Path, default=REPO_ROOT)
    args = p.parse_args(argv)
    manifests = MANIFESTS_DIR if args.repo == REPO_ROOT else args.repo / "manifests"
    for name in SPLITS:
        write_split(name, args.repo, manifests / "datasets" / f"{name}.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
