"""A suite's `known_answers:` block → one extra gate (`KnownAnswerGates`) with its factor measure loaded.

The synthetic world measures with its factor oracle (a metric back-end of kind `factor-oracle`, or a model
loader); real faces with a CLIP projection on every suite attribute's text direction (docs/manifests.md).
"""

from __future__ import annotations

from benchmark.core.hashing import json_digest, sha256_file
from benchmark.plan.loaders import LOADERS, backend_weights


def known_answer_gates(resolved, device) -> list:
    spec = resolved.suite.known_answers
    if spec is None:
        return []
    from benchmark.checks.gate import KnownAnswerGates
    from benchmark.checks.measure import factor_measure
    from metrics.backends import load_backend

    if spec.clip_projection is not None:
        return [KnownAnswerGates(spec, clip_projection_measure(resolved, device))]
    m = resolved.known_answer_measure
    manifest = m.manifest
    if manifest.loader == "metric-backend":  # the oracle is a metric back-end of kind factor-oracle
        loaded = load_backend("factor-oracle", manifest.loader_args.get("backend", manifest.name),
                              weights=backend_weights(manifest), device=device)
    else:
        loaded = LOADERS.get(manifest.loader)(manifest, device=device)
    return [KnownAnswerGates(spec, factor_measure(loaded, digest=m.digest))]


def clip_projection_measure(resolved, device):
    """The real world's factor measure: a CLIP back-end projecting images on every suite attribute's text
    direction. Its factors are all the suite's attributes (not only those `--attributes` picks), so its digest,
    and the cache units keyed on it, do not depend on the selection."""
    from benchmark.checks.measure import CLAIM_COLUMN, CLIP_PROVENANCE, factor_measure
    from benchmark.inputs.lock import LockFile
    from benchmark.inputs.pins import backend_pin
    from metrics.backends import get_backend, load_backend
    from metrics.clip_projection import ClipProjectionFactors

    options = resolved.suite.known_answers.clip_projection
    m = resolved.known_answer_measure
    manifest = m.manifest
    name = manifest.loader_args.get("backend", manifest.name)
    pin = backend_pin(manifest, get_backend("clip", name).weights_file, LockFile.load()) if manifest.files else None
    embedder = load_backend("clip", name, weights=backend_weights(manifest) if manifest.files else None,
                            expected_sha256=pin, device=device, preprocess=options.image_preprocess)
    prompts = {r.manifest.name: (r.manifest.source_prompt, r.manifest.target_prompt)
               for r in resolved.attributes.values()}
    digest = json_digest({"clip": m.digest, "prompts": prompts, "options": options.model_dump(),
                          "code": _clip_projection_code()})
    return factor_measure(ClipProjectionFactors(embedder, prompts, templates=options.templates), digest=digest,
                          column=CLAIM_COLUMN, provenance=CLIP_PROVENANCE, label="CLIP projection")


def _clip_projection_code() -> str:
    from metrics import clip_projection, functional, sdir

    return json_digest([sha256_file(mod.__file__) for mod in (clip_projection, functional, sdir)])
