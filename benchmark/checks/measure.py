"""The factor measure of the known-answer checks: pixels -> one number per factor, with each factor's range.

`measure(pixels in [-1, 1]) -> N×K`, with `names` (the K factor names, in column order) and `ranges`
(name -> (low, high), to put factors on one scale). The loaded measure brings its own names and ranges: the
synthetic world's factor oracle (a metric back-end of kind `factor-oracle`) its factors' ranges, the CLIP projection
of the real world (`metrics.clip_projection`) the cosine's (−1, 1) for every attribute. Nothing here knows which
world it measures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from benchmark.core.errors import ManifestError
from benchmark.core.images import to_uint8
from benchmark.outputs.results import KNOWN_ANSWER_COLUMN, PAPER_CLAIM_COLUMN

COLUMN = KNOWN_ANSWER_COLUMN
CLAIM_COLUMN = PAPER_CLAIM_COLUMN  # the real world's bands: what the paper claims, reported, no answer known
PROVENANCE = "known answer of the synthetic world (suite manifest `known_answers`)"
CLIP_PROVENANCE = ("h-space property on real faces, measured as the change of cos(E_I(image), ΔT) along each "
                   "attribute's CLIP text direction (metrics.clip_projection); no answer is known, so the band is "
                   "the paper's claim, reported (suite manifest `known_answers`)")


class FactorMeasure(Protocol):
    names: Sequence[str]
    ranges: Mapping[str, tuple[float, float]]
    digest: str
    column: str  # the reference column its bands go under
    provenance: str
    label: str  # what the figures call it ("oracle", "CLIP projection")

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class CallableMeasure:
    """A `FactorMeasure` from a function and its factor names and ranges."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    names: tuple[str, ...]
    ranges: Mapping[str, tuple[float, float]]
    digest: str
    column: str = COLUMN
    provenance: str = PROVENANCE
    label: str = "oracle"

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.fn(pixels)


def factor_measure(loaded: Any, *, digest: str, column: str = COLUMN, provenance: str = PROVENANCE,
                   label: str = "oracle") -> FactorMeasure:
    """The measure of a loaded factor oracle: `factor_names`, `factor_ranges` (name -> (low, high), covering every
    factor) and `measure(uint8 images) -> N×K` (the metric back-end of kind `factor-oracle`, or
    `metrics.clip_projection`). Pixels are quantised to uint8 first, as every stored image is."""
    names = tuple(getattr(loaded, "factor_names", ()))
    if not names or not callable(getattr(loaded, "measure", None)):
        raise ManifestError(f"the known-answer measure ({type(loaded).__name__}) has no factor_names and measure()",
                            fix="name a factor oracle (a back-end of kind factor-oracle) as `known_answers.measure`")
    ranges = getattr(loaded, "factor_ranges", None)
    if ranges is None or not set(names) <= set(ranges):
        raise ManifestError(f"the measure's factors {names} have no ranges", fix="give it `factor_ranges`")
    return CallableMeasure(lambda pixels: loaded.measure(to_uint8(pixels)).float(), names, dict(ranges), digest,
                           column, provenance, label)
