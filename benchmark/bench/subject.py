"""What bench measures: a suite's models, built without downloads (`Subject`).

A model the suite would fetch (a `hub` or `url` source) is rebuilt with random weights in its real architecture
(`benchmark.bench.architectures`); a shipped (`local`) or seeded (`random`) one is loaded by the suite's own
loader. Speed depends on the architecture and the shapes, not on the weights' values (a random UNet has larger
activations than a trained one, which matters only for bf16's rounding, not for its speed).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.bench.architectures import BASE_MODELS, LOSS_CLIPS, METRIC_BACKENDS
from benchmark.inputs.manifests import LocalSource
from benchmark.plan.loaders import LOADERS, backend_weights
from benchmark.plan.plugins import load_plugins

FETCHED = ("hub", "url")  # source types whose weights bench replaces by random ones


@dataclass
class MetricBackend:
    key: str  # the suite's metric key (sdir, fid_orig, ...)
    kind: str  # metrics.backends kind: clip, face-parser, fid-features, identity, factor-oracle
    backend: Any
    model: str  # the back-end's model manifest ref


@dataclass
class Subject:
    model: Any  # models.DiffusionModel
    losses: list  # one models.DirectionalClipLoss per attribute of the largest training group, one CLIP object
    new_ft: Callable[[], torch.nn.Module]
    backends: list[MetricBackend] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)  # model ref -> what weights bench used
    meta: Subject | None = None  # the same networks on the meta device (FLOP counts without compute)

    @property
    def counting(self) -> Subject:
        return self.meta or self


def _source(resolved) -> str:
    return getattr(resolved.manifest.source, "type", "local")


def base_model(resolved, device):
    manifest = resolved.manifest
    if _source(resolved) in FETCHED:
        return BASE_MODELS.get(manifest.name)(device)
    return LOADERS.get(manifest.loader)(manifest, device=device)


def loss_clip(resolved, device):
    manifest = resolved.manifest
    if _source(resolved) in FETCHED:
        return LOSS_CLIPS.get(manifest.name)(device)
    return LOADERS.get(manifest.loader)(manifest, device=device)


def clip_losses(clip, tokenizer, prompts: Sequence[tuple[str, str]], name: str) -> list:
    """One loss per prompt pair, sharing `clip`. One text template: the text side is encoded once per attribute
    at construction and is no part of any timed unit."""
    import models

    return [models.DirectionalClipLoss(clip, tokenizer, src, trg, templates=models.IMAGENET_TEMPLATES[:1],
                                       model_name=name) for src, trg in prompts]


def metric_backend(entry, resolved, device, seed: int) -> MetricBackend:
    """The back-end of one metric entry of the suite, as the planner would build it (random weights in place of
    fetched ones)."""
    import metrics

    manifest = resolved.manifest
    name = manifest.loader_args.get("backend", manifest.name)
    fields = {"reference": entry.reference, **entry.options, "backend": name, "bootstrap_seed": seed}
    kind = metrics.METRICS.get(entry.name).backend_kind
    if _source(resolved) in FETCHED:
        backend = METRIC_BACKENDS.get(manifest.name)(metrics.build_spec(entry.name, **fields), device)
    else:
        if isinstance(manifest.source, LocalSource):
            fields.setdefault("weights_sha256", manifest.files[0].sha256)
        weights = backend_weights(manifest) if manifest.files else None
        backend = metrics.get_metric(entry.name, weights=weights, device=device, **fields).backend()
    return MetricBackend(entry.key, kind, backend, manifest.ref)


def training_prompts(resolved) -> list[tuple[str, str]]:
    """The prompt pairs of the attributes that train in one pass (all of a suite's trained attributes share its
    training settings; the ablation arms of one attribute train beside each other)."""
    trained = [r.manifest for name, r in resolved.attributes.items() if name not in resolved.ft_checkpoints]
    arms = len(resolved.suite.ft_variants or [None])
    return [(a.source_prompt, a.target_prompt) for a in trained for _ in range(arms)]


def build_subject(resolved, device, *, with_metrics: bool = True) -> Subject:
    """The suite's models on `device`, and their meta twins when the base model is rebuilt from its
    architecture (so that the full-size FLOP counts need no compute)."""
    import models

    load_plugins()
    device = torch.device(device)
    model = base_model(resolved.base_model, device)
    clip, tokenizer = loss_clip(resolved.clip_loss_model, device)
    prompts = training_prompts(resolved) or [("face", "smiling face")]
    losses = clip_losses(clip, tokenizer, prompts, resolved.clip_loss_model.ref)
    ft_spec = resolved.suite.ft

    def new_ft(device=device, unet=model.unet):
        with torch.device(device):
            return models.build_ft(ft_spec.name, h_channels=unet.h_channels, temb_dim=unet.temb_dim,
                                   h_size=unet.h_size, seed=0, **ft_spec.options)

    seed = int(resolved.suite.seeds.get("bootstrap", 0))
    backends = [metric_backend(m, resolved.metric_backends[m.key], device, seed) for m in resolved.suite.metrics
                if with_metrics and m.key in resolved.metric_backends]
    weights = {r.ref: "random weights, real architecture" if _source(r) in FETCHED else f"{_source(r)} weights"
               for r in (resolved.base_model, resolved.clip_loss_model, *resolved.metric_backends.values())}
    subject = Subject(model, losses, new_ft, backends, weights)
    if _source(resolved.base_model) in FETCHED:
        meta_model = base_model(resolved.base_model, "meta")
        meta_losses = [loss.to("meta") for loss in copy.deepcopy(losses)]  # one deep copy: one shared CLIP
        subject.meta = Subject(meta_model, meta_losses, lambda: new_ft("meta", meta_model.unet))
    return subject
