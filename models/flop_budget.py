"""A suite's total FLOPs from per-step costs (`models.units.count_gflops` of `component_units`) and its step counts.

    python -m models.flop_budget        # paper-table on the CelebA-HQ DDPM + ViT-B/16, counted on the meta device
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models.schedule import inversion_steps, reverse_steps, training_steps


@dataclass(frozen=True)
class StepCosts:
    """GFLOP per image of the pieces of a step (see `models.units.component_units`)."""

    encode: float
    decode: float
    decode_input_grad: float
    clip_image_fwd_bwd: float

    @property
    def forward(self) -> float:
        return self.encode + self.decode

    @property
    def train(self) -> float:
        return self.forward + self.decode_input_grad + self.clip_image_fwd_bwd


def suite_pflops(costs: StepCosts, t_edits: Mapping[str, int], *, n_train: int, n_test: int, n_scales: int,
                 n_steps: int = 40, t0: int = 999, loop: str = "batched") -> dict[str, float]:
    """PFLOP of invert / train / edit for one suite. `loop`: "batched" (attribute-batched, reference on the fly),
    "cached" (one attribute at a time, reference cached at inversion), "official" (reference re-rolled)."""
    steps = {a: training_steps(n_steps, t, t0) for a, t in t_edits.items()}
    per_image = {a: len(s) for a, s in steps.items()}
    n_inv = len(inversion_steps(n_steps, t0))
    invert = n_train * n_inv * costs.forward + n_test * (n_inv + n_steps) * costs.forward  # test: + reconstruction
    if loop == "cached":
        invert += n_train * n_steps * costs.forward  # the reverse pass that caches P_t^orig
        train = n_train * sum(per_image.values()) * costs.train
    elif loop == "official":
        train = n_train * sum(per_image.values()) * (costs.train + costs.forward)
    else:
        train = n_train * _batched_image(costs, steps, n_steps, t0)
    edit = 0.0
    for t_edit in t_edits.values():
        n_edit = sum(1 for t, _ in reverse_steps(n_steps, t0) if t >= t_edit)
        edit += n_scales * n_test * (n_edit * (costs.encode + 2 * costs.decode) + (n_steps - n_edit) * costs.forward)
    out = {"invert": invert / 1e6, "train": train / 1e6, "edit": edit / 1e6}
    out["total"] = sum(out.values())
    return out


def _batched_image(costs: StepCosts, steps, n_steps: int, t0: int) -> float:
    """One training image in the attribute-batched loop: K_t edited rows + the reference row per step; at t0 the
    encode and plain decode of x_T are shared by every attribute and the reference."""
    union = training_steps(n_steps, min(t for s in steps.values() for t, _ in s), t0)
    total = 0.0
    for i, (t, _) in enumerate(union):
        k = sum(1 for s in steps.values() if any(t == u for u, _ in s))
        if i == 0:
            total += costs.forward + k * (costs.decode_input_grad + costs.clip_image_fwd_bwd)
        else:
            total += k * costs.train + costs.forward
    return total


def main() -> None:
    from models import units

    model, loss, _ = units.meta_celebahq()
    costs = StepCosts(**{k: units.count_gflops(u) for k, u in units.component_units(model, loss).items()})
    print(costs)
    t_edits = {"smiling": 513, "sad": 513, "tanned": 512, "pixar": 446, "neanderthal": 490}  # attribute manifests
    for loop in ("batched", "cached", "official"):
        p = suite_pflops(costs, t_edits, n_train=1000, n_test=100, n_scales=2, loop=loop)
        print(f"{loop}: " + ", ".join(f"{k} {v:.1f} PFLOP" for k, v in p.items())
              + f"; 10 minutes need {p['total'] * 1e3 / 600:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
