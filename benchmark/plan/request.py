"""What the user asked a run for (`RunRequest`), and the checks on a checkout that a run needs."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.errors import BenchError
from benchmark.plan.plugins import load_plugins


@dataclass(frozen=True)
class RunRequest:
    suite: str | None
    attributes: list[str] | None = None
    limit: int | None = None
    device: str = "auto"
    profile: str | None = None
    data: str | None = None  # where the test images are (folder, zip or LMDB); see docs/data.md
    train_data: str | None = None  # where the training images are, when they are another dataset
    out: Path | None = None  # the folder run folders go to: checked before any compute
    attribute_batching: bool | None = None  # None: the suite manifest's `attribute_batching`
    fast_path: dict | None = None  # models.FastPath fields (precision, tf32, ...); None: strict fp32
    batch_size: int | None = None  # UNet rows per batch for inversion and editing; None: from free memory


def require_packages(*names: str) -> None:
    """A run needs the method and the metrics; say which package is missing instead of a traceback."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        raise BenchError(f"this checkout lacks the package(s) {', '.join(missing)}, which a run needs",
                         fix="use a complete checkout of asyrp-bench (models/ and metrics/ beside benchmark/)")


def known_metric_names() -> list[str] | None:
    """The metric registry's names, or None in a checkout without the metrics package (names go unchecked)."""
    if importlib.util.find_spec("metrics") is None:
        return None
    import metrics

    load_plugins()  # plugin packages (the synthetic world) register their own metrics
    return metrics.METRICS.names()


def fast_path_for(request: RunRequest, device):
    """The request's `models.FastPath`, refused (naming the option) where the device cannot run it."""
    from pydantic import ValidationError

    import models

    try:
        fast = models.FastPath(**(request.fast_path or {}))
    except ValidationError as e:
        raise BenchError(f"fast-path options {request.fast_path}: {e.errors()[0]['msg']}",
                         fix="e.g. --cuda-graphs needs --compile; see `run_all.py run --help`") from None
    fast.check(device)
    return fast
