"""Metric back-ends, registered per kind: CLIP embedders, face parsers, FID feature extractors, identity embedders.

Register your own (the synthetic world does) with `register_backend(kind, name, loader, model_id=...)`; the loader
is called as `loader(weights, device, **options)` and must return an object satisfying the kind's protocol in
`metrics.backends.protocols`. Importing this package registers the built-in back-ends.
"""

from metrics.backends import clip, features, identity, parsers  # noqa: F401  (registration side effects)
from metrics.backends.protocols import (
    ClipEmbedder,
    FaceParser,
    FactorOracle,
    FeatureExtractor,
    IdentityEmbedder,
)
from metrics.backends.registry import (
    BACKENDS,
    KINDS,
    BackendEntry,
    clear_loaded_backends,
    get_backend,
    load_backend,
    register_backend,
    resolve_weights,
)

__all__ = [
    "BACKENDS", "KINDS", "BackendEntry", "ClipEmbedder", "FaceParser", "FactorOracle", "FeatureExtractor",
    "IdentityEmbedder",
    "clear_loaded_backends", "get_backend", "load_backend", "register_backend", "resolve_weights",
]
