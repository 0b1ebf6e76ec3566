"""How fast an f_t arm trains, from its loss history (`training.json`): "steps to reach a given loss".

Definitions (the same curves the report's loss-curve figure draws):

- a *rollout* is one batch of training images taken from t0 down to t_edit (the timestep restarts at each); its
  loss is the mean training loss of its optimiser steps;
- the *running mean* at rollout k is the mean rollout loss over the last `window` rollouts (10, as in the figure;
  fewer when the history is shorter, and over rollouts 1..k before the window fills);
- the *target* of an attribute is the reference arm's (`conv`, the authors' block trained from scratch) final
  running mean;
- an arm's *steps to the target* is the first optimiser step (1-based, counted at the end of a rollout) whose
  running mean is at or below the target, with the rollout it ends; None when the arm never gets there.

So the reference arm reaches its own target by its last step at the latest; an arm that starts from another
attribute's f_t (transfer) shows whether it gets to the same loss sooner. Kept free of torch and matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark.outputs.ablation import split_arm

WINDOW = 10
REFERENCE_ARM = "conv"


def rollout_means(t: Sequence[int], loss: Sequence[float]) -> np.ndarray:
    """Mean loss per training rollout (one batch of images from t0 down to t_edit; t restarts at each)."""
    starts, _ = _rollouts(t)
    loss = np.asarray(loss, dtype=float)
    return np.array([loss[a:b].mean() for a, b in zip(starts, np.r_[starts[1:], len(loss)], strict=True)])


def _rollouts(t: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(first step index of each rollout, step count at the end of each rollout)."""
    t = np.asarray(t)
    starts = np.flatnonzero(np.r_[True, t[1:] >= t[:-1]])
    return starts, np.r_[starts[1:], len(t)]


def running_means(means: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Mean of the last `window` rollout losses at each rollout (of all so far while fewer)."""
    c = np.cumsum(np.r_[0.0, means])
    k = np.arange(1, len(means) + 1)
    lo = np.maximum(k - window, 0)
    return (c[k] - c[lo]) / (k - lo)


def steps_to_loss(t: Sequence[int], loss: Sequence[float], target: float, window: int = WINDOW,
                  ) -> tuple[int | None, int | None]:
    """(optimiser steps, rollouts) until the running mean first reaches `target`; (None, None) if never."""
    run = running_means(rollout_means(t, loss), window)
    hit = np.flatnonzero(run <= target)
    if not len(hit):
        return None, None
    _, ends = _rollouts(t)
    return int(ends[hit[0]]), int(hit[0] + 1)


def speed_rows(histories: Mapping[str, Mapping[str, Any]], *, reference: str = REFERENCE_ARM,
               window: int = WINDOW) -> list[dict[str, Any]]:
    """One row per trained arm of an attribute that has a `reference` arm: its first and final running-mean loss,
    the reference's final loss (the target) and the steps and rollouts to reach it."""
    by_attribute: dict[str, dict[str, Mapping[str, Any]]] = {}
    for key, h in histories.items():
        attribute, arm = split_arm(key)
        if arm is not None:
            by_attribute.setdefault(attribute, {})[arm] = h
    rows = []
    for attribute, arms in by_attribute.items():
        if reference not in arms or len(arms) < 2:
            continue
        ref = arms[reference]
        w = min(window, len(rollout_means(ref["t"], ref["loss"])))
        target = float(running_means(rollout_means(ref["t"], ref["loss"]), w)[-1])
        for arm, h in arms.items():
            run = running_means(rollout_means(h["t"], h["loss"]), w)
            steps, rollouts = steps_to_loss(h["t"], h["loss"], target, w)
            rows.append({"attribute": attribute, "arm": arm, "steps": len(h["loss"]), "window": w,
                         "first_loss": float(run[0]), "final_loss": float(run[-1]), "target": target,
                         "steps_to_target": steps, "rollouts_to_target": rollouts,
                         "init_from": (h.get("init_from") or {}).get("label")})
    return rows
