"""Does every worker see the cache root? A tiny first job answers it, before any unit is submitted.

The driver writes a token file into the cache root and submits `probe`; the worker must find the token there (it
sees the driver's files) and writes a reply beside it (the driver sees the worker's). Only the standard library is
imported, so the probe costs a process start, not the harness's imports.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

PROBE_DIR = ".executor-probes"


def write_token(cache_root: Path) -> Path:
    folder = cache_root / PROBE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    token = folder / f"{secrets.token_hex(8)}.token"
    token.write_text(socket.gethostname(), encoding="utf-8")
    return token


def probe(token: str) -> dict[str, object]:
    """Run in a worker: what it sees of the driver's token, and its reply."""
    path = Path(token)
    seen = path.is_file()
    if seen:
        path.with_suffix(".seen").write_text(f"{socket.gethostname()} {os.getpid()}", encoding="utf-8")
    return {"host": socket.gethostname(), "seen": seen}


def reply_seen(token: Path) -> bool:
    return token.with_suffix(".seen").is_file()


def remove(token: Path) -> None:
    for path in (token, token.with_suffix(".seen")):
        path.unlink(missing_ok=True)
