"""A suite's wall time and FLOPs from its own unit counts and the measured units.

Counts (`suite_counts`) come from the resolved manifests: test and training images, the step grids (so each
attribute's t_edit gives its training and editing steps), the Δh scales, the metrics and the h-space property
experiments of `known_answers` (their generations). Each count is multiplied by the seconds (and GFLOP) per item
of the unit that does that work, as the harness runs it by default: attribute-batched training with the
reference on the fly, training images inverted without reconstruction, test images inverted and reconstructed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from models.schedule import inversion_steps, reverse_steps, training_steps


@dataclass
class Counts:
    """Image-steps of each kind in one run of the suite (from an empty cache)."""

    invert_steps: int  # UNet forwards of inversion and reconstruction
    train_steps: int  # attribute-image-steps of training (every attribute, every epoch)
    global_train_steps: int  # image-steps of the extra global Δh training of the consistency checks
    edit_steps: int  # Asyrp steps with Δh (t ≥ t_edit), over attributes × Δh scales × test images
    plain_steps: int  # plain DDIM steps of editing (t < t_edit)
    property_edit_steps: int  # the same for the generations of the h-space property experiments
    property_plain_steps: int
    metric_images: dict[str, int] = field(default_factory=dict)  # metric key -> back-end images
    detail: dict[str, Any] = field(default_factory=dict)


def _edit_split(n_steps: int, t0: int, t_edit: int) -> tuple[int, int]:
    """(steps with Δh, plain steps) of one generation."""
    edited = sum(1 for t, _ in reverse_steps(n_steps, t0) if t >= t_edit)
    return edited, n_steps - edited


def suite_counts(resolved) -> Counts:
    suite = resolved.suite
    steps = suite.steps
    n_test = resolved.dataset.manifest.count
    trained = {n: r.manifest for n, r in resolved.attributes.items() if n not in resolved.ft_checkpoints}
    arms = len(suite.ft_variants or [None])
    n_train = min(suite.train.n_images, resolved.train_dataset.manifest.count) if trained else 0
    epochs = suite.train.epochs if trained else 0
    per_image = {n: len(training_steps(steps.n_train, a.t_edit, steps.t0)) for n, a in trained.items()}
    n_inv = len(inversion_steps(steps.n_inv, steps.t0))
    t_edit = {n: r.manifest.t_edit for n, r in resolved.attributes.items()}
    scales = len(suite.edit.delta_h_scale)
    edit, plain = 0, 0
    for n in resolved.attributes:
        e, p = _edit_split(steps.n_test, steps.t0, t_edit[n])
        edit, plain = edit + e * n_test * scales * arms, plain + p * n_test * scales * arms
    props = property_generations(suite.known_answers, t_edit, n_test) if suite.known_answers else {}
    prop_edit, prop_plain = 0, 0
    for attribute, (edited_gens, plain_gens) in props.get("generations", {}).items():
        e, p = _edit_split(steps.n_test, steps.t0, t_edit[attribute])
        prop_edit += edited_gens * e
        prop_plain += edited_gens * p + plain_gens * steps.n_test
    global_steps = sum(n_train * epochs * per_image[a] for a in props.get("global", []) if a in per_image)
    edit_keys = len(resolved.attributes) * scales * arms
    metric_images = {}
    for m in suite.metrics:
        # FID/KID keep the reference set's features (content-hash cache): only the edits are new per key
        cached_reference = m.name.split("@")[0] in ("fid", "kid")
        metric_images[m.key] = edit_keys * n_test + (n_test if cached_reference else edit_keys * n_test)
    return Counts(
        invert_steps=n_test * (n_inv + steps.n_inv) + n_train * n_inv,
        train_steps=n_train * epochs * sum(per_image.values()) * arms, global_train_steps=global_steps,
        edit_steps=edit, plain_steps=plain, property_edit_steps=prop_edit, property_plain_steps=prop_plain,
        metric_images=metric_images,
        detail={"n_test": n_test, "n_train": n_train, "epochs": epochs, "steps": asdict(steps),
                "attributes": {n: {"t_edit": t_edit[n], "training_steps_per_image": per_image.get(n),
                                   "edit_steps_per_generation": _edit_split(steps.n_test, steps.t0, t_edit[n])[0]}
                               for n in resolved.attributes},
                "delta_h_scales": list(suite.edit.delta_h_scale), "ft_arms": arms, "properties": props})


def property_generations(ka, t_edit: Mapping[str, int], n_test: int) -> dict[str, Any]:
    """Generations (full reverse passes over `n_images` or the figure images) of the h-space property units
    `benchmark.checks.context` computes: per attribute (edited, plain), and the attributes whose consistency
    check trains a global Δh as well."""
    n, k = min(ka.n_images, n_test), min(ka.figure_images, ka.n_images, n_test)
    gens: dict[str, list[int]] = {}

    def add(attribute: str, edited: int, plain: int = 0):
        g = gens.setdefault(attribute, [0, 0])
        g[0], g[1] = g[0] + edited, g[1] + plain

    checks = {c.check for c in ka.checks}
    first = next(iter(t_edit))
    if "zero_delta_exact" in checks:
        add(first, 2, 2)  # two images: Δh = 0 through Asyrp, and plain DDIM
    linear = {c.attribute for c in ka.checks if c.check.startswith("linearity") and c.attribute in t_edit}
    for a in linear:
        add(a, len(ka.linearity_scales) * n)
    consistent = {c.attribute for c in ka.checks if c.check in ("timestep_consistency", "homogeneity")
                  and c.attribute in t_edit}
    global_ft = sorted({c.attribute for c in ka.checks if c.check == "timestep_consistency"
                        and c.options.get("variant") == "global" and c.attribute in t_edit})
    for a in consistent:
        add(a, (3 + (a in global_ft)) * n, n)  # Δh_t, time mean, image mean (+ global); and plain
    if ka.combination and all(a in t_edit for a in ka.combination):
        coefficients = len(set(ka.combination_coefficients) | {0.0, 1.0})
        add(ka.combination[0], 4 * n + coefficients**2 * min(2, n))
    sweep = [c.attribute for c in ka.checks if c.check == "target_shift" and c.attribute in t_edit][:1]
    if ka.t_edit_sweep and sweep:
        add(sweep[0], len(set(ka.t_edit_sweep)) * k, k)
    return {"generations": {a: tuple(g) for a, g in gens.items()}, "global": global_ft}


def project(counts: Counts, units: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Seconds and PFLOP per stage, with the measured seconds and GFLOP per item of each unit."""
    work = {
        "invert": [("invert_step", counts.invert_steps)],
        "train": [("train_step_batched", counts.train_steps)],
        "edit": [("edit_step", counts.edit_steps), ("invert_step", counts.plain_steps)],
        # the global Δh of the consistency check trains alone: K = 1, reference on the fly (the official loop)
        "properties": [("edit_step", counts.property_edit_steps), ("invert_step", counts.property_plain_steps),
                       ("train_step_official", counts.global_train_steps)],
        "measure": [(f"metric:{k}", n) for k, n in counts.metric_images.items()],
    }
    missing = sorted({u for w in work.values() for u, n in w if n and u not in units})
    if missing:
        return {"seconds": None, "missing_units": missing}
    seconds = {s: sum(n * units[u]["seconds"] for u, n in w if n) for s, w in work.items()}
    pflop = {s: sum(n * units[u]["gflop"] for u, n in w if n) / 1e6 for s, w in work.items()}
    train = counts.train_steps
    alternatives = {  # training the same attribute-image-steps in the other loops (seconds of the train stage)
        "train_official_loop": train * units["train_step_official"]["seconds"] if train else 0.0,
        "train_project_loop_cached_at_unit_batch": train * units["train_step"]["seconds"] if train else 0.0,
    }
    return {"seconds": sum(seconds.values()), "stage_seconds": seconds, "pflop": sum(pflop.values()),
            "stage_pflop": pflop, "train_alternatives_seconds": alternatives, "missing_units": []}
