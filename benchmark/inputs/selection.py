"""Which attributes and images of a suite a run uses: the `--attributes` subset and the `--limit` prefix.

One definition for `validate` and the planner, so both accept and refuse the same selections. Without
`--attributes` a run edits the suite's `default_attributes` when it names some (e.g. official-checkpoints@2: the
paper table's five of its eighteen released f_t), else every attribute; `--attributes all` edits every one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from benchmark.core.errors import BenchError, UnknownNameError
from benchmark.core.registry import unknown_name_message
from benchmark.inputs.manifests import ResolvedSuite, parse_ref

T = TypeVar("T")
ALL = "all"  # `--attributes all`: every attribute of the suite, not only its default selection


def select_attributes(available: Sequence[T], requested: Sequence[str] | None, *,
                      name: Callable[[T], str] = lambda a: a.name, default: Sequence[str] | None = None,
                      profile: str | None = None, without_profile: Sequence[str] = ()) -> list[T]:
    """The requested subset in the suite's order; without a request, the `default` names when given, else
    everything; `all` is everything. Unknown names get did-you-mean, and a name the suite has but the `profile`
    drops (`without_profile`: the suite's names without it) says so."""
    if requested and list(requested) == [ALL]:
        return list(available)
    if not requested:
        if not default:
            return list(available)
        requested = list(default)
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
                               fix="pick from the suite's attributes (see `python run_all.py ls`), or `all`")
    return [a for a in available if name(a) in wanted]


def selected_names(resolved: ResolvedSuite, requested: Sequence[str] | None, *, profile: str | None = None,
                   without_profile: Sequence[str] = ()) -> list[str]:
    """The names of the attributes a run of `resolved` edits (see `select_attributes`)."""
    return select_attributes(list(resolved.attributes), requested, name=lambda a: a,
                             default=resolved.suite.default_attributes, profile=profile,
                             without_profile=without_profile)


def narrow_to_selection(resolved: ResolvedSuite, requested: Sequence[str] | None) -> ResolvedSuite:
    """The suite as far as the selected attributes need it: only their released f_t, and the LPIPS tables only
    when one of them leaves t_edit to the rule (`t_select.apply: unset`). So a run of the default five of
    official-checkpoints@2 needs exactly the weights official-checkpoints@1 needed."""
    names = set(selected_names(resolved, requested))
    tables = resolved.t_select_tables
    sel = resolved.suite.t_select
    if sel is not None and sel.apply == "unset" and not any(
            r.manifest.t_edit is None for n, r in resolved.attributes.items() if n in names):
        tables = None
    return replace(resolved, ft_checkpoints={k: v for k, v in resolved.ft_checkpoints.items() if k in names},
                   t_select_tables=tables)


def apply_limit(items: Sequence[Any], limit: int | None) -> list[Any]:
    """The first `limit` items (a run with a limit is marked not for reporting)."""
    return list(items) if limit is None else list(items)[:limit]


def effective_limit(limit: int | None, n_images: int) -> int | None:
    """`--limit` as it acts on `n_images`: None (a complete run, not marked not-for-reporting) when it keeps all."""
    return None if limit is None or limit >= n_images else limit
