"""Manifests → objects: the model-loader registry, and `plan_from_manifests`, which resolves a suite into the
`SuitePlan` the stages run.

Every check that can fail on bad input runs here, before any compute: the suite and everything it names resolves
(did-you-mean on typos), the device is there, the weights are on disk with the right digests (else the `fetch`
command), the data is complete with the right digests (else what to pass). A run that gets past this point only
stops for a bug or an interrupt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.errors import DeviceError, ManifestError, MissingWeightsError
from benchmark.manifests import LocalSource
from benchmark.paths import REPO_ROOT, fixtures_dir
from benchmark.registry import Registry

log = logging.getLogger("benchmark.loaders")

INVERT_CHUNK = 8  # images per inversion unit: batched on the GPU, and what a crash can lose

# loader name (a model manifest's `loader`) -> fn(manifest, *, device, weights_root) -> object
LOADERS: Registry[Callable[..., Any]] = Registry("model loader")


# Packages that bring their own model loaders and metric back-ends register them when imported (the synthetic
# world: its DDPM, CLIP, segmenter and oracle). The harness imports them before resolving any suite.
PLUGIN_PACKAGES = ("benchmark.synthetic",)


def load_plugins() -> None:
    import importlib
    import importlib.util

    for name in PLUGIN_PACKAGES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def _random_source(manifest) -> bool:
    return getattr(manifest.source, "type", None) == "random"


def _weights_file(manifest, weights_root: Path | None = None) -> Path:
    from benchmark.fetch import local_path

    files = manifest.files
    if len(files) != 1:
        raise MissingWeightsError(f"model {manifest.ref} lists {len(files)} files; its loader expects exactly one")
    return local_path(manifest, files[0], weights_root)


@LOADERS.register("diffusers-unet2d")
def _diffusers_unet2d(manifest, *, device, weights_root=None):
    """A pixel DDPM `UNet2DModel` with the authors' linear schedule (never the Hub scheduler's x0 clipping)."""
    import models

    if _random_source(manifest):
        return models.random_diffusion_model(manifest.source.config, manifest.source.seed,
                                             name=manifest.ref).to(device)
    from benchmark.fetch import model_dir

    # Digests were checked by `missing_weights` before we got here.
    return models.load_ddpm_celebahq(model_dir(manifest, weights_root), verify=False, device=device)


@LOADERS.register("diffusers-ldm")
def _diffusers_ldm(manifest, *, device, weights_root=None):
    """A latent diffusion model (UNet2DModel + VQModel/AutoencoderKL + scheduler config) from a diffusers
    snapshot folder: fetched (hub), shipped in the repo (local: the folder holding all listed files), or random.
    `loader_args.scaling_factor` overrides the autoencoder config's latent scale."""
    import os

    import models
    from benchmark.fetch import fetch_command, local_path, model_dir

    scaling = manifest.loader_args.get("scaling_factor")
    if _random_source(manifest):
        config = dict(manifest.source.config)
        if scaling is not None:
            config["scaling_factor"] = scaling
        return models.random_latent_diffusion_model(config, manifest.source.seed, name=manifest.ref).to(device)
    if getattr(manifest.source, "type", None) == "local":
        root = Path(os.path.commonpath([local_path(manifest, f) for f in manifest.files]))
    else:
        root = model_dir(manifest, weights_root)
    # Digests were checked by `missing_weights` before we got here.
    return models.load_latent_diffusion(root, scaling_factor=scaling, device=device, name=manifest.ref,
                                        fetch_hint=f"run `{fetch_command([manifest.ref])}` (on a machine with "
                                                   "internet)")


@LOADERS.register("ddpm-checkpoint")
def _ddpm_checkpoint(manifest, *, device, weights_root=None):
    """The authors' SDEdit CelebA-HQ checkpoint (ermongroup layout), converted to a `UNet2DModel`."""
    import models

    return models.load_sdedit_celebahq(_weights_file(manifest, weights_root), sha256=None, device=device)


