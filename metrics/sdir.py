"""S_dir: directional CLIP similarity, cos(ΔI, ΔT).

ΔI = n(E_I(edited)) − n(E_I(reference)), ΔT = n(E_T(target)) − n(E_T(source)), n = L2 normalisation. With
`templates=True` each prompt's text embedding is the CLIP prompt ensemble over the 79 ImageNet templates,
n(mean_k n(E_T(template_k(prompt)))). The primary value is the raw cosine; the reproduction study's `1 − cos`
is reported beside it as a variant. The scale the paper used is unknown (see docs/metrics.md).
"""

from __future__ import annotations

import time
from typing import Literal

import torch

from benchmark.core.errors import DataError
from metrics.aggregate import aggregate_per_image
from metrics.backends.clip import PREPROCESS_MODES
from metrics.base import EditSet, Metric, MetricResult, MetricSpec, register_metric
from metrics.functional import ZERO_DIRECTION_EPS, directional_similarity, image_direction
from metrics.templates import IMAGENET_TEMPLATES_79, expand

SCALE_NOTE = ("S_dir is the raw cos(ΔI, ΔT). The Asyrp paper's S_dir scale is unknown: its values (0.80–0.99) are "
              "implausible for a raw cosine; the reproduction study reported 1 − cos to match them. "
              "Compare like with like.")


def prompt_embedding(embedder, prompt: str, *, templates: bool) -> torch.Tensor:
    """E_T(prompt), float64; with `templates`, the mean of the L2-normalised embeddings of the prompt in each of
    the 79 ImageNet templates (CLIP's prompt ensemble)."""
    if not templates:
        return embedder.encode_texts([prompt])[0].double()
    per_template = embedder.encode_texts(expand(prompt, IMAGENET_TEMPLATES_79)).double()
    per_template = per_template / per_template.norm(dim=-1, keepdim=True)
    return per_template.mean(0)


class SdirSpec(MetricSpec):
    backend: str = "clip-vit-b32-openai"
    templates: bool = True
    image_preprocess: Literal[PREPROCESS_MODES] = "open_clip"  # type: ignore[valid-type]


@register_metric
class DirectionalClipSimilarity(Metric):
    """S_dir, the directional CLIP similarity cos(ΔI, ΔT) between the image edit and the text edit."""

    name = "sdir@1"
    direction = "higher"
    backend_kind = "clip"
    Spec = SdirSpec

    def backend_options(self) -> dict:
        return {**self.spec.backend_options, "preprocess": self.spec.image_preprocess}

    def text_embedding(self, embedder, prompt: str) -> torch.Tensor:
        return prompt_embedding(embedder, prompt, templates=self.spec.templates)

    def encode(self, embedder, images: torch.Tensor, desc: str) -> torch.Tensor:
        return torch.cat([embedder.encode_images(b) for b in self.batches(images, desc)])

    def compute(self, edits: EditSet) -> MetricResult:
        started = time.perf_counter()
        reference = self.check(edits)
        if not edits.source_text or not edits.target_text:
            raise DataError("S_dir needs the EditSet's source_text and target_text (the attribute's prompts)")
        embedder = self.backend()
        txt_src = self.text_embedding(embedder, edits.source_text)
        txt_trg = self.text_embedding(embedder, edits.target_text)
        img_ref = self.encode(embedder, reference, "reference")
        img_edit = self.encode(embedder, edits.edited, "edited")
        cos = directional_similarity(img_ref, img_edit, txt_src, txt_trg)
        zero = (image_direction(img_ref, img_edit).norm(dim=-1) < ZERO_DIRECTION_EPS).nonzero().flatten().tolist()
        one_minus = 1.0 - cos
        agg = dict(resamples=self.spec.bootstrap_resamples, seed=self.spec.bootstrap_seed)
        return MetricResult(
            name=self.name, direction=self.direction,
            primary=aggregate_per_image(cos.tolist(), **agg),
            variants={"one_minus_cos": aggregate_per_image(one_minus.tolist(), **agg)},
            per_image={"value": cos.tolist(), "one_minus_cos": one_minus.tolist()},
            ids=list(edits.ids),
            flags={"zero_image_direction": [edits.ids[i] for i in zero]} if zero else {},
            spec=self.spec_dict(),
            notes=[SCALE_NOTE, "one_minus_cos is the reproduction study's convention (1 − cos), not a separate "
                   "measurement; lower raw cos means higher 1 − cos.",
                   *(["zero_image_direction: the edit left the CLIP embedding unchanged; cos is undefined there "
                      "and scored 0."] if zero else [])],
            provenance=self.provenance(started),
        )
