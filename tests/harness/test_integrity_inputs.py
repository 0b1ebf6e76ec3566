"""Inputs are checked as they are read, and every refusal names a fix that works: YAML (duplicate keys, alias
bombs, tags, non-UTF-8 files), data (truncated zips), the lock file (`lock` decodes before it records; a mismatch
against a locked digest names the entry and the `lock --relock` that re-records it), the attribute selection of a
profile, and `--limit`.
"""

from __future__ import annotations

import shutil
import time
import zipfile

import pytest
import yaml

from benchmark.cli import main
from benchmark.core.errors import BenchError, DataError, ManifestError
from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.manifests import ManifestRegistry, parse_yaml

TINY = ["--suite", "paper-table", "--profile", "tiny"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A private manifest tree, lock file and cache; returns the tree's root."""
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, root, ignore=shutil.ignore_patterns("lock.json"))
    monkeypatch.setenv("ASYRP_MANIFESTS", str(root))
    monkeypatch.setenv("ASYRP_LOCK", str(tmp_path / "lock.json"))
    monkeypatch.setenv("ASYRP_CACHE", str(tmp_path / "cache"))
    return root


# -- YAML ---------------------------------------------------------------------------------------------------------

def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(ManifestError, match=r"duplicate key 'lambda_clip' \(first at line 2\)") as err:
        parse_yaml("name: smiling\nlambda_clip: 0.8\nt_edit: 513\nlambda_clip: 0.5\n", "smiling.yaml")
    assert "fix the YAML syntax" not in err.value.fix
    assert parse_yaml("b: &b {x: 1}\nc: {<<: *b, x: 2}\n")["c"] == {"x": 2}  # a merge key may be overridden


def test_an_alias_bomb_is_refused_fast():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    start = time.perf_counter()
    with pytest.raises(ManifestError, match="alias bomb"):  # 9^9 ≈ 387 million values once expanded
        parse_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert time.perf_counter() - start < 5  # measured ~0.1 s; the unbounded digest took 46 s


def test_a_python_tag_is_refused_without_being_called_a_syntax_error():
    with pytest.raises(ManifestError, match="refused tag") as err:
        parse_yaml("name: !!python/object/apply:os.system ['touch /tmp/pwned']\n", "evil.yaml")
    assert "fix the YAML syntax" not in err.value.fix and "tag" in err.value.fix


