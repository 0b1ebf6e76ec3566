"""Which attributes and images of a suite a run uses: the `--attributes` subset and the `--limit` prefix.

One definition for `validate` and the planner, so both accept and refuse the same selections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from benchmark.core.errors import BenchError, UnknownNameError
from benchmark.core.registry import unknown_name_message
from benchmark.inputs.manifests import parse_ref

T = TypeVar("T")


def select_attributes(available: Sequence[T], requested: Sequence[str] | None, *,
                      name: Callable[[T], str] = lambda a: a.name, profile: str | None = None,
                      without_profile: Sequence[str] = ()) -> list[T]:
    """The suite's attributes, or the requested subset in the suite's order; unknown names get did-you-mean, and a
    name the suite has but the `profile` drops (`without_profile`: the suite's names without it) says so."""
    if not requested:
        return list(available)
    names = [name(a) for a in available]
    wanted = {parse_ref(r)[0] for r in requested}
    for r in requested:
        if parse_ref(r)[0] in names:
            continue
        if profile is not None and parse_ref(r)[0] in without_profile:
            raise BenchError(f"attribute {r!r} is in the suite, but not in its profile {profile!r} (which edits: "
                             f"{', '.join(names)})",
                             fix=f"leave --profile {profile} out to edit {r}, or pick from: {' '.join(names)}")
        raise UnknownNameError(unknown_name_message("attribute", r, names),
                               fix="pick from the suite's attributes (see `python run_all.py ls`)")
    return [a for a in available if name(a) in wanted]


def apply_limit(items: Sequence[Any], limit: int | None) -> list[Any]:
    """The first `limit` items (a run with a limit is marked not for reporting)."""
    return list(items) if limit is None else list(items)[:limit]


def effective_limit(limit: int | None, n_images: int) -> int | None:
    """`--limit` as it acts on `n_images`: None (a complete run, not marked not-for-reporting) when it keeps all."""
    return None if limit is None or limit >= n_images else limit
