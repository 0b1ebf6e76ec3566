"""A local mirror: a static HTTP server on 127.0.0.1 over a forged tree (`benchmark.rehearsal.tree`), speaking
what `fetch` and huggingface_hub ask of the real hosts.

- `GET` with `Range: bytes=N-` / `bytes=N-M` (fetch resumes a `.part` file that way): 206 + `Content-Range`;
  416 when N is past the end; 200 for a plain request.
- `HEAD` (huggingface_hub's `get_hf_file_metadata` asks it first): `Content-Length`, `ETag`, `Accept-Ranges`;
  under a Hub path `REPO/resolve/REVISION/FILE` also `X-Repo-Commit: REVISION`, `X-Linked-Etag` and
  `X-Linked-Size`, as the Hub sends for LFS files.
- Anything outside the tree: 404. Nothing is written.

One mirror serves both schemes: `HF_ENDPOINT=<url>` for hub sources and `ASYRP_MIRROR=<url>` for url sources
(`benchmark.core.paths.mirror_url`: `https://HOST/PATH` is fetched as `<url>/HOST/PATH`).

`faults` (tests): {URL path: "truncate"} sends half the body of the first GET of that path, then drops the
connection, to exercise resuming.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from benchmark.core.errors import DataError
from benchmark.core.paths import safe_join

_HUB_PATH = re.compile(r"^[^/]+/[^/]+/resolve/(?P<revision>[0-9a-f]{40})/.+")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 1 << 20


class Mirror:
    """`with Mirror(root) as m: m.url` — a running mirror of `root`; `m.requests` logs (method, path, range)."""

    def __init__(self, root: Path, *, faults: dict[str, str] | None = None, etags: dict[str, str] | None = None):
        self.root = Path(root).resolve()
        self.faults = dict(faults or {})
        self.etags = dict(etags or {})  # URL path -> sha256, when known (else computed on first HEAD)
        self.requests: list[tuple[str, str, str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL (kept after `stop`, so a test can show what an unreachable mirror does)."""
        if self._url is None:
            raise RuntimeError("the mirror was never started")
        return self._url

    def start(self) -> Mirror:
        handler = type("Handler", (_Handler,), {"mirror": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="asyrp-mirror", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self._url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Mirror:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def file(self, url_path: str) -> Path | None:
        try:
            path = safe_join(self.root, unquote(url_path).lstrip("/"))
        except DataError:
            return None
        return path if path.is_file() else None

    def etag(self, url_path: str, path: Path) -> str:
        key = url_path.lstrip("/")
        if key not in self.etags:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            self.etags[key] = h.hexdigest()
        return self.etags[key]


class _Handler(BaseHTTPRequestHandler):
    mirror: Mirror
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        pass  # requests are kept in `Mirror.requests`, not printed

    def _target(self) -> tuple[str, Path | None]:
        url_path = urlsplit(self.path).path
        self.mirror.requests.append((self.command, url_path, self.headers.get("Range")))
        return url_path, self.mirror.file(url_path)

    def _not_found(self, url_path: str) -> None:
        body = f"not in the mirror: {url_path}\n".encode()
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common_headers(self, url_path: str, path: Path, size: int) -> None:
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        hub = _HUB_PATH.match(url_path.lstrip("/"))
        if hub is not None:
            etag = self.mirror.etag(url_path, path)
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Repo-Commit", hub["revision"])
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(size))

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        url_path, path = self._target()
        if path is None:
            return self._not_found(url_path)
        size = path.stat().st_size
        self.send_response(200)
        self._common_headers(url_path, path, size)
        self.send_header("Content-Length", str(size))
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        url_path, path = self._target()
        if path is None:
            return self._not_found(url_path)
        size = path.stat().st_size
        start, end = 0, size - 1
        wanted = self.headers.get("Range")
        if wanted:
            m = _RANGE.match(wanted.strip())
            if m is None or int(m[1]) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
        self.send_response(206 if wanted else 200)
        self._common_headers(url_path, path, size)
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        limit = end - start + 1
        if self.mirror.faults.pop(url_path.lstrip("/"), None) == "truncate":
            limit //= 2
            self.close_connection = True
        self._send(path, start, limit)

    def _send(self, path: Path, start: int, limit: int) -> None:
        with open(path, "rb") as f:
            f.seek(start)
            while limit > 0 and (chunk := f.read(min(_CHUNK, limit))):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                limit -= len(chunk)
