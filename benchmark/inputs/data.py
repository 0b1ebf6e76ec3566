"""Dataset loading: a folder, a zip or DiffusionCLIP's LMDB -> canonical uint8 N×3×S×S RGB tensors + ids.

Order of work, so bad data costs seconds, not an hour of compute:
1. find every item's file (path templates go through `safe_join`; zip members and LMDB keys are looked up
   exactly), read its bytes and check its sha256 against the manifest or the lock file; every missing file and
   every mismatch is collected and reported together;
2. decode each image fully (a truncated or corrupt JPEG fails here), check its size and mode, and preprocess.

Canonical preprocessing (docs/data.md): images at the distribution's native size are resized to the dataset's
`image_size` with PIL BILINEAR (what DiffusionCLIP's `prepare_lmdb_data.py` used to build the LMDB the authors
trained and tested on; torchvision's `resize` on a PIL image calls exactly this), then, when the manifest says
so, encoded as JPEG at the same quality as the LMDB (q=100, Pillow defaults) and decoded again. Images already
at `image_size` (the LMDB's own bytes, canonical PNGs) are only decoded.
"""

from __future__ import annotations

import fnmatch
import io
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from benchmark.core.errors import DataError, DigestMismatchError
from benchmark.core.hashing import sha256_bytes
from benchmark.core.images import check_uint8_images
from benchmark.core.paths import safe_join
from benchmark.inputs.lock import LockFile, check_digest, dataset_key
from benchmark.inputs.manifests import DatasetItem, DatasetManifest, Distribution, Preprocessing

_JPEG_MODES = ("RGB",)


# ---------------------------------------------------------------------------------------------------- readers


class _Reader:
    """Bytes by relative key from one source; `describe(key)` says where that is, for messages."""

    root: Path

    def read(self, key: str) -> bytes | None:  # None = not there
        raise NotImplementedError

    def listing(self, folder: str) -> list[str]:
        raise NotImplementedError

    def describe(self, key: str) -> str:
        return f"{self.root}/{key}"

    def close(self) -> None:
        pass


class FolderReader(_Reader):
    def __init__(self, root: Path):
        self.root = root

    def read(self, key: str) -> bytes | None:
        path = safe_join(self.root, key)
        return path.read_bytes() if path.is_file() else None

    def listing(self, folder: str) -> list[str]:
        path = safe_join(self.root, folder)
        return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []


class ZipReader(_Reader):
    """Members are looked up by exact name, optionally under the zip's single top-level folder."""

    def __init__(self, root: Path):
        self.root = root
        try:
            self._zip = zipfile.ZipFile(root)
        except zipfile.BadZipFile:
            raise DataError(f"{root} is not a readable zip file (truncated download?)",
                            fix="download the archive again, or point at the unpacked folder") from None
        names = self._zip.namelist()
        tops = {n.split("/", 1)[0] for n in names if "/" in n}
        self._prefix = f"{tops.pop()}/" if len(tops) == 1 and not any("/" not in n for n in names) else ""
        self._names = set(names)

    def _member(self, key: str) -> str | None:
        for name in (key, self._prefix + key):
            if name in self._names:
                return name
        return None

    def read(self, key: str) -> bytes | None:
        member = self._member(key)
        if member is None:
            return None
        try:
            return self._zip.read(member)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{self.describe(key)}: cannot be read from the zip ({e})",
                            fix="download the archive again") from None

    def listing(self, folder: str) -> list[str]:
        out = set()
        for prefix in (f"{folder}/", f"{self._prefix}{folder}/"):
            out |= {n[len(prefix):] for n in self._names if n.startswith(prefix) and "/" not in n[len(prefix):]}
        return sorted(n for n in out if n)

    def describe(self, key: str) -> str:
        return f"{self.root}:{self._member(key) or key}"

    def close(self) -> None:
        self._zip.close()