@LOADERS.register("open-clip")
def _open_clip(manifest, *, device, weights_root=None):
    """(model, tokenizer) of open_clip, random for tests or from the fetched weights file. Real weights go through
    the S_dir back-ends' loader (`metrics.backends.clip.build_openai_clip`), so the loss's CLIP and the metric's
    read a file the same way (TorchScript or state dict, QuickGELU as `loader_args.quick_gelu` says)."""
    import models

    if _random_source(manifest):
        model, tokenizer = models.random_open_clip(manifest.source.config, manifest.source.seed)
        return model.to(device), tokenizer
    import open_clip

    from benchmark.lock import LockFile, model_key
    from metrics.backends.clip import build_openai_clip

    args = manifest.loader_args
    name = args["model_name"]
    path = _weights_file(manifest, weights_root)
    pinned = manifest.files[0].sha256 or LockFile.load().digest(model_key(manifest.ref), manifest.files[0].path)
    model = build_openai_clip(name, path, sha256=pinned, quick_gelu=bool(args.get("quick_gelu", False)),
                              format=args.get("format", "auto"))
    return model.eval().to(device), open_clip.get_tokenizer(name)


def plan_from_manifests(name: str, request) -> Any:
    """Resolve suite `name` (with `request.profile`) into a checked `SuitePlan`.

    Checks run cheapest first, and all before any model is built: manifests parse, the suite resolves, the device
    is there, the weights are on disk and match, the data is complete and matches.
    """
    from benchmark.data import load_dataset
    from benchmark.fetch import missing_weights, model_dir
    from benchmark.hashing import json_digest, tensor_digest
    from benchmark.lock import LockFile, model_key
    from benchmark.manifests import ManifestRegistry, resolve_suite, suite_with_profile
    from benchmark.runtime import resolve_device
    from benchmark.suite import known_metric_names, require_packages, select_attributes

    load_plugins()
    registry = ManifestRegistry()
    _refuse_broken_manifests(registry)
    suite, _ = suite_with_profile(registry.get("suite", name), request.profile)
    device = _device_for(suite, request.device, resolve_device)
    resolved = resolve_suite(name, profile=request.profile, registry=registry, known_metrics=known_metric_names())
    attributes = select_attributes(list(resolved.attributes.values()), request.attributes,
                                   name=lambda r: r.manifest.name)
    for r in (resolved.base_model, resolved.clip_loss_model):
        LOADERS.get(r.manifest.loader)  # an unknown loader fails now, with did-you-mean, not after the data
    _check_ft_names(suite)

    lock = LockFile.load()
    weights = missing_weights(resolved, lock=lock)
    if weights.problems:
        listed = "; ".join(f"{f.model}: {f.path.name} {f.state}" for f in weights.problems[:6])
        raise MissingWeightsError(f"suite {resolved.ref} needs weights that are not on disk or do not match "
                                  f"({listed})", fix=f"run `{weights.command}` (on a machine with internet)")

    curves = _t_select_curves(suite, resolved)  # before the data: a missing curve file is a setup problem too
    test_set = load_dataset(resolved.dataset.manifest, _data_root(resolved.dataset, request.data, "--data"),
                            limit=request.limit, lock=lock)
    train_set = None
    if suite.train is not None and len(attributes) > len(resolved.ft_checkpoints):
        train_ds = resolved.train_dataset or resolved.dataset
        root = request.train_data or (request.data if train_ds.ref == resolved.dataset.ref else None)
        train_set = load_dataset(train_ds.manifest, _data_root(train_ds, root, "--train-data"),
                                 limit=suite.train.n_images, lock=lock)
    lock.save()  # digests seen for the first time are recorded now, so later runs check against them

    require_packages("models", "metrics")
    import metrics
    from benchmark.pins import metric_backend_pin
    from benchmark.stages.asyrp import AsyrpEngine, Steps, TrainSettings
    from benchmark.stages.plan import AttributePlan, ImageItem, MetricPlan, SuitePlan

    def items(image_set) -> list:
        return [ImageItem(i, px, tensor_digest(px)) for i, px in zip(image_set.ids, image_set.images, strict=True)]

    model = LOADERS.get(resolved.base_model.manifest.loader)(resolved.base_model.manifest, device=device)
    clip_manifest = resolved.clip_loss_model.manifest
    loaded_clip: list = []  # built on first use: a suite that only loads released f_t never needs it

    def clip_loss(source: str, target: str):
        import models

        if not loaded_clip:
            loaded_clip.extend(LOADERS.get(clip_manifest.loader)(clip_manifest, device=device))
        clip_model, tokenizer = loaded_clip
        return models.DirectionalClipLoss(clip_model, tokenizer, source, target, model_name=clip_manifest.ref)

    attribute_plans = []
    for r in attributes:
        a = r.manifest
        official = None
        if a.name in resolved.ft_checkpoints:
            ck = resolved.ft_checkpoints[a.name].manifest
            official = (str(_weights_file(ck)), ck.files[0].sha256 or lock.digest(model_key(ck.ref), ck.files[0].path))
        settings = {"t_edit": a.t_edit, "t_boost": a.t_boost, "lambda_clip": a.lambda_clip,
                    "lambda_recon": a.lambda_recon, "lambda_recon_times_text_cosine": a.lambda_recon_times_text_cosine}
        if curves is not None:
            settings.update(_selected_t(suite.t_select, curves, clip_loss(a.source_prompt, a.target_prompt)))
        attribute_plans.append(AttributePlan(a.name, r.ref, a.domain, a.source_prompt, a.target_prompt, settings,
                                             official))
    attribute_plans = _ablation_arms(attribute_plans, suite.ft_variants)

    train = suite.train
    engine = AsyrpEngine(
        model=model, steps=Steps(suite.steps.n_inv, suite.steps.n_train, suite.steps.n_test),
        digests=_engine_digests(resolved, weights.files),
        ft_name=suite.ft.name, ft_options=suite.ft.options,
        train_settings=None if train is None else TrainSettings(train.epochs, train.batch_size, train.optimizer,
                                                                train.lr),
        clip_loss=clip_loss, seeds=suite.seeds,
        reference_min_t=min((p.settings["t_edit"] for p in attribute_plans), default=0))

    metric_plans = []
    for m in suite.metrics:
        backend = resolved.metric_backends.get(m.key)
        backend_name = backend.manifest.loader_args.get("backend", backend.manifest.name) if backend else None
        weights_path = (_backend_weights(backend.manifest, model_dir) if backend is not None
                        and backend.manifest.files else None)
        fields = {"reference": m.reference, **m.options}
        if backend is not None and isinstance(backend.manifest.source, LocalSource):
            fields.setdefault("weights_sha256", backend.manifest.files[0].sha256)  # checked before loading
        elif backend is not None and backend.manifest.files:  # the manifest's pin, not the code's constant
            fields.setdefault("weights_sha256", metric_backend_pin(backend.manifest, m.name, backend_name, lock))
        if backend_name:
            fields["backend"] = backend_name
        fields.setdefault("bootstrap_seed", int(suite.seeds.get("bootstrap", 0)))
        metric_plans.append(MetricPlan(m.key, metrics.get_metric(m.name, weights=weights_path, device=device,
                                                                 **fields)))

    references = _references(resolved)
    weight_digests = {f"{f.model}/{f.path.name}": f.actual or f.expected or "" for f in weights.files}
    notes = []
    if request.profile:
        notes.append(f"profile {request.profile}: {suite.profiles.get(request.profile).description}"
                     if request.profile in suite.profiles else f"profile {request.profile}")
    return SuitePlan(
        suite=resolved.ref, images=items(test_set), train_images=items(train_set) if train_set else [],
        attributes=attribute_plans, metrics=metric_plans, engine=engine, make_edit_set=metrics.EditSet,
        delta_h_scales=tuple(suite.edit.delta_h_scale), batch_size=INVERT_CHUNK,
        seeds={k: int(v) for k, v in suite.seeds.items()} or {"global": 0},
        manifest_digests={**resolved.manifest_digests(), "run_config": json_digest(
            {"profile": request.profile, "limit": request.limit, "attributes": request.attributes})},
        weight_digests=weight_digests, references=references, device=str(device), profile=request.profile,
        limit=request.limit, notes=notes, extra_gates=_known_answer_gates(resolved, device))


