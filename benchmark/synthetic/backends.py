"""Metric back-ends of the synthetic world, registered beside the real ones (metrics.backends).

| kind | name | what |
|---|---|---|
| clip | synthetic-clip | the small CLIP (S_dir) |
| face-parser | synthetic-segmenter | the segmenter, labels in `renderer.CLASSES` order (SC) |
| fid-features | synthetic-oracle | the oracle's pooled trunk features through torch-fidelity (FID/KID) |
| identity | synthetic-oracle | the oracle's identity embedding (ID) |
| factor-oracle | synthetic-oracle | the oracle's factor measurements (attribute-shift) |

Each loader reads the file its model manifest pins and checks the manifest's sha256 before loading.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.core.errors import DataError
from benchmark.synthetic.renderer import CLASSES, FACTOR_NAMES, FACTOR_RANGES, IMAGE_SIZE
from benchmark.synthetic.weights import load_clip, load_oracle, load_segmenter, pinned_file, shipped_file
from metrics.labels import LabelSet

SYNTHETIC_LABELS = LabelSet("synthetic-face", CLASSES)
# Explicit mapping of CelebAMask-HQ's 19 classes onto the synthetic world's 7 (for comparing the segmenter with a
# real parser's output, e.g. `CELEBAMASK_HQ.remap(labels, SYNTHETIC_LABELS, merge=CELEBAMASK_TO_SYNTHETIC)`).
CELEBAMASK_TO_SYNTHETIC = {
    "l_eye": "eye", "r_eye": "eye", "eye_g": "eye", "l_brow": "brow", "r_brow": "brow", "u_lip": "mouth",
    "l_lip": "mouth", "l_ear": "skin", "r_ear": "skin", "neck": "skin", "neck_l": "background",
    "ear_r": "background", "hat": "hair", "cloth": "background",
}
FID_EXTRACTOR = "synthetic-oracle"
FID_LAYER = "trunk"


def _check_size(images: torch.Tensor, what: str) -> None:
    if tuple(images.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"the synthetic {what} takes {IMAGE_SIZE}² images, got {tuple(images.shape[-2:])}",
                        fix="measure images of the synthetic world at their native size")


class SyntheticParser:
    label_set = SYNTHETIC_LABELS

    def __init__(self, net, device: torch.device):
        self.net, self.device = net.to(device), device

    def parse(self, images: torch.Tensor) -> torch.Tensor:
        _check_size(images, "segmenter")
        return self.net.parse(images.to(self.device)).cpu()


class OracleIdentity:
    def __init__(self, oracle, device: torch.device):
        self.oracle, self.device = oracle.to(device), device

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[int]]]:
        _check_size(images, "oracle")
        return self.oracle.measure(images.to(self.device))[1], {}


class OracleFactors:
    """The oracle's factor measurements, each factor in its own units; `factor_ranges` are the renderer's
    (`renderer.FACTOR_RANGES`), which the h-space property checks use to put factors on one scale."""

    factor_names = FACTOR_NAMES
    factor_ranges = {n: FACTOR_RANGES[n] for n in FACTOR_NAMES}

    def __init__(self, oracle, device: torch.device):
        self.oracle, self.device = oracle.to(device), device

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        _check_size(images, "oracle")
        return self.oracle.measure(images.to(self.device))[0]


def _clip_loader(weights: Path | None, device: torch.device, preprocess: str = "open_clip"):
    from metrics.backends.clip import OpenClipEmbedder

    path, sha = pinned_file("synthetic-clip", weights)
    model, tokenizer = load_clip(path, sha)
    return OpenClipEmbedder(model, tokenizer, device=device, preprocess=preprocess)


def _parser_loader(weights: Path | None, device: torch.device, input_size: int = IMAGE_SIZE,
                   normalize: str = "none"):
    """SC's preprocessing options must say what the segmenter does: native 64², no ImageNet normalisation (it
    scales uint8 to [-1, 1] itself, as in training)."""
    from benchmark.core.errors import BenchError

    if input_size != IMAGE_SIZE or normalize != "none":
        raise BenchError(f"the synthetic segmenter parses at {IMAGE_SIZE}² without ImageNet normalisation; got "
                         f"input_size={input_size}, normalize={normalize!r}",
                         fix=f"set the SC metric's options to {{input_size: {IMAGE_SIZE}, normalize: none}}")
    path, sha = pinned_file("synthetic-segmenter", weights)
    return SyntheticParser(load_segmenter(path, sha), device)


def _identity_loader(weights: Path | None, device: torch.device):
    path, sha = pinned_file("synthetic-oracle", weights)
    return OracleIdentity(load_oracle(path, sha), device)


def _factor_loader(weights: Path | None, device: torch.device):
    path, sha = pinned_file("synthetic-oracle", weights)
    return OracleFactors(load_oracle(path, sha), device)


def _torch_fidelity_extractor_class():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class OracleFeatureExtractor(FeatureExtractorBase):
        """torch-fidelity extractor: uint8 N×3×64×64 -> the oracle's pooled trunk features (512-d)."""

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            path, sha = pinned_file("synthetic-oracle", feature_extractor_weights_path)
            self.oracle = load_oracle(path, sha)

        @staticmethod
        def get_provided_features_list():
            return (FID_LAYER,)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return FID_LAYER

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)

        def forward(self, images):
            _check_size(images, "oracle")
            x = images.float() / 127.5 - 1.0
            return (self.oracle._features(x),)

    return OracleFeatureExtractor


def register() -> None:
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from metrics.backends.features import torch_fidelity_loader
    from metrics.backends.registry import BACKENDS, register_backend

    if "synthetic-clip" in BACKENDS["clip"].names():
        return
    if FID_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(FID_EXTRACTOR, _torch_fidelity_extractor_class())

    def default(name: str):
        return lambda: shipped_file(name)[0]

    common = {"needs_weights": True}
    register_backend("clip", "synthetic-clip", _clip_loader, model_id="asyrp-bench:synthetic-clip",
                     default_weights=default("synthetic-clip"), description="the synthetic world's small CLIP",
                     **common)
    register_backend("face-parser", "synthetic-segmenter", _parser_loader,
                     model_id="asyrp-bench:synthetic-segmenter", default_weights=default("synthetic-segmenter"),
                     description="the synthetic world's segmenter (7 classes)", **common)
    register_backend("fid-features", "synthetic-oracle", torch_fidelity_loader(FID_EXTRACTOR),
                     model_id="asyrp-bench:synthetic-oracle/trunk", default_weights=default("synthetic-oracle"),
                     description="the synthetic oracle's pooled trunk features (via torch-fidelity)", **common)
    register_backend("identity", "synthetic-oracle", _identity_loader, model_id="asyrp-bench:synthetic-oracle/id",
                     default_weights=default("synthetic-oracle"),
                     description="the synthetic oracle's identity embedding", **common)
    register_backend("factor-oracle", "synthetic-oracle", _factor_loader,
                     model_id="asyrp-bench:synthetic-oracle/factors", default_weights=default("synthetic-oracle"),
                     description="the synthetic oracle's factor measurements", **common)
