"""A CelebA-HQ stand-in in every distribution layout the dataset manifests accept (docs/data.md section 2), made
from the shared fixture faces (real CelebA-HQ images, non-commercial licence: written to a temp or cache folder,
never into the repository).

Written under `root` (`CelebaStandIn.paths` names each source):
- `celeba_hq_raw/raw_images/{split}/images/{celeba_file}`: StyleMapGAN's raw layout, 1024² JPEG (folder);
- `celeba_hq_raw.zip`: the same members without a top folder (DiffusionCLIP's script unzips it in place);
- `LMDB_{split}/`: DiffusionCLIP's LMDB (`utils/prepare_lmdb_data.py`: the split's files sorted by path, key
  `256-{i:05d}`, PIL bilinear resize to 256², JPEG quality 100, plus a `length` key);
- `CelebAMask-HQ/CelebA-HQ-img/{celebahq_index}.jpg` (+ the mapping and attribute files), and
  `CelebAMask-HQ.zip` holding that folder.

Images: the fixture faces as they are first (their real bytes and CelebA names), then lightly perturbed copies
(seeded flip, crop of up to 3%, brightness within 5%, re-encoded at JPEG quality 95), named by CelebA files the
fixtures do not use, so any number of distinct images can be made. Each split's items are in the rule's order
(sorted CelebA file names); train and test never share a file.
"""

from __future__ import annotations

import io
import random
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.atomic import atomic_path
from benchmark.core.errors import DataError
from benchmark.core.hashing import sha256_bytes
from benchmark.core.paths import fixtures_dir

SPLITS = ("test", "train")
DISTRIBUTIONS = ("stylemapgan-raw", "diffusionclip-lmdb", "celebamask-hq")


@dataclass
class CelebaStandIn:
    """What was written: per split, the items (manifest fields + sha256 per distribution); the source paths."""

    root: Path
    items: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def paths(self) -> dict[str, Path]:
        out = {"raw-folder": self.root / "celeba_hq_raw", "raw-zip": self.root / "celeba_hq_raw.zip",
               "celebamask-folder": self.root / "CelebAMask-HQ", "celebamask-zip": self.root / "CelebAMask-HQ.zip"}
        out.update({f"lmdb-{split}": self.root / f"LMDB_{split}" for split in self.items})
        return out


def _mapping() -> dict[str, tuple[int, int]]:
    """CelebA file -> (CelebA-HQ index, CelebA index), from the fixtures' mapping file."""
    path = fixtures_dir() / "celebahq" / "CelebA-HQ-to-CelebA-mapping.noheader.txt"
    if not path.is_file():
        raise DataError(f"the CelebA-HQ mapping file is not at {path}", fix="set ASYRP_FIXTURES")
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            out[parts[2]] = (int(parts[0]), int(parts[1]))
    return out


def _fixture_faces() -> list[tuple[str, bytes]]:
    """(CelebA file, JPEG bytes) of the fixture faces, in the fixture manifest's order."""
    from benchmark.core.paths import MANIFESTS_DIR
    from benchmark.inputs.manifests import ManifestRegistry

    manifest = ManifestRegistry(MANIFESTS_DIR).get("dataset", "celebahq-fixtures").manifest
    folder = fixtures_dir() / "celebahq" / "images"
    return [(it.celeba_file, (folder / it.file).read_bytes()) for it in manifest.items]