def _known_answer_gates(resolved, device) -> list:
    """The suite's known-answer checks as an extra gate, with its factor oracle loaded (docs/manifests.md)."""
    spec = resolved.suite.known_answers
    if spec is None:
        return []
    from benchmark.known_answers import KnownAnswerGates, factor_measure

    if spec.clip_projection is not None:
        return [KnownAnswerGates(spec, _clip_projection_measure(resolved, device))]
    m = resolved.known_answer_measure
    manifest = m.manifest
    if manifest.loader == "metric-backend":  # the oracle is a metric back-end of kind factor-oracle
        from benchmark.fetch import model_dir
        from metrics.backends import load_backend

        loaded = load_backend("factor-oracle", manifest.loader_args.get("backend", manifest.name),
                              weights=_backend_weights(manifest, model_dir), device=device)
    else:
        loaded = LOADERS.get(manifest.loader)(manifest, device=device)
    return [KnownAnswerGates(spec, factor_measure(loaded, digest=m.digest))]


def _clip_projection_measure(resolved, device):
    """The real world's factor measure: a CLIP back-end projecting images on every suite attribute's text
    direction. Its factors are all the suite's attributes (not only those `--attributes` picks), so its digest,
    and the cache units keyed on it, do not depend on the selection."""
    from benchmark.fetch import model_dir
    from benchmark.hashing import json_digest
    from benchmark.known_answers import CLAIM_COLUMN, CLIP_PROVENANCE, factor_measure
    from benchmark.lock import LockFile
    from benchmark.pins import backend_pin
    from metrics.backends import get_backend, load_backend
    from metrics.clip_projection import ClipProjectionFactors

    spec = resolved.suite.known_answers
    options = spec.clip_projection
    m = resolved.known_answer_measure
    manifest = m.manifest
    name = manifest.loader_args.get("backend", manifest.name)
    embedder = load_backend("clip", name, weights=_backend_weights(manifest, model_dir) if manifest.files else None,
                            expected_sha256=backend_pin(manifest, get_backend("clip", name).weights_file,
                                                        LockFile.load()) if manifest.files else None,
                            device=device, preprocess=options.image_preprocess)
    prompts = {r.manifest.name: (r.manifest.source_prompt, r.manifest.target_prompt)
               for r in resolved.attributes.values()}
    digest = json_digest({"clip": m.digest, "prompts": prompts, "options": options.model_dump(),
                          "code": _clip_projection_code()})
    return factor_measure(ClipProjectionFactors(embedder, prompts, templates=options.templates), digest=digest,
                          column=CLAIM_COLUMN, provenance=CLIP_PROVENANCE, label="CLIP projection")


