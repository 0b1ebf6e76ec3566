"""fetch: real HTTP downloads from a server on 127.0.0.1 — resume, digest mismatch, Hub URLs, offline errors."""

import hashlib
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmark.core.errors import BenchError, DigestMismatchError, MissingWeightsError
from benchmark.inputs.fetch import check_model_files, download, fetch_command, fetch_model, missing_weights
from benchmark.inputs.lock import LockFile, model_key
from benchmark.inputs.manifests import ManifestRegistry, manifest_from_dict, resolve_suite

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer:
    """Serves `files` (path -> bytes) with Range support; can cut the next response after N bytes."""

    def __init__(self, files):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[: server.cut_after])
                    server.cut_after = None
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with FileServer({"/w/model.bin": PAYLOAD}) as s:
        yield s


def test_download_verifies_and_moves_into_place(server, tmp_path):
    dest = tmp_path / "m" / "model.bin"
    assert download(f"{server.url}/w/model.bin", dest, sha256=SHA, size=len(PAYLOAD), progress=False) == SHA
    assert dest.read_bytes() == PAYLOAD and not dest.with_name("model.bin.part").exists()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    dest = tmp_path / "model.bin"
    server.cut_after = 300_000
    with pytest.raises(BenchError, match="resumes"):
        download(f"{server.url}/w/model.bin", dest, sha256=SHA, size=len(PAYLOAD), progress=False)
    part = tmp_path / "model.bin.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    done = part.stat().st_size
    download(f"{server.url}/w/model.bin", dest, sha256=SHA, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/w/model.bin", f"bytes={done}-")


def test_a_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD[:1000])
    server.ignore_range = True
    download(f"{server.url}/w/model.bin", tmp_path / "model.bin", sha256=SHA, progress=False)
    assert (tmp_path / "model.bin").read_bytes() == PAYLOAD


def test_digest_mismatch_deletes_the_download(server, tmp_path):
    dest = tmp_path / "model.bin"
    with pytest.raises(DigestMismatchError, match="expected 0000"):
        download(f"{server.url}/w/model.bin", dest, sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_or_missing_url_names_the_fix(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MissingWeightsError, match="cannot reach") as e:
        download(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", progress=False)
    assert "fix:" in str(e.value)
    with FileServer({}) as srv, pytest.raises(MissingWeightsError, match="HTTP 404"):
        download(f"{srv.url}/nope.bin", tmp_path / "x.bin", progress=False)


def _url_model(url, sha=None):
    return manifest_from_dict({
        "schema_version": 1, "kind": "model", "name": "toy", "version": 1, "description": "d", "loader": "x",
        "source": {"type": "url", "files": [{"path": "sub/model.bin", "url": url, "sha256": sha}]}})


def test_fetch_model_records_an_unknown_digest_in_the_lock_and_checks_it_later(server, tmp_path):
    lock = LockFile.load(tmp_path / "lock.json")
    model = _url_model(f"{server.url}/w/model.bin")
    assert check_model_files(model, root=tmp_path / "w", lock=lock)[0].state == "missing"
    [status] = fetch_model(model, root=tmp_path / "w", lock=lock, progress=False)
    assert status.path == tmp_path / "w" / "toy@1" / "sub" / "model.bin" and status.actual == SHA
    lock.save()
    assert LockFile.load(tmp_path / "lock.json").digest(model_key("toy@1"), "sub/model.bin") == SHA
    status.path.write_bytes(b"tampered")
    [again] = check_model_files(model, root=tmp_path / "w", lock=LockFile.load(tmp_path / "lock.json"))
    assert again.state == "mismatch" and again.expected == SHA
    fetch_model(model, root=tmp_path / "w", lock=lock, progress=False)  # a mismatching file is re-fetched
    assert status.path.read_bytes() == PAYLOAD


def test_hub_files_come_from_the_pinned_revision(tmp_path, monkeypatch):
    rev = "4cb6117472e6e4f45c5afe606b101858c27c3802"
    with FileServer({f"/google/ddpm-ema-celebahq-256/resolve/{rev}/diffusion_pytorch_model.bin": PAYLOAD}) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        model = manifest_from_dict({
            "schema_version": 1, "kind": "model", "name": "hubby", "version": 1, "description": "d",
            "loader": "x", "source": {"type": "hub", "repo_id": "google/ddpm-ema-celebahq-256", "revision": rev,
                                      "files": [{"path": "diffusion_pytorch_model.bin", "sha256": SHA}]}})
        [status] = fetch_model(model, root=tmp_path, progress=False)
        assert status.path.read_bytes() == PAYLOAD
        assert srv.requests == [(f"/google/ddpm-ema-celebahq-256/resolve/{rev}/diffusion_pytorch_model.bin", None)]
    with pytest.raises(BenchError, match="revision"):
        manifest_from_dict({**model.model_dump(mode="json"),
                            "source": {**model.source.model_dump(mode="json"), "revision": "main"}})


def test_missing_weights_of_a_suite_and_the_command_that_fetches_them(tmp_path, fixtures):
    rs = resolve_suite("official-checkpoints@1", profile="tiny", registry=ManifestRegistry())
    report = missing_weights(rs, root=tmp_path)
    assert {f.model for f in report.problems} == {f"asyrp-ft-{a}@1" for a in
                                                  ["smiling", "sad", "tanned", "pixar", "neanderthal"]}
    assert report.command.startswith("python run_all.py fetch asyrp-ft-neanderthal@1 asyrp-ft-pixar@1")
    # the fixture copies are the released files: placed where fetch puts them, they verify against the pins
    for r in rs.ft_checkpoints.values():
        [f] = r.manifest.files
        target = tmp_path / r.ref / f.path
        target.parent.mkdir(parents=True)
        shutil.copyfile(fixtures / "asyrp_official" / "checkpoints" / f.path, target)  # tmp only, never the repo
    assert missing_weights(rs, root=tmp_path).command is None
    assert fetch_command(suite="paper-table") == "python run_all.py fetch --suite paper-table"
