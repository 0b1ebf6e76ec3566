"""validate: every problem collected as a record with its fix; nothing computed."""

import json
import shutil

import pytest
import torch

from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.lock import LockFile
from benchmark.inputs.manifests import ManifestRegistry
from benchmark.inputs.validate import validate_suite


@pytest.fixture(scope="module")
def registry():
    return ManifestRegistry()


def _codes(report):
    return {p.code for p in report.problems if p.severity == "error"}


def _place_fixture_checkpoints(root, fixtures):
    for a in ["smiling", "sad", "tanned", "pixar", "neanderthal"]:
        name = f"{a}_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"
        (root / f"asyrp-ft-{a}@1").mkdir(parents=True)
        shutil.copyfile(fixtures / "asyrp_official" / "checkpoints" / name, root / f"asyrp-ft-{a}@1" / name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA report")
def test_paper_table_on_this_machine_lists_everything_missing_with_fixes(registry, tmp_path):
    report = validate_suite("paper-table", registry=registry, weights_root=tmp_path / "w", out_dir=tmp_path / "out",
                            lock=LockFile.load(tmp_path / "lock.json"))
    assert not report.ok and report.exit_code == 2
    assert {"weights-missing", "device-no-cuda", "data-missing"} <= _codes(report)
    missing = {p.subject for p in report.problems if p.code == "weights-missing"}
    assert {"model sdedit-celebahq@1", "model clip-vit-b16-openai@1"} <= missing
    fixes = "\n".join(p.fix for p in report.problems)
    assert "python run_all.py fetch sdedit-celebahq@1" in fixes and "--profile tiny" in fixes
    assert any(p.code == "dataset-unpinned" and p.severity == "warning" for p in report.problems)
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False
    assert "fix:" in report.render()


def test_tiny_official_checkpoints_validate_with_fixture_weights_lists_only_the_misfit(registry, fixtures, tmp_path):
    _place_fixture_checkpoints(tmp_path / "w", fixtures)
    report = validate_suite("official-checkpoints", profile="tiny", registry=registry,
                            data_root=fixtures / "celebahq", weights_root=tmp_path / "w", out_dir=tmp_path / "out",
                            lock=LockFile.load(tmp_path / "lock.json"))
    # The released 512-channel f_t cannot edit with the profile's tiny 16-channel DDPM: that is the one problem,
    # and `run` stops with it before any compute (the profile still serves fetch and lock).
    assert [p.code for p in report.problems] == ["ft-checkpoint-misfit"], report.render()
    assert "asyrp-ft-smiling@1" in report.problems[0].message and "without `--profile tiny`" in report.problems[0].fix
    assert report.checked == ["manifests", "device", "output folder", "cache folder", "disk", "weights", "dataset"]
    assert report.manifest_digests["model:asyrp-ft-smiling@1"]


def test_wrong_digests_missing_data_and_unwritable_output_are_all_reported(registry, fixtures, tmp_path):
    _place_fixture_checkpoints(tmp_path / "w", fixtures)
    ck = tmp_path / "w" / "asyrp-ft-sad@1" / "sad_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"
    blob = bytearray(ck.read_bytes())
    blob[1000] ^= 0xFF
    ck.write_bytes(bytes(blob))
    data = tmp_path / "data"
    shutil.copytree(fixtures / "celebahq" / "images", data / "images")
    (data / "images" / "000121.jpg").write_bytes(b"\xff\xd8 not the original")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    report = validate_suite("official-checkpoints", profile="tiny", registry=registry, data_root=data,
                            weights_root=tmp_path / "w", out_dir=blocker / "out",
                            lock=LockFile.load(tmp_path / "lock.json"))
    assert _codes(report) == {"weights-digest", "data-digest", "out-not-writable", "ft-checkpoint-misfit"}
    by_code = {p.code: p for p in report.problems}
    assert "asyrp-ft-sad@1" in by_code["weights-digest"].fix and "000121.jpg" in by_code["data-digest"].message


def test_unknown_suite_and_broken_manifests(tmp_path):
    report = validate_suite("paper-tabel")
    assert _codes(report) == {"suite-unknown"} and "Did you mean: paper-table@1" in report.problems[0].message
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, root, ignore=shutil.ignore_patterns("lock.json"))
    (root / "attributes" / "sad.yaml").write_text("kind: attribute\n  name: sad\n")
    report = validate_suite("paper-table", profile="tiny", registry=ManifestRegistry(root),
                            data_root=tmp_path / "absent", lock=LockFile.load(tmp_path / "lock.json"))
    assert {"manifest-invalid", "reference-unknown", "data-missing"} <= _codes(report)
    assert any("sad.yaml: malformed YAML" in p.message for p in report.problems)


def test_unknown_metric_and_low_disk(registry, fixtures, tmp_path, monkeypatch):
    import benchmark.inputs.validate as v

    monkeypatch.setattr(v, "free_bytes", lambda path: 10**6)
    report = validate_suite("paper-table", profile="tiny", registry=registry, data_root=fixtures / "celebahq",
                            known_metrics=["sdir@1", "sc@1", "fid@1", "kid@1"], out_dir=tmp_path,
                            lock=LockFile.load(tmp_path / "lock.json"))
    assert _codes(report) == {"reference-unknown", "disk-space"}
    assert any("Unknown metric 'id@1'" in p.message for p in report.problems)


def test_lock_suite_records_unknown_digests_once(registry, fixtures, tmp_path):
    from benchmark.inputs.lock_digests import lock_suite
    from benchmark.inputs.manifests import manifest_from_dict, resolve_suite

    rs = resolve_suite("official-checkpoints@1", profile="tiny", registry=registry)
    # pretend the manifest did not pin the fixture images: lock must record all 11, then find them known
    doc = rs.dataset.manifest.model_dump(mode="json")
    for it in doc["items"]:
        it["sha256"] = {"fixtures": None}
    unpinned = type(rs.dataset)(rs.dataset.ref, rs.dataset.digest, manifest_from_dict(doc), rs.dataset.path)
    rs = type(rs)(**{**rs.__dict__, "dataset": unpinned})
    lock = LockFile.load(tmp_path / "lock.json")
    first = lock_suite(rs, data_root=fixtures / "celebahq", weights_root=tmp_path / "w", lock=lock)
    assert first.recorded == {"dataset:celebahq-fixtures@1:fixtures": 11}
    assert len(first.missing) == 5  # the f_t checkpoints are not fetched here
    second = lock_suite(rs, data_root=fixtures / "celebahq", weights_root=tmp_path / "w",
                        lock=LockFile.load(tmp_path / "lock.json"))
    assert second.recorded == {} and second.already_known == 11
