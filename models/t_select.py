"""Choosing t_edit and t_boost from LPIPS curves, with the authors' rule (`set_t_edit_t_addnoise`).

- t_edit  = the smallest t with LPIPS(x, P_t) >= threshold · cos(E_T(source), E_T(target))   (threshold 0.33)
- t_boost = the smallest t with LPIPS(x, x_t) >= threshold                                    (threshold 1.2)

A curve is a path to one of the authors' TSV files (`t<TAB>value` per line) or a mapping t -> value.
`compute_lpips_curves` makes the two curves for a new model the way the authors' `compute_lpips_distance` did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.core.errors import BenchError, DataError, MissingWeightsError
from models.ddim import ddim_step
from models.diffusion_model import DiffusionModel
from models.schedule import inversion_steps

Curve = Mapping[int, float] | str | Path
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# torchvision's ImageNet AlexNet, which `lpips.LPIPS(net="alex")` loads as its trunk (its linear heads ship in the
# lpips wheel). It is fetched into torch's hub cache, never downloaded here.
ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"


def read_lpips_curve(path: str | Path) -> dict[int, float]:
    """Parse an authors' LPIPS table: one `t<TAB>value` row per timestep."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"LPIPS curve not found: {path}",
                        fix="use one of the authors' utils/*_LPIPS_distance_*.tsv files, or compute_lpips_curves()")
    curve: dict[int, float] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            t, value = int(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            raise DataError(f"{path}:{number}: expected 't<TAB>value', got {line!r}") from None
        curve[t] = value
    if not curve:
        raise DataError(f"{path} holds no rows")
    return curve


def select_t_edit(lpips_x0t: Curve, cos: float, threshold: float = 0.33) -> int:
    """Smallest t with LPIPS(x, P_t) >= threshold · cos (the authors' editing-interval rule)."""
    return _first_at_or_above(_as_curve(lpips_x0t), threshold * cos, "LPIPS(x, P_t)")


def select_t_boost(lpips_x: Curve, threshold: float = 1.2) -> int:
    """Smallest t with LPIPS(x, x_t) >= threshold (the authors' quality-boosting rule)."""
    return _first_at_or_above(_as_curve(lpips_x), threshold, "LPIPS(x, x_t)")


CURVE_FILES = {"x": "{prefix}_LPIPS_distance_x.tsv", "x0t": "{prefix}_LPIPS_distance_x0_t.tsv",
               "x_std": "{prefix}_LPIPS_distance_x_std.tsv", "x0t_std": "{prefix}_LPIPS_distance_x0_t_std.tsv"}


@dataclass
class LpipsCurves:
    """Mean and std over images of LPIPS(x, x_t) and LPIPS(x, P_t), keyed by timestep (as the authors' tables)."""

    x: dict[int, float]
    x0t: dict[int, float]
    x_std: dict[int, float]
    x0t_std: dict[int, float]

    def save(self, folder: str | Path, prefix: str) -> dict[str, Path]:
        """Write the four tables in the authors' TSV layout (`{prefix}_LPIPS_distance_x.tsv`, ...)."""
        from benchmark.core.atomic import write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for key, template in CURVE_FILES.items():
            path = folder / template.format(prefix=prefix)
            write_text(path, "".join(f"{t}\t{v!r}\n" for t, v in sorted(getattr(self, key).items())))
            paths[key] = path
        return paths

    @classmethod
    def load(cls, folder: str | Path, prefix: str) -> LpipsCurves:
        """Read the four tables written by `save` (or the authors' `utils/{dataset}_LPIPS_distance_*.tsv`)."""
        return cls(**{key: read_lpips_curve(Path(folder) / template.format(prefix=prefix))
                      for key, template in CURVE_FILES.items()})


def snr_matched_t(t: int, source_alphas: torch.Tensor, target_alphas: torch.Tensor) -> int:
    """The smallest timestep of `target_alphas` whose ᾱ is at or below ᾱ_t of `source_alphas`: the same noise
    level (signal-to-noise ratio) on another schedule. A stand-in for the LPIPS rule where no LPIPS curve of the
    target model exists (stated wherever it is used)."""
    a = float(source_alphas[t])
    below = (target_alphas <= a).nonzero()
    if len(below) == 0:
        raise BenchError(f"the target schedule never gets as noisy as ᾱ={a:.4g} (t={t} of the source)",
                         fix="pick the timestep explicitly")
    return int(below[0])


def compute_lpips_curves(model: DiffusionModel, images: torch.Tensor, *, n_steps: int = 1000, t0: int = 999,
                         distance: Distance | None = None, reference: str = "input",
                         progress: bool = False) -> LpipsCurves:
    """The authors' `compute_lpips_distance` for a new model: DDIM-invert each image (η = 0) and, at every
    inversion step (t → t_next), record distance(x_{t_next}, x) and distance(P_t, x) under the key t_next.

    `distance(a, b)` takes two pixel batches in [-1, 1] and returns one value per image; by default it is LPIPS
    with AlexNet (`lpips_alex_distance`), which needs torchvision's AlexNet weights in the torch hub cache.
    Latent models are decoded to pixels first. The authors used n_steps = 1000 over 100 training images.

    `reference`: what the decoded x_t and P_t are compared with. "input" is the authors' rule (the image itself).
    "autoencoder" compares with the codec's reconstruction decode(encode(x)) instead, so that for a latent model
    the curve starts at 0 as it does for a pixel model (with "input" the autoencoder's own error is a floor under
    the whole curve); for a pixel model both are the same.
    """
    from benchmark.core.registry import require_choice

    require_choice("LPIPS curve reference", reference, ["input", "autoencoder"])
    distance = distance or lpips_alex_distance(model.device)
    per_t_x: dict[int, list[float]] = {}
    per_t_x0: dict[int, list[float]] = {}
    with torch.no_grad():
        for i in tqdm(range(images.shape[0]), desc="LPIPS curves", unit="img", disable=not progress, leave=False):
            pixels = images[i:i + 1].to(model.device, torch.float32)
            x = model.codec.encode(pixels)
            if reference == "autoencoder":
                pixels = model.codec.decode(x)
            for t, t_next in inversion_steps(n_steps, t0):
                eps = model.unet(x, t)
                x, x0 = ddim_step(x, eps, eps, model.alpha(t), model.alpha(t_next))
                per_t_x.setdefault(t_next, []).append(float(distance(model.codec.decode(x), pixels).reshape(-1)[0]))
                per_t_x0.setdefault(t_next, []).append(float(distance(model.codec.decode(x0), pixels).reshape(-1)[0]))
    return LpipsCurves(
        x={t: float(np.mean(v)) for t, v in per_t_x.items()},
        x0t={t: float(np.mean(v)) for t, v in per_t_x0.items()},
        x_std={t: float(np.std(v)) for t, v in per_t_x.items()},
        x0t_std={t: float(np.std(v)) for t, v in per_t_x0.items()},
    )


def lpips_alex_distance(device: torch.device | str = "cpu") -> Distance:
    """LPIPS (AlexNet, v0.1) from the `lpips` package, as the authors used; refuses to download its trunk."""
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS_FILE
    if not hub_file.is_file():
        raise MissingWeightsError(
            f"LPIPS needs torchvision's AlexNet weights at {hub_file}, which are not there",
            fix="fetch them into the torch hub cache (the harness's fetch command), or pass distance= explicitly")
    import lpips

    net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return net(a, b).reshape(-1)

    return distance


def _as_curve(curve: Curve) -> dict[int, float]:
    if isinstance(curve, str | Path):
        return read_lpips_curve(curve)
    if not isinstance(curve, Mapping) or not curve:
        raise DataError(f"an LPIPS curve must be a TSV path or a non-empty mapping t -> value, got {type(curve)}")
    return {int(t): float(v) for t, v in curve.items()}


def _first_at_or_above(curve: dict[int, float], threshold: float, what: str) -> int:
    for t in sorted(curve):
        if curve[t] >= threshold:
            return t
    raise BenchError(f"{what} never reaches {threshold:.4f} (max {max(curve.values()):.4f}); no timestep qualifies",
                     fix="check the curve, or set t_edit / t_boost explicitly")
