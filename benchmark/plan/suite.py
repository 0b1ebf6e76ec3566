"""Suite dispatch: from a suite name to a `SuitePlan`, and the catalogue `ls` prints.

Suites defined in code (`CODE_SUITES`) are for what cannot be a manifest yet: the demo (`run --suite demo`; a bare
`python run_all.py` runs `synthetic`). Every other suite comes from the manifest tree, through the planner. The
manifest registry is built once per command (by the CLI) and passed down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchmark.core.errors import UnknownNameError
from benchmark.core.paths import manifests_dir, manifests_dir_from_env
from benchmark.core.registry import Registry, unknown_name_message
from benchmark.inputs.manifests import ManifestRegistry, parse_ref
from benchmark.plan.demo import build_demo
from benchmark.plan.request import RunRequest

if TYPE_CHECKING:  # the plan pulls in torch; `ls` and early input checks should not wait for it
    from benchmark.run.suite_plan import SuitePlan

DEFAULT_SUITES = ("synthetic", "demo")  # the first that resolves is what a bare `run_all.py` runs

CODE_SUITES: Registry[Callable[[RunRequest], SuitePlan]] = Registry("suite")
CODE_SUITES.register("demo", build_demo)


def manifest_suite_names(registry: ManifestRegistry) -> list[str]:
    return sorted({parse_ref(ref)[0] for ref in registry.names("suite")})


def suite_names(registry: ManifestRegistry) -> list[str]:
    return sorted(set(CODE_SUITES.names()) | set(manifest_suite_names(registry)))


def default_suite(registry: ManifestRegistry) -> str:
    names = set(suite_names(registry))
    return next(n for n in DEFAULT_SUITES if n in names or n == DEFAULT_SUITES[-1])


def resolve_plan(request: RunRequest, registry: ManifestRegistry | None = None) -> SuitePlan:
    """Resolve and check everything a run needs, before any compute; raises a `BenchError` naming the fix."""
    registry = registry if registry is not None else ManifestRegistry()
    name = request.suite if request.suite is not None else default_suite(registry)
    bare = parse_ref(name, "suite")[0]
    if bare in CODE_SUITES:
        return CODE_SUITES.get(bare)(request)
    if bare not in manifest_suite_names(registry):
        broken = [e for e in registry.errors if bare in str(e)]
        if broken:  # the suite's own file exists but does not load: say why, not "unknown suite"
            raise broken[0]
        raise UnknownNameError(unknown_name_message("suite", name, suite_names(registry)), fix=_suites_fix(registry))
    from benchmark.plan.planner import plan_from_manifests

    return plan_from_manifests(name, request, registry=registry)


def _suites_fix(registry: ManifestRegistry) -> str:
    """Point at ASYRP_MANIFESTS when it is what hides the suites."""
    override = manifests_dir_from_env()
    if override is not None and not registry.names("suite"):
        return (f"ASYRP_MANIFESTS={override} holds no suite manifests ({manifests_dir()}/suites/ is empty or "
                "missing): point it at a manifest tree, or unset it to use the repository's")
    return "run `python run_all.py ls` to see the suites"


def catalogue(registry: ManifestRegistry) -> dict[str, list[dict[str, Any]]]:
    """What `ls` prints: suites, attributes, metrics and models, each with its version."""
    out: dict[str, list[dict[str, Any]]] = {"suites": [{"name": n, "description": "defined in code"}
                                                       for n in CODE_SUITES.names()]}
    kinds = {"suites": "suite", "attributes": "attribute", "models": "model", "datasets": "dataset"}
    for label, kind in kinds.items():
        for lm in registry.all(kind):
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
