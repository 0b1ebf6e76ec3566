"""How a worker rebuilds the driver's plan: the user's request, made independent of where the worker runs.

A job carries this recipe instead of the plan (no model, tensor or image is pickled): the worker resolves it with
the same manifests, data and seeds, which is cheap next to a unit and deterministic, so it meets the same units
under the same keys. Paths are made absolute (a worker may start elsewhere), the output folder is left out (only
the driver writes the run folder), and the device is the driver's device type (`auto` could resolve otherwise on a
worker's node; `cuda:N` becomes `cuda`, since each local worker sees one device, as number 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from benchmark.plan.request import RunRequest


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


@dataclass(frozen=True)
class PlanRecipe:
    request: RunRequest

    @classmethod
    def for_workers(cls, request: RunRequest, device: str) -> PlanRecipe:
        """`device`: the driver's resolved device (`auto` could pick another type on a worker's node)."""
        device = device.split(":")[0]
        return cls(dataclasses.replace(request, out=None, device=device, data=_absolute(request.data),
                                       train_data=_absolute(request.train_data)))

    def __call__(self):
        from benchmark.inputs.manifests import ManifestRegistry
        from benchmark.plan.suite import resolve_plan

        return resolve_plan(self.request, ManifestRegistry())
