"""FID/KID feature extractors, all through torch-fidelity's feature-extractor registry.

A back-end here names a torch-fidelity extractor (its own `inception-v3-compat`, or one a caller registered with
`torch_fidelity.register_feature_extractor`, such as the synthetic world's oracle) and a feature layer. The input
convention is torch-fidelity's: uint8 N×3×H×W, resized inside the extractor (for Inception: to 299² with its
TF1-compatible bilinear resize, then (x − 128)/128).
"""

from __future__ import annotations

import unittest.mock
from pathlib import Path
from typing import Any

import torch

from benchmark.core.atomic import torch_save
from benchmark.core.errors import BenchError
from benchmark.core.paths import cache_dir
from metrics.backends.registry import cached_sha256, register_backend, weights_file_path

INCEPTION = "inception-v3-compat"
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


class TorchFidelityFeatures:
    """Wraps a torch-fidelity FeatureExtractorBase: one feature layer, float64 output on the CPU."""

    def __init__(self, extractor, *, layer: str, device: torch.device, info: dict[str, Any]):
        self.extractor = extractor.to(device).eval().requires_grad_(False)
        self.layer, self.device, self.info = layer, device, info

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        out = self.extractor(images.to(self.device))
        return self.extractor.convert_features_tuple_to_dict(out)[self.layer].detach().double().cpu()

    def identity(self) -> dict:
        return dict(self.info)


def create_torch_fidelity_extractor(name: str, layer: str, **kwargs: Any):
    """`torch_fidelity.utils.create_feature_extractor` on the CPU (we move it to the run's device ourselves)."""
    from torch_fidelity.utils import create_feature_extractor

    try:
        return create_feature_extractor(name, [layer], cuda=False, verbose=False, **kwargs)
    except (AssertionError, ValueError) as err:  # torch-fidelity's vassert raises ValueError
        raise BenchError(f"torch-fidelity could not create feature extractor {name!r} with layer {layer!r}: {err}",
                         fix="check the extractor name and its provided feature layers") from err


def _check_tensors_only(weights: Path) -> None:
    # torch-fidelity reads the file with weights_only=False; prove first that it holds only tensors.
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:
        raise BenchError(f"{weights} is not a plain tensor state dict (refusing to unpickle it): {err}",
                         fix="use torch-fidelity's released Inception weights (`python run_all.py fetch "
                             "inception-v3-compat`)") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BenchError(f"{weights} does not hold a state dict of tensors")


def load_inception(weights: Path, device: torch.device, layer: str = "2048", internal_dtype: str = "float32"):
    weights = weights_file_path(weights, INCEPTION_WEIGHTS_FILE)
    _check_tensors_only(weights)
    extractor = create_torch_fidelity_extractor(INCEPTION, layer, feature_extractor_weights_path=str(weights),
                                                feature_extractor_internal_dtype=internal_dtype)
    info = {"extractor": INCEPTION, "layer": layer, "internal_dtype": internal_dtype,
            "weights_sha256": cached_sha256(weights)}
    return TorchFidelityFeatures(extractor, layer=layer, device=device, info=info)


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception with seeded random weights.

    The default init collapses the features (every image maps to almost the same vector, so FID ≈ 0 for any
    two sets), so the convolutions are re-initialised with kaiming-normal, which keeps images distinguishable.
    """
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    with unittest.mock.patch.object(fe, "load_state_dict_from_url", return_value=None), \
         unittest.mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, **k: None), \
         torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = fe.FeatureExtractorInceptionV3(INCEPTION, ["2048"])
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def random_inception_weights(seed: int = 0, folder: Path | None = None) -> Path:
    """The random Inception state dict as a file (written once, atomically), so it loads via the real path."""
    folder = Path(folder) if folder is not None else cache_dir() / "metrics" / "random-weights"
    path = folder / f"inception-v3-compat-random-seed{seed}.pth"
    if not path.is_file():
        torch_save(path, random_inception_state_dict(seed))
    return path


def load_random_inception(weights: None, device: torch.device, seed: int = 0, layer: str = "2048",
                          internal_dtype: str = "float32"):
    path = random_inception_weights(seed)
    extractor = create_torch_fidelity_extractor(INCEPTION, layer, feature_extractor_weights_path=str(path),
                                                feature_extractor_internal_dtype=internal_dtype)
    info = {"extractor": INCEPTION, "layer": layer, "internal_dtype": internal_dtype, "random_seed": seed}
    return TorchFidelityFeatures(extractor, layer=layer, device=device, info=info)


def torch_fidelity_loader(extractor_name: str, **fixed_kwargs: Any):
    """A loader for any extractor registered in torch-fidelity (e.g. a synthetic-world oracle).

    The loader's `weights` (if the back-end needs them) goes to the extractor as `feature_extractor_weights_path`.
    """

    def loader(weights: Path | None, device: torch.device, layer: str, **kwargs: Any):
        extra = dict(fixed_kwargs, **kwargs)
        if weights is not None:
            extra["feature_extractor_weights_path"] = str(weights)
        extractor = create_torch_fidelity_extractor(extractor_name, layer, **extra)
        info = {"extractor": extractor_name, "layer": layer,
                "weights_sha256": None if weights is None or weights.is_dir() else cached_sha256(weights),
                **{k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool))}}
        return TorchFidelityFeatures(extractor, layer=layer, device=device, info=info)

    return loader


register_backend("fid-features", INCEPTION, load_inception, model_id="torch-fidelity:inception-v3-compat",
                 weights_file=INCEPTION_WEIGHTS_FILE, sha256_prefix="6726825d",
                 description="torch-fidelity's TF-compatible Inception-v3 (2015-12-05 weights)")
register_backend("fid-features", "tiny-inception-random", load_random_inception,
                 model_id="torch-fidelity:inception-v3-compat/random", needs_weights=False,
                 description="torch-fidelity's Inception with seeded random weights (tests, CPU profiles)")