def _perturbed(data: bytes, rng: random.Random) -> bytes:
    from PIL import Image, ImageEnhance

    img = Image.open(io.BytesIO(data)).convert("RGB")
    size = img.size[0]
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    crop = rng.randint(0, size * 3 // 100)
    left, top = rng.randint(0, crop), rng.randint(0, crop)
    img = img.crop((left, top, left + size - crop, top + size - crop)).resize((size, size), Image.BICUBIC)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.95, 1.05))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_faces(counts: dict[str, int], seed: int) -> dict[str, list[tuple[str, bytes]]]:
    """Per split, (CelebA file, 1024² JPEG bytes), sorted by file name; all files distinct."""
    faces, mapping = _fixture_faces(), _mapping()
    rng = random.Random(seed)
    used = {name for name, _ in faces}
    spare = sorted(set(mapping) - used)
    pool: list[tuple[str, bytes]] = []
    for i in range(sum(counts.values())):
        if i < len(faces):
            pool.append(faces[i])
        else:
            name = spare.pop(rng.randrange(len(spare)))
            pool.append((name, _perturbed(faces[i % len(faces)][1], rng)))
    out, start = {}, 0
    for split in SPLITS:
        n = counts.get(split, 0)
        out[split] = sorted(pool[start:start + n])
        start += n
    return out


def _lmdb_jpeg(data: bytes) -> bytes:
    """DiffusionCLIP's conversion of one raw image: bilinear to 256², JPEG quality 100."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB").resize((256, 256), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=100)
    return buf.getvalue()


def _write_lmdb(folder: Path, blobs: list[bytes]) -> None:
    import lmdb

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = lmdb.open(str(folder), map_size=max(1 << 24, 4 * sum(len(b) for b in blobs)), readahead=False)
    with env.begin(write=True) as txn:
        for i, blob in enumerate(blobs):
            txn.put(f"256-{i:05d}".encode(), blob)
        txn.put(b"length", str(len(blobs)).encode())
    env.close()


def _zip_folder(folder: Path, path: Path, *, top: str | None) -> None:
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = file.relative_to(folder).as_posix()
            info = zipfile.ZipInfo(f"{top}/{rel}" if top else rel, date_time=(2022, 1, 1, 0, 0, 0))
            zf.writestr(info, file.read_bytes())


def forge_celebahq(root: Path, counts: dict[str, int], *, seed: int = 0) -> CelebaStandIn:
    """Write the stand-in under `root` (replacing what is there) and return its items and paths."""
    root = Path(root)
    raw, mask = root / "celeba_hq_raw", root / "CelebAMask-HQ"
    for old in (raw, mask):
        shutil.rmtree(old, ignore_errors=True)
    mapping, stand_in = _mapping(), CelebaStandIn(root)
    for split, faces in make_faces(counts, seed).items():
        if not faces:
            continue
        lmdb_blobs, items = [], []
        for name, data in faces:
            (raw / "raw_images" / split / "images").mkdir(parents=True, exist_ok=True)
            (raw / "raw_images" / split / "images" / name).write_bytes(data)
            hq, orig = mapping[name]
            (mask / "CelebA-HQ-img").mkdir(parents=True, exist_ok=True)
            (mask / "CelebA-HQ-img" / f"{hq}.jpg").write_bytes(data)
            lmdb_blobs.append(_lmdb_jpeg(data))
            items.append({"id": Path(name).stem, "celebahq_index": hq, "celeba_file": name, "celeba_index": orig,
                          "sha256": {"stylemapgan-raw": sha256_bytes(data),
                                     "diffusionclip-lmdb": sha256_bytes(lmdb_blobs[-1]),
                                     "celebamask-hq": sha256_bytes(data)}})
        _write_lmdb(root / f"LMDB_{split}", lmdb_blobs)
        stand_in.items[split] = items
    shared = fixtures_dir() / "celebahq"
    shutil.copyfile(shared / "CelebA-HQ-to-CelebA-mapping.noheader.txt", mask / "CelebA-HQ-to-CelebA-mapping.txt")
    shutil.copyfile(shared / "CelebAMask-HQ-attribute-anno.txt", mask / "CelebAMask-HQ-attribute-anno.txt")
    _zip_folder(raw, root / "celeba_hq_raw.zip", top=None)
    _zip_folder(mask, root / "CelebAMask-HQ.zip", top="CelebAMask-HQ")
    return stand_in
