"""The f_t a finished run saved in its folder (`ft/`, written by `benchmark.outputs.ft_weights`), read back so an
f_t can start from one (`train.init_from: {run: DIR, attribute: KEY}`) without the stage cache.

`ft/index.json` maps each results key (`smiling`, `smiling[conv]`) to its file, the file's sha256 and the f_t
(name, options); each file is a safetensors state dict. The digest is checked before loading, and safetensors
cannot execute code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from benchmark.core.errors import DataError, DigestMismatchError
from benchmark.core.hashing import sha256_file

FT_DIR = "ft"
INDEX = "index.json"


def find_ft_weights(run_dir: str | Path, key: str) -> tuple[Path, str, dict[str, Any]]:
    """(file, sha256, f_t description) of the f_t that run `run_dir` trained for results key `key`."""
    run_dir = Path(run_dir).expanduser()
    index_file = run_dir / FT_DIR / INDEX
    if not index_file.is_file():
        raise DataError(f"{run_dir} holds no saved f_t ({FT_DIR}/{INDEX} missing)",
                        fix="point at the folder of a finished run that trained f_t (`runs/<suite>/<time>-<key>/`)")
    index = json.loads(index_file.read_text(encoding="utf-8"))
    if key not in index:
        from benchmark.core.registry import unknown_name_message

        raise DataError(unknown_name_message(f"trained f_t of {run_dir}", key, sorted(index)),
                        fix="name one of the run's results keys, e.g. smiling or smiling[conv]")
    entry = index[key]
    return run_dir / FT_DIR / entry["file"], entry["sha256"], dict(entry.get("ft", {}))


def load_ft_file(path: str | Path, *, sha256: str) -> dict[str, torch.Tensor]:
    """A saved f_t state dict, after checking its sha256."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise DataError(f"saved f_t not found: {path}", fix="point init_from at a complete run folder")
    actual = sha256_file(path)
    if actual != sha256:
        raise DigestMismatchError(f"{path} has sha256 {actual}, but its run recorded {sha256}",
                                  fix="the file was changed after the run; use an intact run folder")
    return load_file(str(path))
