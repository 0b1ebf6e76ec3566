"""Reference values (the paper's, the reproduction study's, a baseline's) and the gates they imply.

A reference value is one cell a run is compared with: metric key, attribute, column ("paper", "reproduction-study",
...), the value (None = "not reported", never 0), its provenance, and optionally an acceptance band and the metric
variant it is stated in (e.g. S_dir's `one_minus_cos`). Every reference with a gating band becomes a gate: this
run's value of that variant must lie in the band. A band with `gated=False` is shown in the tables only. The
gate carries the reference's kind: a known answer (it can fail a run) or a claim (it holds or does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from benchmark.outputs.results import Gate, MetricValue, ReferenceValue

__all__ = ["ReferenceValue", "evaluate_gates"]


def evaluate_gates(metrics: Mapping[str, Mapping[str, MetricValue]],
                   references: Iterable[ReferenceValue]) -> list[Gate]:
    """One gate per banded reference whose attribute and metric this run measured."""
    gates = []
    for ref in references:
        if ref.band is None or not ref.gated or ref.attribute not in metrics or ref.metric not in metrics[ref.attribute]:
            continue
        value = metrics[ref.attribute][ref.metric].value(ref.variant).mean
        gates.append(Gate(name=ref.gate_name(), kind=ref.kind, value=value, band=ref.band,
                          passed=ref.band.contains(value)))
    return gates
