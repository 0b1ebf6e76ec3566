"""The house: every import arrow points down (cli → the synthetic plugin and the rehearsal tool → plan → checks
→ run → outputs → inputs → core), `models/` and `metrics/` import only `benchmark.core`, the harness never imports
its synthetic plugin, and no module is part of an import circle (imports inside functions included)."""

import ast
from pathlib import Path

from benchmark.core.paths import REPO_ROOT

LAYERS = {"benchmark.cli": 8, "benchmark.synthetic": 7, "benchmark.rehearsal": 7, "benchmark.bench": 6,
          "benchmark.plan": 5, "benchmark.checks": 4, "benchmark.run": 3, "benchmark.outputs": 2, "benchmark.inputs": 1,
          "benchmark.core": 0, "benchmark": 0}
CORE_ONLY = ("models", "metrics")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in ("benchmark", "models", "metrics"):
        for path in (REPO_ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            hit = next((t for t in targets if t in modules), None)
            if hit and hit != mod:
                edges[mod].add(hit)
    return edges


def _layer(mod: str) -> str:
    return next(k for k in sorted(LAYERS, key=len, reverse=True) if mod == k or mod.startswith(k + "."))


def test_every_arrow_points_down():
    modules = _modules()
    upward = []
    for mod, targets in _imports(modules).items():
        top = mod.split(".")[0]
        for t in targets:
            if top in CORE_ONLY:
                if t.split(".")[0] != top and not t.startswith("benchmark.core") and t != "benchmark":
                    upward.append((mod, t))
            elif t.split(".")[0] == "benchmark" and LAYERS[_layer(t)] > LAYERS[_layer(mod)]:
                upward.append((mod, t))
    assert not upward, "imports that point up the house:\n" + "\n".join(f"  {a} -> {b}" for a, b in upward)


def test_metrics_never_import_models():
    edges = _imports(_modules())
    bad = [(m, t) for m, ts in edges.items() if m.startswith("metrics") for t in ts if t.startswith("models")]
    assert not bad, bad


def test_no_import_circles():
    edges = _imports(_modules())
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"
