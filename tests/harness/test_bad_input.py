"""Bad input through the real CLI in a subprocess: every kind of bad input gives a few lines that name
the fix, exit code 2, and no partial result file.

Each case runs `run_all.py run` against a private copy of the manifest tree (`ASYRP_MANIFESTS`), an empty weights
folder, a private lock file and, where data is involved, a copy of the shared fixture images in a temp folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from benchmark.core.paths import MANIFESTS_DIR, REPO_ROOT

REPO = REPO_ROOT
TINY = ["run", "--suite", "paper-table", "--profile", "tiny", "--device", "cpu"]


@pytest.fixture
def world(tmp_path, fixtures):
    """A private manifest tree, lock, cache and weights folder, and a copy of the fixture images."""
    shutil.copytree(MANIFESTS_DIR, tmp_path / "manifests", ignore=shutil.ignore_patterns("lock.json"))
    shutil.copytree(fixtures / "celebahq" / "images", tmp_path / "data" / "images")
    env = {**os.environ, "ASYRP_MANIFESTS": str(tmp_path / "manifests"), "ASYRP_LOCK": str(tmp_path / "lock.json"),
           "ASYRP_CACHE": str(tmp_path / "cache"), "ASYRP_WEIGHTS": str(tmp_path / "weights"),
           "ASYRP_FIXTURES": str(fixtures), "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return tmp_path, env


def _edit_yaml(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _fixture_item(root: Path, index: int = 0) -> tuple[Path, dict]:
    manifest = root / "manifests" / "datasets" / "celebahq-fixtures.yaml"
    return manifest, yaml.safe_load(manifest.read_text())["items"][index]


def _unpin(root: Path, index: int = 0) -> Path:
    """Forget the pinned digest of one fixture item (as for a distribution not yet locked); returns its file."""
    manifest, item = _fixture_item(root, index)
    _edit_yaml(manifest, lambda d: d["items"][index]["sha256"].update(fixtures=None))
    return root / "data" / "images" / item["file"]


def _missing_folder(root):
    return [*TINY, "--data", str(root / "nope")], "does not exist"


def _wrong_digest(root):
    _, item = _fixture_item(root)
    f = root / "data" / "images" / item["file"]
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    f.write_bytes(bytes(raw))
    return [*TINY, "--data", str(root / "data")], "does not match"


def _truncated_jpeg(root):
    f = _unpin(root)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    return [*TINY, "--data", str(root / "data")], "corrupt or truncated image"


def _wrong_size(root):
    f = _unpin(root)
    Image.new("RGB", (512, 512), (120, 90, 80)).save(f, format="JPEG")
    return [*TINY, "--data", str(root / "data")], "512×512 image"


def _wrong_mode(root):
    f = _unpin(root)
    Image.new("L", (1024, 1024), 128).save(f, format="JPEG")
    return [*TINY, "--data", str(root / "data")], "mode L (expected RGB)"


def _unknown_suite(root):
    return ["run", "--suite", "paper-tabel", "--device", "cpu"], "Did you mean: paper-table"


def _unknown_attribute(root):
    return [*TINY, "--attributes", "smilng"], "Did you mean: smiling"


def _malformed_yaml(root):
    (root / "manifests" / "attributes" / "smiling.yaml").write_text("kind: attribute\nname: [smiling\n")
    return TINY, "do not load"


def _path_traversal(root):
    manifest, _ = _fixture_item(root)
    _edit_yaml(manifest, lambda d: d["items"][0].update(file="../../../../etc/passwd"))
    return [*TINY, "--data", str(root / "data")], "escapes the data root"


def _missing_weights(root):
    return ["run", "--suite", "official-checkpoints", "--profile", "tiny", "--device", "cpu"], "python run_all.py fetch"


def _no_cuda(root):
    return ["run", "--suite", "paper-table"], "needs a CUDA GPU"


def _unwritable_out(root):
    (root / "afile").write_text("")
    return [*TINY, "--out", str(root / "afile" / "runs")], "cannot be written"


CASES = {
    "missing data folder": _missing_folder,
    "wrong digest": _wrong_digest,
    "truncated JPEG": _truncated_jpeg,
    "wrong image size": _wrong_size,
    "wrong image mode": _wrong_mode,
    "unknown suite": _unknown_suite,
    "unknown attribute": _unknown_attribute,
    "malformed YAML": _malformed_yaml,
    "path traversal in a manifest": _path_traversal,
    "missing weights offline": _missing_weights,
    "no CUDA for a GPU suite": _no_cuda,
    "output folder cannot be written": _unwritable_out,
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_through_the_cli(world, case):
    root, env = world
    args, expected = CASES[case](root)
    proc = subprocess.run([sys.executable, str(REPO / "run_all.py"), *args, "--out", str(root / "runs")]
                          if "--out" not in args else [sys.executable, str(REPO / "run_all.py"), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert proc.returncode == 2, (proc.stdout, proc.stderr[-2000:])
    assert expected in proc.stderr, proc.stderr[-2000:]
    assert "fix:" in proc.stderr and "Traceback" not in proc.stderr
    error = proc.stderr[proc.stderr.index("error:"):]
    assert len(error.strip().splitlines()) <= 10, error  # a few lines, not a wall
    assert not list(root.rglob("results.json")) and not list(root.rglob("*.partial*"))


@pytest.mark.slow
def test_unknown_metric_through_the_cli(world):
    pytest.importorskip("metrics", reason="metric names are checked against the metrics registry")
    root, env = world
    _edit_yaml(root / "manifests" / "suites" / "paper-table.yaml",
               lambda d: d["profiles"]["tiny"]["overrides"]["metrics"][0].update(name="sdri@1"))
    proc = subprocess.run([sys.executable, str(REPO / "run_all.py"), *TINY, "--out", str(root / "runs")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert proc.returncode == 2 and "Did you mean: sdir@1" in proc.stderr and "fix:" in proc.stderr
    assert not list(root.rglob("results.json"))
