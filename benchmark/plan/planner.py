"""The planner: a manifest suite and a `RunRequest` → the checked `SuitePlan` the stages run.

It first runs the pre-run checks of `validate` and raises the first problem, so a run refuses exactly what
`validate` reports. Past that point the data is read and verified (digests before decoding), digests seen for the
first time go to the lock file, and the models are built. A run that gets past the planner only stops for a bug or
an interrupt.
"""

from __future__ import annotations

from typing import Any

from benchmark.core.hashing import json_digest, tensor_digest
from benchmark.inputs.data import load_dataset
from benchmark.inputs.data_roots import data_root, training_source, trains_any
from benchmark.inputs.lock import lock_command
from benchmark.inputs.manifests import LocalSource
from benchmark.inputs.selection import effective_limit, select_attributes
from benchmark.inputs.validate import validate_suite
from benchmark.plan.attribute_plans import ablation_arms, attribute_plans, selected_t  # noqa: F401
from benchmark.plan.known_answer_wiring import known_answer_gates
from benchmark.plan.loaders import LOADERS, backend_weights
from benchmark.plan.plugins import load_plugins
from benchmark.plan.references import references
from benchmark.plan.request import RunRequest, fast_path_for, known_metric_names, require_packages

INVERT_CHUNK = 8  # images per inversion unit: batched on the GPU, and what a crash can lose


def plan_from_manifests(name: str, request: RunRequest, *, registry) -> Any:
    """Resolve suite `name` (with `request.profile`) into a checked `SuitePlan` (see the module docstring)."""
    load_plugins()
    report = validate_suite(name, profile=request.profile, attributes=request.attributes, data_root=request.data,
                            train_data_root=request.train_data, out_dir=request.out, device=request.device,
                            registry=registry, known_metrics=known_metric_names(), known_loaders=LOADERS.names(),
                            verify_data=False)
    report.raise_first()
    resolved, lock, device = report.resolved, report.lock, report.device
    require_packages("models", "metrics")
    fast = fast_path_for(request, device)  # GPU-only options refuse here, before any data is read
    attributes = select_attributes(list(resolved.attributes.values()), request.attributes,
                                   name=lambda r: r.manifest.name, default=resolved.suite.default_attributes)
    test_set, train_set = _read_images(resolved, request, lock)
    limit = request.limit if resolved.dataset is None else effective_limit(request.limit,
                                                                          resolved.dataset.manifest.count)
    lock.save()  # digests seen for the first time are recorded now, so later runs check against them

    import metrics
    from benchmark.run.suite_plan import SuitePlan

    suite = resolved.suite
    model = LOADERS.get(resolved.base_model.manifest.loader)(resolved.base_model.manifest, device=device)
    model = with_layers(model, suite)
    clip_loss = _clip_loss_factory(resolved.clip_loss_model.manifest, device)
    plans = attribute_plans(resolved, attributes, lock, report.curves, clip_loss)
    return SuitePlan(
        suite=resolved.ref, images=_items(test_set) if test_set else [],
        train_images=_items(train_set) if train_set else [], noise=suite.source,
        train_noise=suite.train.source if suite.train else None,
        attributes=plans, metrics=_metric_plans(resolved, device, lock), engine=_engine(
            resolved, model, clip_loss, plans, report.weights.files, request, fast),
        make_edit_set=metrics.EditSet, delta_h_scales=tuple(suite.edit.delta_h_scale), batch_size=INVERT_CHUNK,
        seeds={k: int(v) for k, v in suite.seeds.items()} or {"global": 0},
        manifest_digests={**resolved.manifest_digests(), "run_config": json_digest(
            _run_config(request, fast, limit))},
        weight_digests={f"{f.model}/{f.path.name}": f.actual or f.expected or "" for f in report.weights.files},
        references=references(resolved), device=str(device), profile=request.profile, limit=limit,
        notes=[*_profile_notes(suite, request.profile), *_omitted_notes(suite)],
        extra_gates=known_answer_gates(resolved, device))


def with_layers(model, suite):
    """The base model with h at the suite's layer; every arm's layer is checked against the model now."""
    import models

    layers = models.hspace_layers(model.unet.unet)
    for v in suite.ft_variants or []:
        if v.hspace_layer is not None and v.hspace_layer not in layers:
            from benchmark.core.errors import UnknownNameError
            from benchmark.core.registry import unknown_name_message

            raise UnknownNameError(unknown_name_message(f"h-space layer of {model.name}", v.hspace_layer, layers),
                                   fix=f"arm {v.key}: pick one of the model's layers")
    return model.with_hspace_layer(suite.hspace.layer)


def _run_config(request: RunRequest, fast, limit: int | None) -> dict:
    """What the user chose beyond the manifests; the execution options only when set, so that a default run's
    digest is what it was before they existed."""
    config = {"profile": request.profile, "limit": limit, "attributes": request.attributes}
    chosen = {"attribute_batching": request.attribute_batching, "batch_size": request.batch_size,
              "fast_path": None if fast.is_default else fast.model_dump()}
    return {**config, **{k: v for k, v in chosen.items() if v is not None}}


