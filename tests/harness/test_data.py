"""Data: folder/zip/LMDB sources, digests before compute, the authors' preprocessing, and bad input."""

import io
import shutil
import zipfile

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from benchmark.core.errors import DataError, DigestMismatchError
from benchmark.core.hashing import sha256_bytes
from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.data import load_dataset, preprocess, read_verified
from benchmark.inputs.lock import LockFile, dataset_key
from benchmark.inputs.manifests import ManifestRegistry, manifest_from_dict


@pytest.fixture(scope="module")
def fixture_manifest():
    return ManifestRegistry().get("dataset", "celebahq-fixtures").manifest


@pytest.fixture(scope="module")
def fixture_set(fixture_manifest, fixtures):
    return load_dataset(fixture_manifest, fixtures / "celebahq")


def _jpeg(arr: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _tiny_manifest(n: int, *, size: int = 64, sha=None, layout="files", template="img/{file}", selection=None):
    """A small dataset manifest over files written by the test (digests null unless given)."""
    items = [{"id": f"im{i}", "file": f"{i:03d}.jpg", "sha256": {"src": sha[i] if sha else None}} for i in range(n)]
    doc = {"schema_version": 1, "kind": "dataset", "name": "tiny", "version": 1, "description": "d",
           "image_size": 16, "count": n, "preprocessing": {"name": "p", "jpeg_quality": None},
           "distributions": {"src": {"layout": layout, "template": template, "image_size": size,
                                     "format": "jpeg"}},
           "items": [] if selection else items}
    if selection:
        doc["selection"] = selection
    return manifest_from_dict(doc)


def _write_images(folder, n, size=64, seed=0):
    rng = np.random.RandomState(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    blobs = []
    for i in range(n):
        data = _jpeg(rng.randint(0, 256, (size, size, 3), dtype=np.uint8))
        (folder / "img" / f"{i:03d}.jpg").write_bytes(data)
        blobs.append(data)
    return blobs


def test_fixture_images_load_as_canonical_uint8(fixture_set, fixture_manifest):
    s = fixture_set
    assert s.images.shape == (11, 3, 256, 256) and s.images.dtype == torch.uint8
    assert s.ids == [it.id for it in fixture_manifest.items]
    assert s.ids[0] == "119614"  # CelebAMask-HQ sample 0 = CelebA-HQ index 0 = CelebA 119614.jpg
    assert set(s.digest_states.values()) == {"pinned"}


def test_preprocessing_matches_the_authors_lmdb_pipeline(fixtures, fixture_set):
    """Reference: DiffusionCLIP prepare_lmdb_data.py = torchvision resize (bilinear) on PIL, JPEG q=100, decode."""
    from torchvision.transforms import functional as F

    img = Image.open(fixtures / "celebahq" / "images" / "000121.jpg").convert("RGB")
    resized = F.resize(img, (256, 256), F.InterpolationMode.BILINEAR)
    buf = io.BytesIO()
    resized.save(buf, format="jpeg", quality=100)
    reference = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    got = fixture_set.images[fixture_set.ids.index("000121")].permute(1, 2, 0).numpy()
    assert np.array_equal(got, reference)


def test_zip_and_lmdb_sources_give_the_same_images(tmp_path, fixture_manifest, fixture_set, fixtures):
    # a zip with a single top-level folder, as archives usually are
    zpath = tmp_path / "fixtures.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for it in fixture_manifest.items:
            zf.write(fixtures / "celebahq" / "images" / it.model_extra["file"], f"celebahq/images/{it.model_extra['file']}")
    from_zip = load_dataset(fixture_manifest, zpath)
    assert torch.equal(from_zip.images, fixture_set.images)

    # an LMDB built the way DiffusionCLIP builds it: key 256-{i:05d}, the canonical JPEG q=100 bytes
    import lmdb

    doc = fixture_manifest.model_dump(mode="json")
    doc["distributions"]["lmdb"] = {"layout": "lmdb", "template": "256-{position:05d}", "image_size": 256,
                                    "format": "jpeg"}
    manifest = manifest_from_dict(doc)
    env = lmdb.open(str(tmp_path / "LMDB_test"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, it in enumerate(fixture_manifest.items):
            img = Image.open(fixtures / "celebahq" / "images" / it.model_extra["file"]).convert("RGB")
            buf = io.BytesIO()
            img.resize((256, 256), Image.BILINEAR).save(buf, format="jpeg", quality=100)
            txn.put(f"256-{i:05d}".encode(), buf.getvalue())
    env.close()
    from_lmdb = load_dataset(manifest, tmp_path / "LMDB_test", limit=3)
    assert from_lmdb.distribution == "lmdb" and from_lmdb.ids == fixture_set.ids[:3]
    # LMDB images are taken as stored (already 256², decoded once): identical to the canonical path
    assert torch.equal(from_lmdb.images, fixture_set.images[:3])


def test_missing_data_folder_names_the_fix(fixture_manifest, tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(fixture_manifest, tmp_path / "nowhere")
    assert "does not exist" in str(e.value) and "fix:" in str(e.value)


def test_missing_files_and_wrong_digests_are_all_listed_before_any_decoding(tmp_path, fixtures, fixture_manifest):
    root = tmp_path / "celebahq"
    shutil.copytree(fixtures / "celebahq" / "images", root / "images")
    for name in ["000121.jpg", "000255.jpg"]:
        data = bytearray((root / "images" / name).read_bytes())
        data[-10] ^= 0xFF
        (root / "images" / name).write_bytes(bytes(data))
    (root / "images" / "039913.jpg").unlink()
    with pytest.raises(DataError) as e:
        load_dataset(fixture_manifest, root)
    msg = str(e.value)
    assert "3 of 11 items failed" in msg and "000121.jpg" in msg and "000255.jpg" in msg and "missing" in msg
    with pytest.raises(DigestMismatchError, match="does not match the manifest"):
        (root / "images" / "039913.jpg").write_bytes((fixtures / "celebahq" / "images" / "039913.jpg").read_bytes())
        load_dataset(fixture_manifest, root)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_or_truncated_jpeg_is_a_data_error(tmp_path, damage):
    blobs = _write_images(tmp_path, 2)
    bad = blobs[1][: len(blobs[1]) // 2] if damage == "truncated" else b"\xff\xd8not a jpeg at all" * 10
    (tmp_path / "img" / "001.jpg").write_bytes(bad)
    with pytest.raises(DataError, match="corrupt or truncated") as e:
        load_dataset(_tiny_manifest(2), tmp_path)
    assert "item im1" in str(e.value)


def test_wrong_size_and_wrong_mode_are_data_errors(tmp_path):
    _write_images(tmp_path, 2, size=48)
    with pytest.raises(DataError, match="48×48 image, but the src distribution holds 64×64"):
        load_dataset(_tiny_manifest(2), tmp_path)
    gray = io.BytesIO()
    Image.fromarray(np.zeros((64, 64), np.uint8), mode="L").save(gray, format="JPEG")
    _write_images(tmp_path, 2)
    (tmp_path / "img" / "000.jpg").write_bytes(gray.getvalue())
    with pytest.raises(DataError, match="mode L \\(expected RGB\\)"):
        load_dataset(_tiny_manifest(2), tmp_path)


def test_item_fields_cannot_escape_the_data_root(tmp_path):
    _write_images(tmp_path / "root", 1)
    (tmp_path / "secret.jpg").write_bytes(b"x")
    doc = _tiny_manifest(1).model_dump(mode="json")
    doc["items"][0]["file"] = "../../secret.jpg"
    with pytest.raises(DataError, match="escapes the data root"):
        load_dataset(manifest_from_dict(doc), tmp_path / "root")


def test_lock_records_unknown_digests_then_catches_a_changed_file(tmp_path):
    blobs = _write_images(tmp_path, 3)
    lock = LockFile.load(tmp_path / "lock.json")
    first = load_dataset(_tiny_manifest(3), tmp_path, lock=lock)
    assert set(first.digest_states.values()) == {"recorded"}
    lock.save()
    lock = LockFile.load(tmp_path / "lock.json")
    assert lock.digest(dataset_key("tiny@1", "src"), "im2") == sha256_bytes(blobs[2])
    assert set(load_dataset(_tiny_manifest(3), tmp_path, lock=lock).digest_states.values()) == {"locked"}
    (tmp_path / "img" / "002.jpg").write_bytes(_jpeg(np.full((64, 64, 3), 7, np.uint8)))
    with pytest.raises(DigestMismatchError, match="recorded in the lock file"):
        load_dataset(_tiny_manifest(3), tmp_path, lock=lock)


def test_unpinned_membership_is_taken_by_the_rule_and_locked(tmp_path):
    _write_images(tmp_path, 5)
    sel = {"rule": "first 3 sorted", "distribution": "src", "listing": "img", "pattern": "*.jpg",
           "name_field": "file"}
    manifest = _tiny_manifest(3, selection=sel)
    lock = LockFile.load(tmp_path / "lock.json")
    s = load_dataset(manifest, tmp_path, lock=lock)
    assert s.ids == ["000", "001", "002"]
    assert lock.members(dataset_key("tiny@1", "src")) == ["000", "001", "002"]
    (tmp_path / "img" / "000.jpg").unlink()  # another copy of the split: the first 3 are now different
    with pytest.raises(DigestMismatchError, match="differ from the membership recorded"):
        load_dataset(manifest, tmp_path, lock=lock)


def test_the_celebahq_split_rule_reads_the_stylemapgan_layout(tmp_path):
    """The shipped test-split manifest (rule only) applied to a fake raw_images folder: sorted CelebA names."""
    manifest = ManifestRegistry().get("dataset", "celebahq-test-first100").manifest
    folder = tmp_path / "raw_images" / "test" / "images"
    folder.mkdir(parents=True)
    for n in range(205, 100, -1):  # 105 files, written in reverse order
        (folder / f"{n * 997:06d}.jpg").write_bytes(b"placeholder")
    _, items, _, _, states = read_verified(manifest, tmp_path, record=False)
    assert [it.id for it in items] == [f"{n * 997:06d}" for n in range(101, 201)]
    assert set(states.values()) == {"unknown"}


def test_preprocess_leaves_images_at_target_size_alone():
    arr = np.random.RandomState(1).randint(0, 256, (16, 16, 3), dtype=np.uint8)
    spec = manifest_from_dict(yaml.safe_load((MANIFESTS_DIR / "datasets" / "celebahq-fixtures.yaml").read_text()))
    out = preprocess(Image.fromarray(arr), spec.preprocessing, 16)
    assert np.array_equal(out, arr)
