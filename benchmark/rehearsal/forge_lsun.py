"""An LSUN stand-in: a `<category>_val_lmdb` folder laid out as LSUN ships it (fyu/lsun `download.py`: an LMDB,
`data.mdb` + `lock.mdb`, keys 40-hex-digit image hashes, values webp bytes whose shorter side is 256), holding a
few generated scenes (never real photographs, never fixture faces).

A scene: a vertical sky gradient, a ground band and a few seeded blocks (a building's silhouette), so the
images are distinct and non-uniform (a CLIP or Inception feature of a flat image would be degenerate). Sizes vary
(256 × 256..341, landscape and portrait), as LSUN's do, so the loader's Resize(256) + CenterCrop(256) is taken.
"""

from __future__ import annotations

import hashlib
import io
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

#: LSUN category of each LSUN suite's dataset (its `<category>_val_lmdb`).
CATEGORIES = {"lsun-church-outdoor-val-first100": "church_outdoor", "lsun-bedroom-val-first100": "bedroom"}


@dataclass
class LsunStandIn:
    """The LMDB folder per dataset manifest name, and its keys in cursor (= sorted) order."""

    root: Path
    paths: dict[str, Path] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)


def scene_webp(rng: random.Random, short: int = 256) -> bytes:
    """One generated scene as webp, shorter side `short`."""
    from PIL import Image, ImageDraw

    long = rng.randint(short, short * 4 // 3)
    w, h = (long, short) if rng.random() < 0.6 else (short, long)
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    top, bottom = [rng.randint(0, 255) for _ in range(3)], [rng.randint(0, 255) for _ in range(3)]
    for y in range(h):
        a = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(t + (b - t) * a) for t, b in zip(top, bottom, strict=True)))
    horizon = rng.randint(h // 2, h * 4 // 5)
    draw.rectangle([0, horizon, w, h], fill=tuple(rng.randint(0, 160) for _ in range(3)))
    for _ in range(rng.randint(3, 6)):
        x0, bw = rng.randint(0, w - 20), rng.randint(15, w // 3)
        y0 = rng.randint(h // 6, horizon - 10)
        draw.rectangle([x0, y0, x0 + bw, horizon], fill=tuple(rng.randint(0, 255) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format="WEBP", quality=80)
    return buf.getvalue()


def write_lsun_lmdb(folder: Path, blobs: list[bytes], salt: str) -> list[str]:
    """An LMDB of `blobs` under LSUN-like keys (sha1 hex of `salt` and the position); returns the keys sorted
    (LMDB cursor order)."""
    import lmdb

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    keys = [hashlib.sha1(f"{salt}:{i}".encode()).hexdigest() for i in range(len(blobs))]
    env = lmdb.open(str(folder), map_size=max(1 << 24, 4 * sum(len(b) for b in blobs)), readahead=False)
    with env.begin(write=True) as txn:
        for key, blob in zip(keys, blobs, strict=True):
            txn.put(key.encode(), blob)
    env.close()
    return sorted(keys)


def forge_lsun(root: Path, datasets, n: int, *, seed: int = 0) -> LsunStandIn:
    """One `<category>_val_lmdb` with `n` scenes per named LSUN dataset manifest, under `root`."""
    root, out = Path(root), LsunStandIn(Path(root))
    for name in datasets:
        category = CATEGORIES[name]
        rng = random.Random(f"{seed}:{category}")
        folder = root / f"{category}_val_lmdb"
        out.keys[name] = write_lsun_lmdb(folder, [scene_webp(rng) for _ in range(n)], f"{seed}:{category}")
        out.paths[name] = folder
    return out