def _read_images(resolved, request: RunRequest, lock):
    """The test set (first `--limit` items; none for seeded noise) and, when an f_t is trained from images, the
    training set."""
    test_set = None
    if resolved.dataset is not None:
        root = data_root(resolved.dataset, request.data, "--data")
        test_set = load_dataset(resolved.dataset.manifest, root, limit=request.limit, lock=lock,
                                relock_command=lock_command(resolved.suite.name, profile=request.profile, root=root))
    if not trains_any(resolved, request.attributes) or resolved.suite.train.source is not None:
        return test_set, None
    train_ds, given = training_source(resolved, request.data, request.train_data)
    root = data_root(train_ds, given, "--train-data")
    train_set = load_dataset(train_ds.manifest, root, limit=resolved.suite.train.n_images, lock=lock,
                             relock_command=lock_command(resolved.suite.name, profile=request.profile,
                                                         flag="--train-data", root=root))
    return test_set, train_set


def _items(image_set) -> list:
    from benchmark.run.suite_plan import ImageItem

    return [ImageItem(i, px, tensor_digest(px)) for i, px in zip(image_set.ids, image_set.images, strict=True)]


def _clip_loss_factory(clip_manifest, device):
    """`clip_loss(source, target)`: the training loss; its CLIP is built on first use (a suite that only loads
    released f_t never needs it)."""
    loaded: list = []

    def clip_loss(source: str, target: str):
        import models

        if not loaded:
            loaded.extend(LOADERS.get(clip_manifest.loader)(clip_manifest, device=device))
        clip_model, tokenizer = loaded
        return models.DirectionalClipLoss(clip_model, tokenizer, source, target, model_name=clip_manifest.ref)

    return clip_loss


def _engine(resolved, model, clip_loss, attribute_plans, files, request: RunRequest, fast):
    from benchmark.run.stages.asyrp import AsyrpEngine, TrainSettings

    suite = resolved.suite
    train = suite.train
    batching = suite.attribute_batching if request.attribute_batching is None else request.attribute_batching
    return AsyrpEngine(
        attribute_batching=batching, fast_path=fast, batch_size=request.batch_size,
        model=model, steps=suite.steps,
        digests=engine_digests(resolved, files), ft_name=suite.ft.name, ft_options=suite.ft.options,
        train_settings=None if train is None else TrainSettings(train.epochs, train.batch_size, train.optimizer,
                                                                train.lr),
        clip_loss=clip_loss, seeds=suite.seeds,
        reference_min_t=min((p.settings["t_edit"] for p in attribute_plans), default=0))


def engine_digests(resolved, files) -> dict[str, str]:
    """What the method's outputs depend on: the manifests of the base model and the loss's CLIP, and the sha256
    of every weight file they read (a manifest may leave a digest to the lock file, so hash the files too)."""
    out = {}
    for role, r in (("base_model", resolved.base_model), ("clip_loss_model", resolved.clip_loss_model)):
        out[role] = r.digest
        mine = sorted((f.path.name, f.actual or f.expected or "") for f in files if f.model == r.ref)
        if mine:
            out[f"{role}_files"] = json_digest(mine)
    return out


def _metric_plans(resolved, device, lock) -> list:
    import metrics
    from benchmark.inputs.pins import metric_backend_pin
    from benchmark.run.suite_plan import MetricPlan

    plans = []
    for m in resolved.suite.metrics:
        backend = resolved.metric_backends.get(m.key)
        backend_name = backend.manifest.loader_args.get("backend", backend.manifest.name) if backend else None
        weights = backend_weights(backend.manifest) if backend is not None and backend.manifest.files else None
        fields = {"reference": m.reference, **m.options}
        if backend is not None and isinstance(backend.manifest.source, LocalSource):
            fields.setdefault("weights_sha256", backend.manifest.files[0].sha256)  # checked before loading
        elif backend is not None and backend.manifest.files:  # the manifest's pin, not the code's constant
            fields.setdefault("weights_sha256", metric_backend_pin(backend.manifest, m.name, backend_name, lock))
        if backend_name:
            fields["backend"] = backend_name
        fields.setdefault("bootstrap_seed", int(resolved.suite.seeds.get("bootstrap", 0)))
        plans.append(MetricPlan(m.key, metrics.get_metric(m.name, weights=weights, device=device, **fields)))
    return plans


def _omitted_notes(suite) -> list[str]:
    return [f"metric {key} left out: {why}" for key, why in suite.metrics_omitted.items()]


def _profile_notes(suite, profile: str | None) -> list[str]:
    if not profile:
        return []
    return [f"profile {profile}: {suite.profiles.get(profile).description}" if profile in suite.profiles
            else f"profile {profile}"]
