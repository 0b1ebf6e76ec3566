"""Dataset loading: a folder, a zip or DiffusionCLIP's LMDB -> canonical uint8 N×3×S×S RGB tensors + ids.

The readers of the three layouts live in `benchmark.inputs.data_sources`. Order of work, so bad data costs seconds, not an hour of compute:
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from benchmark.core.errors import DataError, DigestMismatchError
from benchmark.core.hashing import sha256_bytes
from benchmark.core.images import check_uint8_images
from benchmark.inputs.data_sources import Reader, open_source
from benchmark.inputs.lock import LockFile, check_digest, dataset_key, lock_command
from benchmark.inputs.manifests import DatasetItem, DatasetManifest, Distribution, Preprocessing

_JPEG_MODES = ("RGB",)


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


def select_by_rule(manifest: DatasetManifest, reader: Reader) -> list[DatasetItem]:
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
    img = img.resize((size, size), Image.BICUBIC if spec.resize == "pil-bicubic" else Image.BILINEAR)
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


def decode_item(data: bytes, where: str, manifest: DatasetManifest, dist: Distribution, dist_name: str):
    """Step 2 for one item: decode fully, check the distribution's size and the mode, preprocess (H×W×3 uint8)."""
    img = decode_image(data, where)
    if not _native_size_ok(img, dist):
        shape = (f"images whose shorter side is {dist.image_size}" if dist.size == "shorter-side"
                 else f"{dist.image_size}×{dist.image_size} images")
        raise DataError(f"{where}: {img.size[0]}×{img.size[1]} image, but the {dist_name} distribution holds {shape}",
                        fix="point at the distribution the manifest describes (docs/data.md)")
    return preprocess(img, manifest.preprocessing, manifest.image_size, where=where)


@dataclass(frozen=True)
class _Reading:
    """What the checks of one read share: the source, the lock entry, and what to do with unknown digests."""

    manifest: DatasetManifest
    dist_name: str
    reader: Reader
    lock: LockFile | None
    record: bool
    decode: bool
    relock: bool
    relock_command: str

    @property
    def key(self) -> str:
        return dataset_key(self.manifest.ref, self.dist_name)


def read_verified(manifest: DatasetManifest, root: str | Path, *, distribution: str | None = None,
                  limit: int | None = None, lock: LockFile | None = None, record: bool = True,
                  decode: bool = False, relock: bool = False, relock_command: str | None = None,
                  ) -> tuple[str, list[DatasetItem], list[bytes], dict[str, str], dict[str, str]]:
    """Step 1: read every item's bytes and check every digest; raise one error listing all problems.

    `decode=True` (what `lock` does) also decodes each image and checks its size and mode before its digest is
    recorded, so the lock never records a file that `run` would refuse. `relock=True` (`lock --relock`) replaces
    locked (never pinned) digests and memberships with this copy's; `relock_command` is the command a mismatch
    against the lock names as its fix."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data for {manifest.ref} not found: {root} does not exist",
                        fix="pass the folder, zip or LMDB folder that holds it (docs/data.md says where each "
                            "distribution comes from)")
    dist_name = pick_distribution(manifest, root, distribution)
    reading = _Reading(manifest, dist_name, open_source(root, manifest.distributions[dist_name].layout), lock, record,
                       decode, relock, relock_command or lock_command(None, root=root))
    blobs, digests, states, problems = [], {}, {}, []
    try:
        items = list(manifest.items) if manifest.items else _members_by_rule(reading)
        if limit is not None:
            items = items[:limit]
        for pos, item in enumerate(_progress(items, f"checking {manifest.ref}")):
            try:
                data, actual, states[item.id] = _check_item(reading, item, pos)
            except DataError as e:
                problems.append(e)
                continue
            digests[item.id] = actual
            blobs.append(data)
    finally:
        reading.reader.close()
    if problems:
        shown = "\n".join(f"  - {p.message}" for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        cls = DigestMismatchError if all(isinstance(p, DigestMismatchError) for p in problems) else DataError
        raise cls(f"{manifest.ref} ({dist_name}) from {root}: {len(problems)} of {len(items)} items failed the "
                  f"checks:\n{shown}{more}", fix=problems[0].fix or "point at a complete, unmodified copy")
    return dist_name, items, blobs, digests, states


def _members_by_rule(r: _Reading) -> list[DatasetItem]:
    """The items of a dataset defined by a rule: taken from the user's copy, checked against the locked ones."""
    m, lock = r.manifest, r.lock
    if r.dist_name != m.selection.distribution:
        raise DataError(f"{m.ref} does not list its items yet, so its membership can only be taken from the "
                        f"{m.selection.distribution!r} distribution by its rule ({m.selection.rule})",
                        fix=f"pass the {m.selection.distribution} source (docs/data.md)")
    items = select_by_rule(m, r.reader)
    locked = lock.members(r.key) if lock is not None else None
    ids = [it.id for it in items]
    if locked is not None and locked != ids and not r.relock:
        diff = sorted(set(ids) ^ set(locked))[:5]
        raise DigestMismatchError(f"{r.reader.root}: the first {m.count} images by the rule differ from the "
                                  f"membership recorded in {lock.path} (e.g. {diff})",
                                  fix="use the same copy of the data as the first run, or re-lock it if the "
                                      f"recorded copy was wrong: `{r.relock_command}`")
    if (locked is None or r.relock) and r.record and lock is not None and locked != ids:
        lock.record_members(r.key, ids, source=str(r.reader.root))
    return items


