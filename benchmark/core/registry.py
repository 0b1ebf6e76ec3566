"""A small named registry with validation on registration and "did you mean" on lookup.

Used for f_t networks, metrics, metric back-ends, model loaders and suites. Shape after torch-fidelity's
`register_*` checks and lm-evaluation-harness's lookup message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from benchmark.core.errors import BenchError, UnknownNameError

T = TypeVar("T")

_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-@:]*$")


def suggest(name: str, choices: list[str], n: int = 3) -> list[str]:
    """Close matches for `name`, compared case-insensitively and also without the `@version` suffix."""
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    bare = {c.lower().split("@")[0]: c for c in choices}
    hits += difflib.get_close_matches(name.lower().split("@")[0], list(bare), n=n, cutoff=0.5)
    out: list[str] = []
    for h in hits:
        original = lowered.get(h) or bare.get(h)
        if original and original not in out:
            out.append(original)
    return out[:n]


def unknown_name_message(kind: str, name: str, choices: list[str]) -> str:
    hint = suggest(name, choices)
    msg = f"Unknown {kind} {name!r}."
    if hint:
        msg += " Did you mean: " + ", ".join(hint) + "?"
    return msg + " Available: " + (", ".join(sorted(choices)) or "(none)")


class Registry(Generic[T]):
    """name -> object. Names are unique, have no whitespace or path separators, and may carry `@version`."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, replace: bool = False):
        """`reg.register("x", obj)`, or as a decorator: `@reg.register("x")`."""
        if not isinstance(name, str) or not _VALID_NAME.match(name):
            raise ValueError(f"Invalid {self.kind} name {name!r}: use letters, digits and . _ - @ : only")
        if obj is None:
            def deco(o: T) -> T:
                self.register(name, o, replace=replace)
                return o
            return deco
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, list(self._items))) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())


def require_choice(kind: str, value: str, choices: list[str]) -> str:
    """Validate a string option against a fixed set, with the same did-you-mean message."""
    if value not in choices:
        raise BenchError(unknown_name_message(kind, value, choices))
    return value


LazyFactory = Callable[..., T]
