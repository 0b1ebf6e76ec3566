"""Forgers of the authors' own small files where the shared fixtures hold no copy: released f_t
(`*_LC_<category>_t999_ninv40_ngen40_0.pth`) and LPIPS tables (`<prefix>_LPIPS_distance_*.tsv`).

The fixtures hold the five CelebA-HQ f_t of the paper's table and the CelebA-HQ tables (real bytes, copied:
`forge_models.copy_released_ft`); a manifest with a published digest is copied, one without (LSUN church and
bedroom, the other CelebA-HQ attributes) is forged here in the release's layout (`formats.asyrp_ft_checkpoint`,
`formats.lpips_table_text`). Values are seeded and mean nothing; the tables are smooth, increasing curves in the
real tables' range, so the authors' rule still finds a t_edit and a t_boost on them.
"""

from __future__ import annotations

import re

import torch

from benchmark.core.atomic import torch_save, write_text
from benchmark.core.errors import BenchError
from benchmark.rehearsal import formats
from benchmark.rehearsal.fill import key_generator, random_like

#: the category in a released f_t's file name -> the model section of the DDPM it was trained on.
FT_BASE_CONFIGS = {"CelebA_HQ": formats.CELEBA_HQ_DDPM, "church_outdoor": formats.LSUN_CHURCH_DDPM,
                   "bedroom": formats.LSUN_BEDROOM_DDPM}
#: (LPIPS at t = 999, low, high) per table, the real tables' range (celeba, church and bedroom end near 1.1-1.4).
TABLE_RANGES = {"x": (1.35, 0.01), "x0_t": (1.3, 0.008), "x_std": (0.12, 0.005), "x0_t_std": (0.11, 0.004)}


def ft_dims(file_name: str) -> tuple[int, int]:
    """(h channels, time-embedding width) of the DeltaBlock in a released f_t file, from its base DDPM config."""
    match = re.search(r"_LC_(.+?)_t\d+_ninv", file_name)
    cfg = FT_BASE_CONFIGS.get(match.group(1)) if match else None
    if cfg is None:
        raise BenchError(f"cannot tell the base model of the released f_t {file_name!r} (known categories: "
                         f"{sorted(FT_BASE_CONFIGS)})", fix="add its DDPM config to forge_asyrp.FT_BASE_CONFIGS")
    return cfg["ch"] * cfg["ch_mult"][-1], 4 * cfg["ch"]


def forge_released_ft(manifest, seed: int, dest) -> None:
    """Each file: `{"0": DeltaBlock state, "optimizer", "scheduler"}` as the authors save it, fp32, values seeded
    by (seed, file name, key) so the attributes' f_t differ."""
    for f in manifest.files:
        h, temb = ft_dims(f.path)
        block = {k: random_like(f"{f.path}:{k}", torch.empty(shape), seed)
                 for k, shape in formats.deltablock_shapes(h, temb).items()}
        torch_save(dest(f.path), formats.asyrp_ft_checkpoint(block))


def forged_curve(seed: int, name: str, end: float, start: float) -> dict[int, float]:
    """A smooth increasing curve over the tables' timesteps from `start` to `end` (seeded increments)."""
    ts = formats.LPIPS_TABLE_TIMESTEPS
    steps = torch.rand(len(ts), generator=key_generator(seed, name), dtype=torch.float64) + 0.5
    steps = torch.nn.functional.avg_pool1d(steps[None, None], 9, stride=1, padding=4, count_include_pad=False)[0, 0]
    rise = torch.cumsum(steps, 0)
    rise = (rise - rise[0]) / (rise[-1] - rise[0])
    return {t: start + (end - start) * float(r) for t, r in zip(ts, rise, strict=True)}


def forge_lpips_tables(manifest, seed: int, dest) -> None:
    """The four tables of one dataset (`loader_args.prefix`), in the authors' TSV layout."""
    prefix = manifest.loader_args["prefix"]
    for f in manifest.files:
        kind = f.path.removeprefix(f"{prefix}_LPIPS_distance_").removesuffix(".tsv")
        if kind not in TABLE_RANGES:
            raise BenchError(f"{manifest.ref}: {f.path} is not one of the authors' four LPIPS tables",
                             fix="update forge_asyrp.TABLE_RANGES with the manifest")
        end, start = TABLE_RANGES[kind]
        write_text(dest(f.path), formats.lpips_table_text(forged_curve(seed, f.path, end, start)))
