"""What each kind of back-end must provide. Any object with these methods can be registered (duck typing).

All image inputs are uint8 tensors N×3×H×W (RGB), on any device; a back-end moves them where it computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch

from metrics.labels import LabelSet


@runtime_checkable
class ClipEmbedder(Protocol):
    """Image and text embeddings in one joint space (for S_dir). Outputs need not be normalised."""

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W -> float N×D."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """K strings -> float K×D."""
        ...


@runtime_checkable
class FaceParser(Protocol):
    """Per-pixel class labels (for SC). `label_set` names the classes in label order."""

    label_set: LabelSet

    def parse(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W -> int64 N×h×w labels in [0, len(label_set)); h×w is the same for every call."""
        ...


@runtime_checkable
class FeatureExtractor(Protocol):
    """Features whose Gaussian statistics FID compares (and whose kernel KID compares)."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W -> float64 N×D on the CPU."""
        ...

    def identity(self) -> dict:
        """A JSON-able description that changes whenever the features would (part of the feature-cache key)."""
        ...


@runtime_checkable
class IdentityEmbedder(Protocol):
    """Face identity embeddings (for ID)."""

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[int]]]:
        """uint8 N×3×H×W -> (float N×D, flags): flags maps a code (e.g. "no_face_detected") to image indices."""
        ...


@runtime_checkable
class FactorOracle(Protocol):
    """Measures a world's generative factors from pixels (for attribute shift, and as the measure of the h-space
    property checks). `factor_names` in column order; `factor_ranges` maps each name to its (low, high), which the
    property checks use to put factors on one scale."""

    factor_names: tuple[str, ...]
    factor_ranges: Mapping[str, tuple[float, float]]

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W -> float N×F, each factor in its own units."""
        ...