class LmdbReader(_Reader):
    def __init__(self, root: Path):
        import lmdb

        self.root = root
        try:
            self._env = lmdb.open(str(root), readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as e:
            raise DataError(f"{root} is not a readable LMDB ({e})",
                            fix="point at DiffusionCLIP's data/celeba_hq/LMDB_test folder (it holds data.mdb)") from None

    def read(self, key: str) -> bytes | None:
        with self._env.begin(write=False) as txn:
            value = txn.get(key.encode("utf-8"))
        return bytes(value) if value is not None else None

    def listing(self, folder: str) -> list[str]:
        """The keys, sorted (an LMDB cursor's own order is the keys' byte order; for ASCII keys, the same)."""
        if folder != ".":
            raise DataError(f"{self.root}: an LMDB has no folders to list (asked for {folder!r})",
                            fix="apply the selection rule to the raw images (folder or zip) instead")
        with self._env.begin(write=False) as txn:
            return sorted(bytes(k).decode("utf-8", "replace") for k, _ in txn.cursor())

    def describe(self, key: str) -> str:
        return f"{self.root}[{key}]"

    def close(self) -> None:
        self._env.close()


def open_source(root: str | Path, layout: str) -> _Reader:
    """A reader for `root`, which must match the distribution's layout."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data not found: {root} does not exist",
                        fix="pass the folder (or zip, or LMDB folder) that holds the dataset; docs/data.md says "
                            "where each distribution comes from")
    if layout == "lmdb":
        if not (root / "data.mdb").is_file():
            raise DataError(f"{root} is not an LMDB folder (no data.mdb)",
                            fix="point at DiffusionCLIP's data/celeba_hq/LMDB_<split> folder")
        return LmdbReader(root)
    if root.is_file():
        if zipfile.is_zipfile(root):
            return ZipReader(root)
        raise DataError(f"{root} is a file but not a zip archive", fix="pass a folder, a .zip or an LMDB folder")
    return FolderReader(root)


# ---------------------------------------------------------------------------------------------------- items


def item_key(dist: Distribution, item: DatasetItem, position: int) -> str:
    """The relative path (or LMDB key) of an item in a distribution; refuses keys that escape their root."""
    fields: dict[str, Any] = {**(item.model_extra or {}), "id": item.id, "position": position}
    try:
        key = dist.template.format_map(fields)
    except (KeyError, IndexError, ValueError) as e:
        raise DataError(f"item {item.id!r}: the template {dist.template!r} needs field {e}, which the item lacks",
                        fix="add the field to every item (regenerate the manifest with its script)") from None
    if dist.layout == "files":
        p = PurePosixPath(key)
        if p.is_absolute() or ".." in p.parts or "\\" in key:
            raise DataError(f"item {item.id!r}: path {key!r} escapes the data root",
                            fix="item fields used in path templates must not contain '..' or absolute paths")
    return key


def select_by_rule(manifest: DatasetManifest, reader: _Reader) -> list[DatasetItem]:
    """Apply the manifest's selection rule to the user's copy: the first `count` sorted names matching `pattern`."""
    sel = manifest.selection
    assert sel is not None
    names = [n for n in reader.listing(sel.listing) if fnmatch.fnmatch(n, sel.pattern)]
    if len(names) < manifest.count:
        raise DataError(f"{reader.describe(sel.listing)} holds {len(names)} files matching {sel.pattern!r}, but "
                        f"{manifest.ref} takes the first {manifest.count}",
                        fix="point at the complete split (docs/data.md describes the expected layout)")
    return [DatasetItem(id=PurePosixPath(n).stem, **{sel.name_field: n}) for n in sorted(names)[:manifest.count]]


# ---------------------------------------------------------------------------------------------------- images


def decode_image(data: bytes, where: str):
    """Fully decode image bytes with PIL; a corrupt or truncated file is a DataError that names it."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # JPEG decoding is lazy; a truncated file only fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{where}: corrupt or truncated image ({e})",
                        fix="replace the file with an intact copy from the original archive") from None
    return img


