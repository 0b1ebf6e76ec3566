"""The f_t a run trained, saved in its run folder (`ft/<key>.safetensors` + `ft/index.json` with each file's
sha256 and f_t), so a later run can start from one (`benchmark.inputs.saved_ft` reads them back)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from benchmark.core.atomic import save_safetensors, write_json
from benchmark.core.hashing import sha256_file
from benchmark.inputs.saved_ft import FT_DIR, INDEX


def _file_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key) + ".safetensors"


def write_ft_weights(folder: Path, trained: Mapping[str, tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]],
                     ) -> None:
    """`ft/<key>.safetensors` and `ft/index.json` for each results key -> (state dict, f_t description)."""
    if not trained:
        return
    out = folder / FT_DIR
    out.mkdir(parents=True, exist_ok=True)
    index = {}
    for key, (state, ft) in trained.items():
        path = out / _file_name(key)
        save_safetensors(path, {k: v.detach().cpu().contiguous() for k, v in state.items()})
        index[key] = {"file": path.name, "sha256": sha256_file(path), "ft": dict(ft)}
    write_json(out / INDEX, index)


