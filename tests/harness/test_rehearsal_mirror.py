"""The rehearsal mirror and `fetch` through it: Range and HEAD as the real hosts answer them, huggingface_hub's own
client, ASYRP_MIRROR for url sources, and the bad inputs a rehearsal must turn into exit 2 (a forgery against the
shipped manifests, a short file, a wrong archive member, an unreachable mirror)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from benchmark.core.errors import BenchError, DataError, DigestMismatchError, MissingWeightsError
from benchmark.core.paths import MANIFESTS_DIR, REPO_ROOT
from benchmark.inputs.fetch import fetch_model
from benchmark.inputs.manifests import manifest_from_dict
from benchmark.rehearsal.mirror import Mirror

PAYLOAD = bytes(range(256)) * 2048  # 512 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()
REV = "4cb6117472e6e4f45c5afe606b101858c27c3802"


def url_model(url: str, *, sha256: str | None = SHA, size: int | None = len(PAYLOAD), path: str = "w.bin",
              loader_args: dict | None = None):
    return manifest_from_dict({
        "schema_version": 1, "kind": "model", "name": "toy", "version": 1, "description": "test",
        "loader": "metric-backend", "loader_args": loader_args or {},
        "source": {"type": "url", "files": [{"path": path, "url": url, "sha256": sha256, "size": size}]}})


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "example.org" / "files").mkdir(parents=True)
    (root / "example.org" / "files" / "w.bin").write_bytes(PAYLOAD)
    hub = root / "org" / "model" / "resolve" / REV
    hub.mkdir(parents=True)
    (hub / "config.json").write_text('{"a": 1}')
    return root


def get(url: str, headers: dict | None = None, method: str = "GET"):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}, method=method), timeout=10)


def test_range_and_hub_head(tree):
    with Mirror(tree) as m:
        with get(f"{m.url}/example.org/files/w.bin", {"Range": "bytes=1000-"}) as r:
            assert r.status == 206 and r.read() == PAYLOAD[1000:]
            assert r.headers["Content-Range"] == f"bytes 1000-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
        with pytest.raises(urllib.error.HTTPError, match="416"):
            get(f"{m.url}/example.org/files/w.bin", {"Range": f"bytes={len(PAYLOAD)}-"})
        with get(f"{m.url}/org/model/resolve/{REV}/config.json", method="HEAD") as r:
            assert r.headers["X-Repo-Commit"] == REV and r.headers["ETag"].strip('"') == hashlib.sha256(
                b'{"a": 1}').hexdigest()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(f"{m.url}/example.org/../../etc/passwd")


def test_huggingface_hub_client_downloads_from_the_mirror(tree, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with Mirror(tree) as m:
        path = huggingface_hub.hf_hub_download("org/model", "config.json", revision=REV, endpoint=m.url,
                                               cache_dir=tmp_path / "hf")
    assert Path(path).read_text() == '{"a": 1}' and ("HEAD", f"/org/model/resolve/{REV}/config.json", None) in m.requests


def test_fetch_through_asyrp_mirror_resumes_a_cut_transfer(tree, tmp_path, monkeypatch):
    with Mirror(tree, faults={"example.org/files/w.bin": "truncate"}) as m:
        monkeypatch.setenv("ASYRP_MIRROR", m.url)
        model = url_model("https://example.org/files/w.bin")
        with pytest.raises(BenchError, match="interrupted"):
            fetch_model(model, root=tmp_path / "w", progress=False)
        part = tmp_path / "w" / "toy@1" / "w.bin.part"
        assert 0 < part.stat().st_size < len(PAYLOAD)
        [status] = fetch_model(model, root=tmp_path / "w", progress=False)
    assert status.url == f"{m.url}/example.org/files/w.bin" and status.actual == SHA
    assert m.requests[-1][2] == f"bytes={len(PAYLOAD) // 2}-" and not part.exists()


def test_a_short_file_is_refused_and_not_kept(tree, tmp_path, monkeypatch):
    with Mirror(tree) as m:
        monkeypatch.setenv("ASYRP_MIRROR", m.url)
        with pytest.raises(DigestMismatchError, match=f"sent {len(PAYLOAD)} bytes, the manifest pins"):
            fetch_model(url_model("https://example.org/files/w.bin", size=len(PAYLOAD) + 10), root=tmp_path / "w",
                        progress=False)
    assert not list((tmp_path / "w" / "toy@1").iterdir())


def test_archive_member_missing_or_wrong_is_named(tree, tmp_path, monkeypatch):
    archive = tree / "example.org" / "files" / "pack.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("det_10g.onnx", b"detector")
        zf.writestr("w600k_r50.onnx", b"recogniser")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    def model(members):
        return url_model("https://example.org/files/pack.zip", sha256=digest, size=archive.stat().st_size,
                         path="pack.zip", loader_args={"unzip_members": members})

    good = hashlib.sha256(b"recogniser").hexdigest()
    with Mirror(tree) as m:
        monkeypatch.setenv("ASYRP_MIRROR", m.url)
        with pytest.raises(DataError, match="has no member glintr100.onnx"):
            fetch_model(model([{"path": "glintr100.onnx", "sha256": good}]), root=tmp_path / "w", progress=False)
        with pytest.raises(DigestMismatchError, match="member w600k_r50.onnx has sha256"):
            fetch_model(model([{"path": "w600k_r50.onnx", "sha256": "0" * 64}]), root=tmp_path / "w",
                        progress=False)
        folder = tmp_path / "w" / "toy@1"
        assert sorted(p.name for p in folder.iterdir()) == ["pack.zip"]  # nothing half-extracted
        fetch_model(model([{"path": "w600k_r50.onnx", "sha256": good}]), root=tmp_path / "w", progress=False)
    assert (folder / "w600k_r50.onnx").read_bytes() == b"recogniser"


def test_unreachable_mirror_names_the_url_at_once(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    monkeypatch.setenv("ASYRP_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(MissingWeightsError, match=f"cannot reach http://127.0.0.1:{port}/example.org/files/w.bin"):
        fetch_model(url_model("https://example.org/files/w.bin"), root=tmp_path / "w", progress=False)


def _cli(args, env, cwd):
    return subprocess.run([sys.executable, str(REPO_ROOT / "run_all.py"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_shipped_manifests_refuse_a_forgery_with_exit_2(tmp_path):
    """A forged OpenAI CLIP archive at the real URL path: the shipped manifest's digest refuses it, names both
    digests, and leaves no file behind."""
    from benchmark.rehearsal.forge_clip import write_openai_clip_archive
    from benchmark.rehearsal.tree import mirror_path

    tiny = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}
    from benchmark.inputs.manifests import ManifestRegistry

    manifest = ManifestRegistry(MANIFESTS_DIR).get("model", "clip-vit-b32-openai").manifest
    forged = tmp_path / "tree" / mirror_path(manifest, manifest.files[0])
    write_openai_clip_archive(forged, tiny, seed=0)
    env = {**os.environ, "ASYRP_MANIFESTS": str(MANIFESTS_DIR), "ASYRP_WEIGHTS": str(tmp_path / "w"),
           "ASYRP_LOCK": str(tmp_path / "lock.json"), "TQDM_DISABLE": "1"}
    with Mirror(tmp_path / "tree") as m:
        url = m.url
        out = _cli(["fetch", "clip-vit-b32-openai"], {**env, "ASYRP_MIRROR": url}, tmp_path)
    assert out.returncode == 2, out.stderr
    assert hashlib.sha256(forged.read_bytes()).hexdigest() in out.stderr and manifest.files[0].sha256 in out.stderr
    assert not any(p.is_file() for p in (tmp_path / "w").rglob("*"))
    offline = _cli(["fetch", "clip-vit-b32-openai"], {**env, "ASYRP_MIRROR": url}, tmp_path)  # mirror stopped
    assert offline.returncode == 2 and f"cannot reach {url}/openaipublic.azureedge.net/clip/models/" in offline.stderr
