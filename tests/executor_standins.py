"""Stand-in plans for the executor tests: recipes a worker process can import (tests/ is on its PYTHONPATH) and
rebuild, and an engine whose worker dies in the middle of a unit, once, the way a lost node does."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import harness_standins as standins

SHIFTS = {"smiling": 25.2 / 127.5, "pixar": 50.2 / 127.5}


class DyingEngine(standins.ShiftEngine):
    """Training attribute A sends `signals[A]` to its own process the first time (a marker file remembers it):
    SIGKILL is a lost worker, SIGTERM a preemption."""

    def __init__(self, log_file: str, marker_dir: str, signals: dict[str, int]):
        super().__init__(log_file=log_file)
        self.marker_dir, self.signals = Path(marker_dir), signals

    def train(self, attribute, x0, inversions):
        sig = self.signals.get(attribute.name)
        marker = self.marker_dir / f"died-{attribute.name}"
        if sig is not None and not marker.exists():
            marker.write_text(str(os.getpid()))
            self._log(f"dying {attribute.name}")
            os.kill(os.getpid(), sig)
        return super().train(attribute, x0, inversions)


@dataclass(frozen=True)
class Recipe:
    """Rebuilds the same stand-in plan in any process (what `benchmark.plan.recipe.PlanRecipe` is for a suite)."""

    log_file: str
    marker_dir: str | None = None
    signals: tuple[tuple[str, int], ...] = ()
    sleep: float = 0.0

    def __call__(self):
        if self.marker_dir is not None:
            engine = DyingEngine(self.log_file, self.marker_dir, dict(self.signals))
        else:
            engine = standins.ShiftEngine(sleep=self.sleep, log_file=self.log_file)
        return standins.plan(shifts=SHIFTS, engine=engine)


def computed(log_file: str | Path) -> list[str]:
    """The units the engine computed, as "stage [attribute]" lines (the pid dropped)."""
    path = Path(log_file)
    return [" ".join(line.split()[:-1]) for line in path.read_text().splitlines()] if path.exists() else []


SIGKILL, SIGTERM = int(signal.SIGKILL), int(signal.SIGTERM)
