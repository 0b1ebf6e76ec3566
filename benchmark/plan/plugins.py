"""Plugin packages: packages that bring their own model loaders and metric back-ends and register them when
imported (the synthetic world: its DDPM, CLIP, segmenter and oracle). The planner imports them before resolving
any suite."""

from __future__ import annotations

import importlib
import importlib.util

PLUGIN_PACKAGES = ("benchmark.synthetic",)


def load_plugins() -> None:
    for name in PLUGIN_PACKAGES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
