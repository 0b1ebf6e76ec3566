"""A factor measure for real faces: each attribute's CLIP text direction as one factor.

Real faces have no oracle, so the h-space properties (linearity, combination, homogeneity, timestep consistency)
are measured along the direction the edit was trained for: factor k of an image is cos(E_I(image), ΔT_k), with
ΔT_k = n(E_T(target_k)) − n(E_T(source_k)) normalised (`metrics.functional.direction_projection`). An edit's change
of factor k is its CLIP image-embedding change along ΔT_k. The object satisfies the `factor-oracle` protocol
(`metrics.backends.protocols.FactorOracle`), so the property code takes it like the synthetic world's oracle.

What it is not: an independent judge. It is the same CLIP family the method trains against, so it rewards any
pixel change CLIP reads as the attribute. Nor are its factors independent: text directions of different attributes
need not be orthogonal (the synthetic CLIP's four have cosines 0.00–0.22 with each other; OpenAI's are not
measured here), so a change along another attribute's direction is not, by itself, a leak.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from metrics.functional import direction_projection, text_directions
from metrics.sdir import prompt_embedding

#: cos(·, ·) is bounded by ±1: the property code scales factor changes by this range.
COSINE_RANGE = (-1.0, 1.0)


class ClipProjectionFactors:
    """`factor_names` are the keys of `prompts` (attribute name -> (source prompt, target prompt))."""

    def __init__(self, embedder, prompts: Mapping[str, tuple[str, str]], *, templates: bool = True):
        if not prompts:
            raise ValueError("a CLIP projection measure needs at least one (source, target) prompt pair")
        self.embedder = embedder
        self.factor_names = tuple(prompts)
        self.factor_ranges = dict.fromkeys(self.factor_names, COSINE_RANGE)
        src = torch.stack([prompt_embedding(embedder, s, templates=templates) for s, _ in prompts.values()])
        trg = torch.stack([prompt_embedding(embedder, t, templates=templates) for _, t in prompts.values()])
        self.directions = text_directions(src, trg)

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W -> float32 N×K on the CPU."""
        return direction_projection(self.embedder.encode_images(images), self.directions).float()
