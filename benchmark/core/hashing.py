"""Content digests: files, bytes, tensors and canonical JSON."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _normalise(obj: Any) -> Any:
    """Make `obj` JSON-able in one canonical way (tuples -> lists, Paths -> str, no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _normalise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalise(v) for v in obj]
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite float {obj!r} cannot be hashed canonically")
    if hasattr(obj, "model_dump"):  # pydantic models
        return _normalise(obj.model_dump(mode="json"))
    return obj


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the form every digest in the suite is taken over."""
    return json.dumps(_normalise(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_digest(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`: manifest digests, stage keys, metric-spec digests."""
    return sha256_bytes(canonical_json(obj).encode("utf-8"))


def tensor_digest(t) -> str:
    """sha256 over dtype, shape and the raw bytes of a tensor or numpy array (contiguous, on CPU)."""
    import numpy as np

    arr = t.detach().cpu().contiguous().numpy() if hasattr(t, "detach") else np.ascontiguousarray(t)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{tuple(arr.shape)}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()