def _clip_projection_code() -> str:
    from benchmark.hashing import json_digest, sha256_file
    from metrics import clip_projection, functional, sdir

    return json_digest([sha256_file(mod.__file__) for mod in (clip_projection, functional, sdir)])


def _t_select_curves(suite, resolved):
    """The base model's LPIPS curves named by the suite's `t_select`, or None; missing files stop the run with the
    command that computes them."""
    if suite.t_select is None:
        return None
    import models
    from benchmark.errors import DataError
    from benchmark.paths import safe_join

    sel = suite.t_select
    folder = safe_join(REPO_ROOT, sel.curves)
    try:
        curves = models.LpipsCurves.load(folder, sel.prefix)
    except DataError as e:
        raise DataError(f"suite {resolved.ref} picks t_edit / t_boost from the LPIPS curves of "
                        f"{resolved.base_model.ref}, which are not there ({e.message})",
                        fix=f"compute them on a GPU machine: `python -m benchmark.lpips_curves --model "
                            f"{resolved.base_model.ref} --data PATH --out {sel.curves} --prefix {sel.prefix}` "
                            "(docs/models.md, latent diffusion), or run the suite's `tiny` profile") from None
    from benchmark.hashing import sha256_file

    digests = {p.name: sha256_file(p) for p in sorted(folder.glob(f"{sel.prefix}_LPIPS_distance_*.tsv"))}
    return curves, digests


def _selected_t(sel, curves, loss) -> dict:
    """t_edit and t_boost by the authors' rule on the base model's curves, with the loss CLIP's text cosine."""
    import models

    table, digests = curves
    cos = float(loss.text_cosine)
    return {"t_edit": models.select_t_edit(table.x0t, cos, sel.edit_threshold),
            "t_boost": models.select_t_boost(table.x, sel.boost_threshold),
            "t_select": {"curves": sel.curves, "prefix": sel.prefix, "text_cosine": cos,
                         "edit_threshold": sel.edit_threshold, "boost_threshold": sel.boost_threshold,
                         "sha256": digests}}


def _check_ft_names(suite) -> None:
    """Unknown f_t names fail before any data or model is loaded (did-you-mean from the f_t registry)."""
    import models

    for name in [suite.ft.name, *(v.name for v in suite.ft_variants or [])]:
        models.FT_REGISTRY.get(name)


