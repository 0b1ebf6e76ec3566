"""Generate the manifests that describe the shared test fixtures (facts only; the files stay in ../shared).

- `manifests/datasets/celebahq-fixtures.yaml`: the 11 real CelebA-HQ images in `fixtures/celebahq/images/`, with
  their CelebA-HQ index, CelebA file, sha256 and (for the four CelebAMask-HQ samples) the label mask. The `tiny`
  profiles run the suites on it.
- `manifests/models/asyrp-ft-<attribute>.yaml`: the authors' released f_t (DeltaBlock) checkpoints, by URL at
  the pinned commit of kwonminki/Asyrp_official, with the sha256 and size of the fixture copies (which are those
  files). Attributes without a fixture copy get `sha256: null`, which `lock` records on first fetch.

    python scripts/make_fixture_manifests.py [--fixtures ../shared/fixtures]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _manifest_io import read_mapping, write_manifest

from benchmark.core.hashing import sha256_file
from benchmark.core.paths import MANIFESTS_DIR, fixtures_dir

GENERATOR = "scripts/make_fixture_manifests.py"
ASYRP_COMMIT = "a6c82dc760849dd4c1e878990ce38e824967e5b0"
# (fixture file, CelebA-HQ index or None when the file is named after its CelebA file, source)
CELEBAMASK = "switchablenorms/CelebAMask-HQ@3f6c45d MaskGAN_demo/samples/{i}.jpg"
IMAGES = [
    *[(f"celebamaskhq_{i}.jpg", i, CELEBAMASK.format(i=i)) for i in range(4)],
    *[(f"{n}.jpg", None, f"kwonminki/Asyrp_official@a6c82dc test_images/celeba/{d}/{n}.jpg")
      for n, d in [("000121", "contents"), ("000255", "contents"), ("000231", "styles"), ("000445", "styles"),
                   ("005152", "styles")]],
    *[(f"{n}.jpg", None, f"clovaai/stargan-v2@875b70a assets/representative/celeba_hq/src/{g}/{n}.jpg")
      for n, g in [("006930", "male"), ("039913", "female")]],
]
# Released f_t checkpoints (all CelebA-HQ ones the official repo ships at ASYRP_COMMIT that this project uses).
FT_ATTRIBUTES = ["smiling", "sad", "tanned", "pixar", "neanderthal", "angry", "young"]


def fixtures_dataset(root: Path) -> dict:
    mapping = read_mapping(root / "celebahq" / "CelebA-HQ-to-CelebA-mapping.noheader.txt")
    by_index = {hq: (name, orig) for name, (hq, orig) in mapping.items()}
    items = []
    for file, hq, source in IMAGES:
        if hq is None:
            hq, orig = mapping[file]
            celeba_file = file
        else:
            celeba_file, orig = by_index[hq]
        item = {"id": Path(celeba_file).stem, "celebahq_index": hq, "celeba_file": celeba_file, "celeba_index": orig,
                "file": file, "source": source,
                "sha256": {"fixtures": sha256_file(root / "celebahq" / "images" / file)}}
        mask = root / "celebahq" / "masks" / file.replace(".jpg", ".png")
        if mask.exists():
            item["mask"] = f"masks/{mask.name}"
            item["mask_sha256"] = sha256_file(mask)
        items.append(item)
    return {
        "schema_version": 1, "kind": "dataset", "name": "celebahq-fixtures", "version": 1,
        "description": "The 11 real CelebA-HQ images of the shared test fixtures (1024² JPEG), for the `tiny` "
                       "profiles and the data tests. Not the paper's test split.",
        "license": "CelebA-HQ: non-commercial research and educational use only. The files are not in this repo.",
        "provenance": "../shared/fixtures/README.md; CelebA-HQ index and CelebA file from "
                      "CelebA-HQ-to-CelebA-mapping.txt (mit-han-lab/anycost-gan@ffb09fd thirdparty/).",
        "image_size": 256,
        "count": len(items),
        "preprocessing": {"name": "diffusionclip-lmdb", "resize": "pil-bilinear", "jpeg_quality": 100},
        "distributions": {"fixtures": {"layout": "files", "template": "images/{file}", "image_size": 1024,
                                       "format": "jpeg",
                                       "description": "folder ../shared/fixtures/celebahq (ASYRP_FIXTURES)"}},
        "items": items,
    }


def ft_manifest(attribute: str, root: Path) -> dict:
    file = f"{attribute}_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"
    local = root / "asyrp_official" / "checkpoints" / file
    sha, size = (sha256_file(local), local.stat().st_size) if local.exists() else (None, None)
    return {
        "schema_version": 1, "kind": "model", "name": f"asyrp-ft-{attribute.replace('_', '-')}", "version": 1,
        "description": f"The authors' released f_t (DeltaBlock) for '{attribute}' on CelebA-HQ: trained with "
                       "40 inversion and 40 generative steps for one epoch on the SDEdit CelebA-HQ DDPM.",
        "license": "MIT (kwonminki/Asyrp_official)",
        "provenance": f"kwonminki/Asyrp_official@{ASYRP_COMMIT} checkpoint/{file}"
                      + ("" if sha else "; sha256 not yet known (no fixture copy): `lock` records it on first fetch"),
        "loader": "asyrp-deltablock",
        "loader_args": {"attribute": attribute, "state_dict_key": "0"},
        "source": {"type": "url", "files": [{
            "path": file, "sha256": sha, "size": size,
            "url": f"https://raw.githubusercontent.com/kwonminki/Asyrp_official/{ASYRP_COMMIT}/checkpoint/{file}"}]},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=fixtures_dir())
    ap.add_argument("--out", type=Path, default=MANIFESTS_DIR)
    args = ap.parse_args(argv)
    write_manifest(args.out / "datasets" / "celebahq-fixtures.yaml", fixtures_dataset(args.fixtures), GENERATOR)
    for attribute in FT_ATTRIBUTES:
        doc = ft_manifest(attribute, args.fixtures)
        write_manifest(args.out / "models" / f"{doc['name']}.yaml", doc, GENERATOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
