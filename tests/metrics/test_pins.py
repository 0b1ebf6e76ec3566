"""A metric back-end is checked against its model manifest's pin (file, archive member, or lock), so another
manifest tree is checked against its own digests."""

from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.lock import LockFile, model_key
from benchmark.inputs.manifests import ManifestRegistry
from benchmark.inputs.pins import metric_backend_pin


def test_pins_come_from_the_manifest(tmp_path):
    reg = ManifestRegistry(MANIFESTS_DIR)
    clip = reg.get("model", "clip-vit-b32-openai").manifest
    assert metric_backend_pin(clip, "sdir@1", "clip-vit-b32-openai") == clip.files[0].sha256
    arcface = reg.get("model", "arcface-buffalo-l").manifest
    member = next(m for m in arcface.loader_args["unzip_members"] if m["path"] == "w600k_r50.onnx")
    assert metric_backend_pin(arcface, "id@1", "arcface-buffalo-l") == member["sha256"]
    inception = reg.get("model", "inception-v3-compat").manifest
    lock = LockFile.load(tmp_path / "lock.json")
    assert metric_backend_pin(inception, "fid@1", "inception-v3-compat", lock) is None  # not pinned, not locked
    lock.record(model_key(inception.ref), inception.files[0].path, "ab" * 32)
    assert metric_backend_pin(inception, "fid@1", "inception-v3-compat", lock) == "ab" * 32