def _check_item(r: _Reading, item: DatasetItem, pos: int) -> tuple[bytes, str, str]:
    """(bytes, sha256, digest state) of one item; a DataError when it is missing, mismatched or (with `decode`)
    does not decode to the distribution's size and mode. Its digest is recorded only after every check."""
    dist = r.manifest.distributions[r.dist_name]
    key = item_key(dist, item, pos)
    data = r.reader.read(key)
    what = r.reader.describe(key)
    if data is None:
        raise DataError(f"missing: {what} (item {item.id})")
    actual = sha256_bytes(data)
    state = check_digest(  # the digest first: bytes are decoded only once they are the pinned ones
        actual, pinned=item.sha256.get(r.dist_name), lock=r.lock, key=r.key, member=item.id, what=what,
        record=False, relock=r.relock,
        fix="replace the file with the original (see docs/data.md), never edit the manifest to match",
        relock_fix=f"if {what} is the intact original (the lock then recorded a damaged copy), re-lock it: "
                   f"`{r.relock_command}` (it decodes every image first); otherwise replace it with the original "
                   "(docs/data.md)")
    if r.decode:
        decode_item(data, f"{what} (item {item.id})", r.manifest, dist, r.dist_name)
    if state == "unknown" and r.record and r.lock is not None:
        r.lock.record(r.key, item.id, actual, source=str(r.reader.root))
        state = "recorded"
    return data, actual, state


def load_dataset(manifest: DatasetManifest, root: str | Path, *, distribution: str | None = None,
                 limit: int | None = None, lock: LockFile | None = None, record: bool = True,
                 relock_command: str | None = None) -> ImageSet:
    """Load a dataset manifest's images from `root` as canonical uint8 N×3×S×S tensors, digests checked first.

    `lock` supplies the digests the manifest leaves null and receives the ones seen for the first time
    (`record=True`; call `lock.save()` afterwards). `limit` takes the first N items (a run marks that as
    not for reporting).
    """
    dist_name, items, blobs, digests, states = read_verified(manifest, root, distribution=distribution,
                                                             limit=limit, lock=lock, record=record,
                                                             relock_command=relock_command)
    dist = manifest.distributions[dist_name]
    arrays = []
    for pos, (item, data) in enumerate(zip(items, _progress(blobs, f"decoding {manifest.ref}"), strict=True)):
        arrays.append(decode_item(data, f"{manifest.ref} item {item.id} ({dist_name} #{pos})", manifest, dist,
                                  dist_name))
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
