"""Generate the CelebA-HQ split manifests `celebahq-test-first100` and `celebahq-train-first1000`.

The split is DiffusionCLIP's LMDB, built from StyleMapGAN's `celeba_hq_raw.zip` (see docs/data.md for the
sources). The LMDB key `256-{i:05d}` is the i-th file of `raw_images/<split>/images/` in sorted order, and the
authors' test loader does not shuffle, so "the first 100 test images" are the 100 smallest CelebA file names in
`raw_images/test/images/`.

Which 500 files StyleMapGAN put in its test folder is not written in any source this project could read, so by
default the manifests are generated with the selection rule only (no items). Whoever has the data can pin the
membership and the digests:

    python scripts/make_celebahq_manifests.py --raw PATH/celeba_hq_raw.zip [--lmdb-test PATH/LMDB_test]

`--raw` is the StyleMapGAN zip or its unpacked folder (the one that holds `raw_images/`); with it every item gets
its CelebA-HQ index (from the mapping file) and the sha256 of its raw JPEG; `--lmdb-*` adds the LMDB digests.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import zipfile
from pathlib import Path

from _manifest_io import read_mapping, write_manifest

from benchmark.core.hashing import sha256_bytes
from benchmark.core.paths import MANIFESTS_DIR, fixtures_dir

GENERATOR = "scripts/make_celebahq_manifests.py"
DISTRIBUTIONS = ("stylemapgan-raw", "diffusionclip-lmdb", "celebamask-hq")

PROVENANCE = (
    "Split: StyleMapGAN's CelebA-HQ `raw_images/{split}/images` (celeba_hq_raw.zip, downloaded by naver-ai/StyleMapGAN "
    "download.sh and by gwang-kim/DiffusionCLIP data_download.sh), converted by DiffusionCLIP "
    "utils/prepare_lmdb_data.py (torchvision ImageFolder, sorted paths, key 256-{{i:05d}}, PIL bilinear resize, "
    "JPEG q=100). Asyrp (kwonminki/Asyrp_official datasets/data_utils.py) reads LMDB_{split} with shuffle=False; "
    "the reproduction study (zilaeric/asyrp-extension, --n_test_img 100) used the first 100 test images. "
    "CelebA-HQ index and CelebA file from CelebA-HQ-to-CelebA-mapping.txt.")


def list_raw(raw: Path, listing: str, pattern: str) -> tuple[list[str], dict[str, bytes] | None]:
    """Sorted file names in `listing` of a raw folder or zip (the bytes too, for a zip, to hash them)."""
    if raw.is_file() and zipfile.is_zipfile(raw):
        with zipfile.ZipFile(raw) as zf:
            names = {}
            for info in zf.infolist():
                parent, _, base = info.filename.rstrip("/").rpartition("/")
                if parent.endswith(listing) and fnmatch.fnmatch(base, pattern):
                    names[base] = info.filename
            blobs = {base: zf.read(member) for base, member in names.items()}
        return sorted(names), blobs
    folder = raw / listing
    if not folder.is_dir():
        raise SystemExit(f"{folder} does not exist: --raw must hold raw_images/ (StyleMapGAN's layout)")
    return sorted(p.name for p in folder.iterdir() if fnmatch.fnmatch(p.name, pattern)), None


def lmdb_digests(path: Path, n: int) -> list[str]:
    import lmdb

    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
    with env.begin() as txn:
        out = []
        for i in range(n):
            value = txn.get(f"256-{i:05d}".encode())
            if value is None:
                raise SystemExit(f"{path}: key 256-{i:05d} missing")
            out.append(sha256_bytes(value))
    return out


def build(split: str, count: int, args, mapping) -> dict:
    listing = f"raw_images/{split}/images"
    doc = {
        "schema_version": 1, "kind": "dataset", "name": f"celebahq-{split}-first{count}", "version": 1,
        "description": f"The first {count} images of the CelebA-HQ {split} split as DiffusionCLIP's LMDB orders it "
                       f"(the {'evaluation' if split == 'test' else 'training'} images of Asyrp and the reproduction "
                       "study).",
        "license": "CelebA-HQ: non-commercial research and educational use only (CelebA licence). Not redistributed.",
        "provenance": PROVENANCE.format(split=split),
        "image_size": 256,
        "count": count,
        "preprocessing": {"name": "diffusionclip-lmdb", "resize": "pil-bilinear", "jpeg_quality": 100},
        "distributions": {
            "stylemapgan-raw": {"layout": "files", "template": f"{listing}/{{celeba_file}}", "image_size": 1024,
                                "format": "jpeg", "description": "StyleMapGAN celeba_hq_raw.zip (folder or zip)"},
            "diffusionclip-lmdb": {"layout": "lmdb", "template": "256-{position:05d}", "image_size": 256,
                                   "format": "jpeg", "description": f"DiffusionCLIP data/celeba_hq/LMDB_{split}"},
            "celebamask-hq": {"layout": "files", "template": "CelebA-HQ-img/{celebahq_index}.jpg", "image_size": 1024,
                              "format": "jpeg", "description": "CelebAMask-HQ.zip (folder or zip)"},
        },
        "selection": {"rule": f"the first {count} file names of {listing}/*.jpg in sorted order (= LMDB keys "
                              f"256-00000 .. 256-{count - 1:05d})",
                      "distribution": "stylemapgan-raw", "listing": listing, "pattern": "*.jpg"},
        "items": [],
    }
    if args.raw is None:
        return doc
    names, blobs = list_raw(args.raw, listing, "*.jpg")
    if len(names) < count:
        raise SystemExit(f"{args.raw}: {listing} holds {len(names)} images, fewer than {count}")
    names = names[:count]
    lmdb_path = args.lmdb_test if split == "test" else args.lmdb_train
    lmdb_sha = lmdb_digests(lmdb_path, count) if lmdb_path else [None] * count
    items = []
    for pos, name in enumerate(names):
        hq, orig = mapping[name]
        data = blobs[name] if blobs is not None else (args.raw / listing / name).read_bytes()
        items.append({"id": Path(name).stem, "celebahq_index": hq, "celeba_file": name, "celeba_index": orig,
                      "sha256": {"stylemapgan-raw": sha256_bytes(data), "diffusionclip-lmdb": lmdb_sha[pos],
                                 "celebamask-hq": None}})
    doc["items"] = items
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, help="StyleMapGAN celeba_hq_raw.zip or the folder holding raw_images/")
    ap.add_argument("--lmdb-test", type=Path, help="DiffusionCLIP LMDB_test folder (adds LMDB digests)")
    ap.add_argument("--lmdb-train", type=Path, help="DiffusionCLIP LMDB_train folder (adds LMDB digests)")
    ap.add_argument("--mapping", type=Path,
                    default=fixtures_dir() / "celebahq" / "CelebA-HQ-to-CelebA-mapping.noheader.txt")
    ap.add_argument("--out", type=Path, default=MANIFESTS_DIR / "datasets")
    args = ap.parse_args(argv)
    mapping = read_mapping(args.mapping) if args.raw else None
    for split, count in (("test", 100), ("train", 1000)):
        doc = build(split, count, args, mapping)
        write_manifest(args.out / f"{doc['name']}.yaml", doc, GENERATOR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
