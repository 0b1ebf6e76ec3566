"""Units of work that one computation produces together (several attributes trained in one pass, several edits
in one batch, several inversion chunks in one UNet batch), each still cached under its own key.

A stage first asks the runner which of its units are missing (`Runner.is_cached`), groups the missing ones, and
hands each unit a `SharedCompute.share(name)` as its compute function. The first unit of a group that the runner
computes runs the group's computation once, for every member; the others take their share. A unit that turns out
to be cached after all (written meanwhile by a concurrent run) simply leaves its share unused.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

from benchmark.run.cache import StageOutput


class SharedCompute:
    """`compute(members) -> {member: StageOutput}` for the members of one group, run at most once."""

    def __init__(self, members: Sequence[Hashable], compute: Callable[[list], Mapping[Hashable, StageOutput]]):
        self.members = list(members)
        self._compute = compute
        self._outputs: dict[Hashable, StageOutput] | None = None

    def share(self, member: Hashable) -> Callable[[], StageOutput]:
        if member not in self.members:
            raise KeyError(f"{member!r} is not a member of this shared computation")

        def compute() -> StageOutput:
            if self._outputs is None:
                outputs = dict(self._compute(list(self.members)))
                missing = [m for m in self.members if m not in outputs]
                if missing:
                    raise RuntimeError(f"the shared computation returned nothing for {missing}")
                self._outputs = outputs
            return self._outputs.pop(member)

        return compute


def group_by_size(members: Sequence[Hashable], sizes: Mapping[Hashable, int], limit: int) -> list[list]:
    """Consecutive members in groups of at most `limit` in total size (a member larger than `limit` alone)."""
    groups: list[list] = []
    total = 0
    for m in members:
        if groups and total + sizes[m] <= limit:
            groups[-1].append(m)
            total += sizes[m]
        else:
            groups.append([m])
            total = sizes[m]
    return groups