def test_a_non_utf8_manifest_is_listed_and_every_command_still_answers(tree, tmp_path, capsys):
    (tree / "attributes" / "latin1.yaml").write_bytes("kind: attribute\nname: caf\xe9\n".encode("latin-1"))
    assert any("is not UTF-8" in e.message for e in ManifestRegistry(tree).errors)
    assert main(["ls"]) == 0
    capsys.readouterr()
    assert main(["run", *TINY, "--device", "cpu", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "latin1.yaml: is not UTF-8" in err and "fix:" in err
    assert not (tmp_path / "runs").exists()


# -- data and the lock file -----------------------------------------------------------------------------------------

def test_a_truncated_zip_is_called_a_truncated_download(tmp_path, fixtures):
    from benchmark.inputs.data import load_dataset

    manifest = ManifestRegistry(MANIFESTS_DIR).get("dataset", "celebahq-fixtures@1").manifest
    archive = tmp_path / "celeba_hq.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((fixtures / "celebahq" / "images").iterdir())[:3]:
            z.write(f, f"images/{f.name}")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"truncated download\?") as err:
        load_dataset(manifest, archive, limit=1)
    assert "download the archive again" in err.value.fix


@pytest.fixture
def unpinned(tree, tmp_path, fixtures):
    """The fixture images, their manifest without pinned digests (so the lock file holds them); returns the data
    folder and the file of the first item."""
    path = tree / "datasets" / "celebahq-fixtures.yaml"
    doc = yaml.safe_load(path.read_text())
    for item in doc["items"]:
        item["sha256"] = {"fixtures": None}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    data = tmp_path / "data"
    shutil.copytree(fixtures / "celebahq" / "images", data / "images")
    return data, data / "images" / doc["items"][0]["file"]


def test_lock_decodes_before_it_records(unpinned, tmp_path, capsys):
    data, first = unpinned
    intact = first.read_bytes()
    first.write_bytes(intact[: len(intact) // 3])
    assert main(["lock", *TINY, "--data", str(data)]) == 2
    assert "corrupt or truncated image" in capsys.readouterr().err
    assert not (tmp_path / "lock.json").exists(), "nothing is recorded when any image fails the checks"
    first.write_bytes(intact)
    assert main(["lock", *TINY, "--data", str(data)]) == 0
    assert "recorded 11 digest(s)" in capsys.readouterr().out
    assert main(["validate", *TINY, "--device", "cpu", "--data", str(data)]) == 0


def test_a_mismatch_against_the_lock_names_the_entry_and_the_relock_that_works(unpinned, tmp_path, capsys):
    from benchmark.core.hashing import sha256_bytes
    from benchmark.inputs.lock import LockFile, dataset_key

    data, first = unpinned
    intact = first.read_bytes()
    assert main(["lock", *TINY, "--data", str(data)]) == 0
    # what an earlier `lock` did: record the digest of a truncated copy, which `run` then refuses to decode
    lock = LockFile.load(tmp_path / "lock.json")
    key = dataset_key("celebahq-fixtures@1", "fixtures")
    lock.record(key, "119614", sha256_bytes(intact[: len(intact) // 3]))
    lock.save()
    capsys.readouterr()
    assert main(["run", *TINY, "--device", "cpu", "--data", str(data), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"entry '{key}', member '119614'" in err
    command = f"python run_all.py lock --suite paper-table --profile tiny --data {data} --relock"
    assert command in err
    assert main(command.split()[2:]) == 0  # the fix, exactly as printed
    assert LockFile.load(tmp_path / "lock.json").digest(key, "119614") == sha256_bytes(intact)
    assert main(["validate", *TINY, "--device", "cpu", "--data", str(data)]) == 0


# -- the selection, the suite name, --limit ---------------------------------------------------------------------------

def test_an_attribute_outside_the_profile_is_named_as_such(tmp_path, capsys):
    args = ["run", "--suite", "synthetic", "--profile", "quick", "--device", "cpu", "--out", str(tmp_path / "r")]
    assert main([*args, "--attributes", "synthetic-sad"]) == 2
    err = capsys.readouterr().err
    assert "is in the suite, but not in its profile 'quick'" in err and "Did you mean" not in err
    assert "leave --profile quick out" in err
    assert main([*args, "--attributes", "synthetic-smilng"]) == 2  # a real typo still gets did-you-mean
    assert "Did you mean: synthetic-smiling" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "validate"])
def test_an_empty_suite_name_is_refused_as_empty(command, tmp_path, capsys):
    assert main([command, "--suite", "", "--out", str(tmp_path / "runs")]) == 2
    said = capsys.readouterr()
    assert "the suite name is empty" in said.out + said.err
    assert not (tmp_path / "runs").exists()


def test_manifests_variable_pointing_at_nothing_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASYRP_MANIFESTS", str(tmp_path / "nothing-here"))
    assert main(["run", "--suite", "synthetic", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"ASYRP_MANIFESTS={tmp_path / 'nothing-here'} holds no suite manifests" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("limit", "marked"), [(3, 3), (11, None), (50, None)])
def test_a_limit_that_keeps_every_image_is_not_marked(limit, marked, tmp_path, caplog):
    from benchmark.plan.request import RunRequest
    from benchmark.plan.suite import resolve_plan

    plan = resolve_plan(RunRequest(suite="paper-table", profile="tiny", limit=limit, device="cpu",
                                   out=tmp_path / "runs"))
    assert plan.limit == marked and len(plan.images) == min(limit, 11)
    assert plan.manifest_digests["run_config"] == resolve_plan(RunRequest(
        suite="paper-table", profile="tiny", limit=marked, device="cpu", out=tmp_path / "runs")
    ).manifest_digests["run_config"]  # a limit that keeps all is the same run as none


def test_an_official_checkpoint_that_cannot_fit_is_refused_before_any_compute(tmp_path, fixtures, monkeypatch,
                                                                            capsys):
    for a in ["smiling", "sad", "tanned", "pixar", "neanderthal"]:
        name = f"{a}_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"
        (tmp_path / "w" / f"asyrp-ft-{a}@1").mkdir(parents=True)
        shutil.copyfile(fixtures / "asyrp_official" / "checkpoints" / name, tmp_path / "w" / f"asyrp-ft-{a}@1" / name)
    monkeypatch.setenv("ASYRP_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("ASYRP_LOCK", str(tmp_path / "lock.json"))
    monkeypatch.setenv("ASYRP_CACHE", str(tmp_path / "cache"))
    args = ["run", "--suite", "official-checkpoints", "--profile", "tiny", "--device", "cpu", "--attributes",
            "smiling", "--out", str(tmp_path / "runs")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "asyrp-ft-smiling@1 act on a 512-channel h-space" in err and "has 16 channels" in err
    assert "without `--profile tiny`" in err and "--profile tiny --device cpu" in err
    assert not (tmp_path / "cache" / "stages").exists(), "refused before the first stage"


def test_shipped_weights_that_do_not_match_are_restored_from_git(tree, capsys):
    from benchmark.inputs.fetch import fetch_model

    path = tree / "models" / "synthetic-ddpm.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["source"]["files"][0]["sha256"] = "0" * 64
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["validate", "--suite", "synthetic", "--device", "cpu"]) == 2
    out = capsys.readouterr().out
    assert "git checkout -- benchmark/synthetic/assets/ddpm.safetensors" in out and "delete" not in out
    with pytest.raises(BenchError) as err:
        fetch_model(ManifestRegistry(tree).get("model", "synthetic-ddpm@1").manifest)
    assert err.value.fix.endswith("`git checkout -- benchmark/synthetic/assets/ddpm.safetensors` (it is part of "
                                  "the repository)")


def test_another_manifest_tree_keeps_its_own_lock_file(tmp_path, monkeypatch):
    from benchmark.core.paths import lock_path

    monkeypatch.delenv("ASYRP_LOCK", raising=False)
    monkeypatch.setenv("ASYRP_MANIFESTS", str(tmp_path / "tree"))
    assert lock_path() == (tmp_path / "tree" / "lock.json").resolve()  # never the repository's manifests/lock.json
    monkeypatch.delenv("ASYRP_MANIFESTS")
    assert lock_path() == (MANIFESTS_DIR / "lock.json").resolve()
