"""From a suite name to a `SuitePlan`: the one place that turns manifests (or a suite defined in code) into the
objects the stages run on.

Suites defined in code (`CODE_SUITES`) are for what cannot be a manifest yet: the demo (`run --suite demo`; a bare
`python run_all.py` runs `synthetic`). Every other suite comes from `manifests/suites/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmark.core.errors import UnknownNameError
from benchmark.core.registry import Registry, unknown_name_message

if TYPE_CHECKING:  # the plan pulls in torch; `ls` and early input checks should not wait for it
    from benchmark.run.suite_plan import SuitePlan

DEFAULT_SUITES = ("synthetic", "demo")  # the first that resolves is what a bare `run_all.py` runs


@dataclass(frozen=True)
class RunRequest:
    suite: str | None
    attributes: list[str] | None = None
    limit: int | None = None
    device: str = "auto"
    profile: str | None = None
    data: str | None = None  # where the test images are (folder, zip or LMDB); see docs/data.md
    train_data: str | None = None  # where the training images are, when they are another dataset


CODE_SUITES: Registry[Callable[[RunRequest], SuitePlan]] = Registry("suite")


def _load_code_suites() -> None:
    import benchmark.plan.demo  # noqa: F401  (registers `demo`)


def _registry():
    """The manifest registry, or None in a checkout without the manifests package."""
    try:
        from benchmark.inputs.manifests import ManifestRegistry
    except ImportError:
        return None
    return ManifestRegistry()


def _manifest_suite_names() -> list[str]:
    registry = _registry()
    if registry is None:
        return []
    from benchmark.inputs.manifests import parse_ref

    return sorted({parse_ref(ref)[0] for ref in registry.names("suite")})


def suite_names() -> list[str]:
    _load_code_suites()
    return sorted(set(CODE_SUITES.names()) | set(_manifest_suite_names()))


def default_suite() -> str:
    names = set(suite_names())
    return next(n for n in DEFAULT_SUITES if n in names or n == DEFAULT_SUITES[-1])


def resolve_plan(request: RunRequest) -> SuitePlan:
    """Resolve and check everything a run needs, before any compute; raises a `BenchError` naming the fix."""
    _load_code_suites()
    name = request.suite or default_suite()
    bare = name.split("@")[0]
    if bare in CODE_SUITES:
        return CODE_SUITES.get(bare)(request)
    if bare not in _manifest_suite_names():
        registry = _registry()
        broken = [e for e in (registry.errors if registry else []) if bare in str(e)]
        if broken:  # the suite's own file exists but does not load: say why, not "unknown suite"
            raise broken[0]
        raise UnknownNameError(unknown_name_message("suite", name, suite_names()),
                               fix="run `python run_all.py ls` to see the suites")
    from benchmark.plan.loaders import plan_from_manifests

    return plan_from_manifests(name, request)


def catalogue() -> dict[str, list[dict[str, Any]]]:
    """What `ls` prints: suites, attributes, metrics and models, each with its version."""
    _load_code_suites()
    out: dict[str, list[dict[str, Any]]] = {"suites": [{"name": n, "description": "defined in code"}
                                                       for n in CODE_SUITES.names()]}
    registry = _registry()
    kinds = {"suites": "suite", "attributes": "attribute", "models": "model", "datasets": "dataset"}
    for label, kind in kinds.items():
        for lm in ([] if registry is None else registry.all(kind)):
            m = lm.manifest
            out.setdefault(label, []).append({"name": m.ref, "description": " ".join(m.description.split())[:100]})
    try:
        import metrics
    except ImportError:
        metrics = None
    if metrics is not None:
        out["metrics"] = [{"name": m["name"], "description": f"{'↑' if m['direction'] == 'higher' else '↓'} "
                           f"{m['description']}"} for m in metrics.list_metrics()]
    return {k: sorted(v, key=lambda e: e["name"]) for k, v in out.items()}


def known_metric_names() -> list[str] | None:
    """The metric registry's names, or None in a checkout without the metrics package (names go unchecked)."""
    try:
        import metrics
    except ImportError:
        return None
    from benchmark.plan.loaders import load_plugins

    load_plugins()  # plugin packages (the synthetic world) register their own metrics
    return metrics.METRICS.names()


def require_packages(*names: str) -> None:
    """A run needs the method and the metrics; say which package is missing instead of a traceback."""
    import importlib.util

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        from benchmark.core.errors import BenchError

        raise BenchError(f"this checkout lacks the package(s) {', '.join(missing)}, which a run needs",
                         fix="use a complete checkout of asyrp-bench (models/ and metrics/ beside benchmark/)")


def select_attributes(available: list[Any], requested: list[str] | None, *, name=lambda a: a.name) -> list[Any]:
    """The suite's attributes, or the requested subset in the suite's order; unknown names get did-you-mean."""
    if not requested:
        return list(available)
    names = [name(a) for a in available]
    for r in requested:
        if r.split("@")[0] not in names:
            raise UnknownNameError(unknown_name_message("attribute", r, names),
                                   fix="pick from the suite's attributes (see `python run_all.py ls`)")
    wanted = {r.split("@")[0] for r in requested}
    return [a for a in available if name(a) in wanted]


def apply_limit(items: list[Any], limit: int | None) -> list[Any]:
    """The first `limit` items (a run with a limit is marked not for reporting)."""
    return list(items) if limit is None else list(items)[:limit]
