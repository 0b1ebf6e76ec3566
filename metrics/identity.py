"""ID: identity similarity, the cosine of face-recognition embeddings of each edited image and its reference."""

from __future__ import annotations

import time
from typing import Literal

import torch

from metrics.aggregate import aggregate_per_image
from metrics.backends.identity import ALIGNMENTS
from metrics.base import EditSet, Metric, MetricResult, MetricSpec, register_metric
from metrics.functional import identity_similarity


class IdentitySpec(MetricSpec):
    backend: str = "arcface-buffalo-l"
    alignment: Literal[ALIGNMENTS] = "dclip-crop"  # type: ignore[valid-type]


@register_metric
class IdentitySimilarity(Metric):
    """ID, the cosine similarity of face identity embeddings between edited and reference images."""

    name = "id@1"
    direction = "higher"
    backend_kind = "identity"
    Spec = IdentitySpec

    def backend_options(self) -> dict:
        options = dict(self.spec.backend_options)
        if self.spec.backend.startswith("arcface"):
            options["alignment"] = self.spec.alignment
        return options

    def embed(self, embedder, images: torch.Tensor, desc: str) -> tuple[torch.Tensor, dict[str, list[int]]]:
        outs, flags, offset = [], {}, 0
        for batch in self.batches(images, desc):
            emb, batch_flags = embedder.embed(batch)
            outs.append(emb)
            for code, idx in batch_flags.items():
                flags.setdefault(code, []).extend(i + offset for i in idx)
            offset += batch.shape[0]
        return torch.cat(outs), flags

    def compute(self, edits: EditSet) -> MetricResult:
        started = time.perf_counter()
        reference = self.check(edits)
        embedder = self.backend()
        emb_ref, flags_ref = self.embed(embedder, reference, "reference")
        emb_edit, flags_edit = self.embed(embedder, edits.edited, "edited")
        sim = identity_similarity(emb_edit, emb_ref)
        flags = {f"{code}_reference": [edits.ids[i] for i in idx] for code, idx in flags_ref.items() if idx}
        flags |= {f"{code}_edited": [edits.ids[i] for i in idx] for code, idx in flags_edit.items() if idx}
        agg = dict(resamples=self.spec.bootstrap_resamples, seed=self.spec.bootstrap_seed)
        return MetricResult(
            name=self.name, direction=self.direction,
            primary=aggregate_per_image(sim.tolist(), **agg), variants={},
            per_image={"value": sim.tolist()}, ids=list(edits.ids), flags=flags, spec=self.spec_dict(),
            notes=[f"alignment: {self.spec.alignment}" if self.spec.backend.startswith("arcface")
                   else "alignment: the back-end's own"],
            provenance=self.provenance(started),
        )