def preprocess(img, spec: Preprocessing, size: int, *, where: str = "image") -> np.ndarray:
    """Canonical preprocessing to an H×W×3 uint8 array of `size`² (see the module docstring)."""
    from PIL import Image

    if img.mode not in _JPEG_MODES:
        raise DataError(f"{where}: mode {img.mode} (expected RGB)",
                        fix="CelebA-HQ images are RGB; this file is from another source or was converted")
    if spec.resize == "shorter-side-center-crop":
        return np.asarray(shorter_side_center_crop(img, size), dtype=np.uint8).copy()
    if img.size == (size, size):
        return np.asarray(img, dtype=np.uint8).copy()
    img = img.resize((size, size), Image.BILINEAR)
    if spec.jpeg_quality is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=spec.jpeg_quality)
        img = Image.open(io.BytesIO(buf.getvalue()))
        img.load()
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def shorter_side_center_crop(img, size: int):
    """torchvision's `Resize(size)` + `CenterCrop(size)` on a PIL image: the shorter side to `size` (bilinear; the
    longer one to int(size · long / short)), unchanged when it is already `size`, then the centre `size`² crop
    (offsets rounded as torchvision does)."""
    from PIL import Image

    w, h = img.size
    short, long = min(w, h), max(w, h)
    if short != size:
        new_long = int(size * long / short)
        img = img.resize((size, new_long) if w <= h else (new_long, size), Image.BILINEAR)
        w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _native_size_ok(img, dist: Distribution) -> bool:
    if dist.size == "shorter-side":
        return min(img.size) == dist.image_size
    return img.size == (dist.image_size, dist.image_size)


# ---------------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class ImageSet:
    """Canonical images of a dataset: uint8 N×3×S×S (`benchmark.core.images` convention) and their ids, in order."""

    images: torch.Tensor
    ids: list[str]
    dataset: str
    distribution: str
    digests: dict[str, str] = field(default_factory=dict)
    digest_states: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def pick_distribution(manifest: DatasetManifest, root: Path, distribution: str | None) -> str:
    """The named distribution, or the one whose layout matches `root` (an LMDB folder, else files)."""
    if distribution is not None:
        if distribution not in manifest.distributions:
            from benchmark.inputs.manifests import unknown_message

            raise DataError(unknown_message(f"distribution of {manifest.ref}", distribution,
                                            list(manifest.distributions)),
                            fix="pick one of the distributions the manifest lists")
        return distribution
    layout = "lmdb" if (root / "data.mdb").is_file() else "files"
    candidates = [n for n, d in manifest.distributions.items() if d.layout == layout]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError(f"{root} looks like a {layout} source, but {manifest.ref} has no {layout} distribution",
                        fix="pass the source of one of: " + ", ".join(manifest.distributions))
    if not manifest.items and manifest.selection.distribution in candidates:
        return manifest.selection.distribution  # only the rule's distribution can supply an unpinned membership
    if manifest.items:  # several file layouts: the first whose first item exists
        reader = open_source(root, layout)
        try:
            for name in candidates:
                if reader.read(item_key(manifest.distributions[name], manifest.items[0], 0)) is not None:
                    return name
        finally:
            reader.close()
    raise DataError(f"cannot tell which distribution of {manifest.ref} {root} holds (candidates: "
                    + ", ".join(candidates) + ")", fix="pass distribution=<name> (--distribution on the CLI)")


