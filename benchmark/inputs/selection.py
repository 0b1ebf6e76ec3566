"""Which attributes and images of a suite a run uses: the `--attributes` subset and the `--limit` prefix.

One definition for `validate` and the planner, so both accept and refuse the same selections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from benchmark.core.errors import UnknownNameError
from benchmark.core.registry import unknown_name_message
from benchmark.inputs.manifests import parse_ref

T = TypeVar("T")


def select_attributes(available: Sequence[T], requested: Sequence[str] | None, *,
                      name: Callable[[T], str] = lambda a: a.name) -> list[T]:
    """The suite's attributes, or the requested subset in the suite's order; unknown names get did-you-mean."""
    if not requested:
        return list(available)
    names = [name(a) for a in available]
    wanted = {parse_ref(r)[0] for r in requested}
    for r in requested:
        if parse_ref(r)[0] not in names:
            raise UnknownNameError(unknown_name_message("attribute", r, names),
                                   fix="pick from the suite's attributes (see `python run_all.py ls`)")
    return [a for a in available if name(a) in wanted]


def apply_limit(items: Sequence[Any], limit: int | None) -> list[Any]:
    """The first `limit` items (a run with a limit is marked not for reporting)."""
    return list(items) if limit is None else list(items)[:limit]