def _ablation_arms(attribute_plans: list, variants) -> list:
    """Without `ft_variants`, the attributes as they are; with them, one plan per attribute and arm, attribute
    first (`smiling[conv]`, `smiling[transformer-pixel]`, ...), each carrying its arm's f_t."""
    if not variants:
        return attribute_plans
    from dataclasses import replace

    from benchmark.ablation import arm_name
    from benchmark.stages.plan import FtChoice

    return [replace(p, name=arm_name(p.name, v.key), ft=FtChoice(v.key, v.name, dict(v.options), v.optimizer, v.lr))
            for p in attribute_plans for v in variants]


def _backend_weights(manifest, model_dir) -> Path:
    """A back-end's weights: the shipped file for weights in the repo, else the folder `fetch` fills."""
    from benchmark.fetch import local_path

    if isinstance(manifest.source, LocalSource) and len(manifest.files) == 1:
        return local_path(manifest, manifest.files[0])
    return model_dir(manifest)


def _engine_digests(resolved, files) -> dict[str, str]:
    """What the method's outputs depend on: the manifests of the base model and the loss's CLIP, and the sha256
    of every weight file they read (a manifest may leave a digest to the lock file, so hash the files too)."""
    out = {}
    for role, r in (("base_model", resolved.base_model), ("clip_loss_model", resolved.clip_loss_model)):
        out[role] = r.digest
        mine = sorted((f.path.name, f.actual or f.expected or "") for f in files if f.model == r.ref)
        if mine:
            from benchmark.hashing import json_digest

            out[f"{role}_files"] = json_digest(mine)
    return out


def _refuse_broken_manifests(registry) -> None:
    """A manifest that does not parse stops every run: the pinned state of the suite is then unknown."""
    if registry.errors:
        listed = "\n".join(f"  - {e.message}" for e in registry.errors[:5])
        more = f"\n  ... and {len(registry.errors) - 5} more" if len(registry.errors) > 5 else ""
        raise ManifestError(f"{len(registry.errors)} manifest(s) under {registry.root} do not load:\n{listed}{more}",
                            fix=registry.errors[0].fix or "fix or remove the file (`python run_all.py validate` "
                                                          "lists every problem)")


def _device_for(suite, requested: str, resolve_device):
    """The run's device; a suite that needs CUDA refuses the CPU (it would take days, not hours)."""
    device = resolve_device(requested)
    if suite.requires == "cuda" and device.type != "cuda":
        tiny = ", or `--profile tiny` for a CPU wiring check" if "tiny" in suite.profiles else ""
        raise DeviceError(f"suite {suite.ref} needs a CUDA GPU and this machine has none (torch sees no CUDA)",
                          fix=f"run it on a GPU machine{tiny}")
    return device


def _data_root(resolved_dataset, given: str | Path | None, flag: str) -> Path:
    """The folder the user named, or for the shared fixtures their known place."""
    if given is not None:
        return Path(given).expanduser()
    manifest = resolved_dataset.manifest
    if "in-repo" in manifest.distributions:  # shipped with the code (the synthetic world's test split)
        return REPO_ROOT
    if "fixtures" in manifest.distributions:
        return fixtures_dir() / "celebahq"
    from benchmark.errors import DataError

    raise DataError(f"no data folder given for {resolved_dataset.ref}",
                    fix=f"pass {flag} PATH (a folder, zip or LMDB of one of: {', '.join(manifest.distributions)}; "
                        "docs/data.md says where to get them)")


def _references(resolved) -> list:
    from benchmark.results import Band, ReferenceValue
    from benchmark.stages.plan import edit_key

    if resolved.paper_values is None:
        return []
    out = []
    for v in resolved.paper_values.manifest.values:
        scale = float(v.settings.get("delta_h_scale", 1.0))
        band = v.band
        out.append(ReferenceValue(
            metric=v.metric, attribute=edit_key(v.attribute, scale), column=v.column, value=v.value,
            provenance=v.provenance, variant=None if v.variant in (None, "primary") else v.variant,
            band=None if band is None or (band.lower is None and band.upper is None)
            else Band(low=band.lower, high=band.upper),
            gated=bool(band.gate) if band is not None else False,
            band_rationale=band.rationale if band is not None else "", std=v.std, n=v.n,
            settings=dict(v.settings)))
    return out