def read_verified(manifest: DatasetManifest, root: str | Path, *, distribution: str | None = None,
                  limit: int | None = None, lock: LockFile | None = None, record: bool = True,
                  ) -> tuple[str, list[DatasetItem], list[bytes], dict[str, str], dict[str, str]]:
    """Step 1: read every item's bytes and check every digest; raise one error listing all problems."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data for {manifest.ref} not found: {root} does not exist",
                        fix="pass the folder, zip or LMDB folder that holds it (docs/data.md says where each "
                            "distribution comes from)")
    dist_name = pick_distribution(manifest, root, distribution)
    dist = manifest.distributions[dist_name]
    reader = open_source(root, dist.layout)
    key_prefix = dataset_key(manifest.ref, dist_name)
    try:
        if manifest.items:
            items = list(manifest.items)
        else:
            if dist_name != manifest.selection.distribution:
                raise DataError(f"{manifest.ref} does not list its items yet, so its membership can only be taken "
                                f"from the {manifest.selection.distribution!r} distribution by its rule "
                                f"({manifest.selection.rule})",
                                fix=f"pass the {manifest.selection.distribution} source (docs/data.md)")
            items = select_by_rule(manifest, reader)
            locked = lock.members(key_prefix) if lock is not None else None
            ids = [it.id for it in items]
            if locked is not None and locked != ids:
                diff = sorted(set(ids) ^ set(locked))[:5]
                raise DigestMismatchError(f"{reader.root}: the first {manifest.count} images by the rule differ from "
                                          f"the membership recorded in {lock.path} (e.g. {diff})",
                                          fix="use the same copy of the data as the first run, or delete the "
                                              "lock entry if the recorded copy was wrong")
            if locked is None and record and lock is not None:
                lock.record_members(key_prefix, ids, source=str(reader.root))
        if limit is not None:
            items = items[:limit]
        blobs, digests, states, problems = [], {}, {}, []
        for pos, item in enumerate(_progress(items, f"checking {manifest.ref}")):
            key = item_key(dist, item, pos)
            data = reader.read(key)
            if data is None:
                problems.append(DataError(f"missing: {reader.describe(key)} (item {item.id})"))
                continue
            actual = sha256_bytes(data)
            try:
                states[item.id] = check_digest(
                    actual, pinned=item.sha256.get(dist_name), lock=lock, key=key_prefix, member=item.id,
                    what=reader.describe(key), record=record, source=str(reader.root),
                    fix="replace the file with the original (see docs/data.md), never edit the manifest to match")
            except DigestMismatchError as e:
                problems.append(e)
                continue
            digests[item.id] = actual
            blobs.append(data)
    finally:
        reader.close()
    if problems:
        shown = "\n".join(f"  - {p.message}" for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        cls = DigestMismatchError if all(isinstance(p, DigestMismatchError) for p in problems) else DataError
        raise cls(f"{manifest.ref} ({dist_name}) from {root}: {len(problems)} of {len(items)} items failed the "
                  f"checks:\n{shown}{more}", fix=problems[0].fix or "point at a complete, unmodified copy")
    return dist_name, items, blobs, digests, states


def load_dataset(manifest: DatasetManifest, root: str | Path, *, distribution: str | None = None,
                 limit: int | None = None, lock: LockFile | None = None, record: bool = True) -> ImageSet:
    """Load a dataset manifest's images from `root` as canonical uint8 N×3×S×S tensors, digests checked first.

    `lock` supplies the digests the manifest leaves null and receives the ones seen for the first time
    (`record=True`; call `lock.save()` afterwards). `limit` takes the first N items (a run marks that as
    not for reporting).
    """
    dist_name, items, blobs, digests, states = read_verified(manifest, root, distribution=distribution,
                                                             limit=limit, lock=lock, record=record)
    dist = manifest.distributions[dist_name]
    arrays = []
    for pos, (item, data) in enumerate(zip(items, _progress(blobs, f"decoding {manifest.ref}"), strict=True)):
        where = f"{manifest.ref} item {item.id} ({dist_name} #{pos})"
        img = decode_image(data, where)
        if not _native_size_ok(img, dist):
            shape = (f"images whose shorter side is {dist.image_size}" if dist.size == "shorter-side"
                     else f"{dist.image_size}×{dist.image_size} images")
            raise DataError(f"{where}: {img.size[0]}×{img.size[1]} image, but the {dist_name} distribution holds "
                            f"{shape}",
                            fix="point at the distribution the manifest describes (docs/data.md)")
        arrays.append(preprocess(img, manifest.preprocessing, manifest.image_size, where=where))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    check_uint8_images(images, manifest.ref, size=manifest.image_size)
    return ImageSet(images=images, ids=[it.id for it in items], dataset=manifest.ref, distribution=dist_name,
                    digests=digests, digest_states=states)


def _progress(seq: Iterable, desc: str):
    """tqdm on stderr for long lists; quiet for the handful of images tests use."""
    seq = list(seq)
    if len(seq) < 50:
        return seq
    from tqdm import tqdm

    return tqdm(seq, desc=desc, unit="img", file=sys.stderr, leave=False)
