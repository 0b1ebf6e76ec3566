"""The run folder on disk: its staging folder while it is written, and what may be read from a finished one.

A run folder is assembled in a hidden staging folder beside it, `.<time>-<key>.partial-<pid>@<host>`, and renamed
into place in one step (`benchmark.outputs.results.RunFolder`). A process killed before the rename leaves the
staging folder; the next run into the same `--out` removes those whose process is gone (`remove_dead_staging`),
and `report`, `compare`, `bias` and `baseline` refuse one (`require_finished`): it looks like a run, but nothing
says it is complete.

A run folder may come from someone else. Every path read from its `results.json` is joined with `run_file`, which
refuses one that leaves the folder (`..`, absolute paths, symlinks out), so a report never pulls in an outside file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from pathlib import Path

from benchmark.core.errors import BenchError, DataError
from benchmark.core.paths import safe_join

log = logging.getLogger("benchmark.outputs.run_folder")

# `.<name>.partial-<pid>@<host>`; the bare `.<name>.partial` of earlier versions has no owner to check.
_STAGING = re.compile(r"^\.(?P<name>.+)\.partial(?:-(?P<pid>\d+)@(?P<host>.+))?$")


def staging_path(final: Path) -> Path:
    """The staging folder of `final` for this process."""
    return final.with_name(f".{final.name}.partial-{os.getpid()}@{socket.gethostname()}")


def staging_exists(final: Path) -> bool:
    """Whether any process (live or dead) stages `final`: the name is then taken."""
    return any(_STAGING.match(p.name) for p in final.parent.glob(f".{final.name}.partial*"))


def is_staging(path: str | Path) -> bool:
    return bool(_STAGING.match(Path(path).name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_dead_staging(out: str | Path) -> list[Path]:
    """Remove the staging folders under `<out>/<suite>/` whose process on this machine is gone; returns them.
    Those of a live process, of another machine (the pid means nothing here) or without an owner are kept."""
    removed = []
    here = socket.gethostname()
    for folder in Path(out).glob("*/.*.partial*"):
        m = _STAGING.match(folder.name)
        if not m or not folder.is_dir() or m["pid"] is None or m["host"] != here or _alive(int(m["pid"])):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log.info("removed %s, left by run process %s that ended before it finished", folder, m["pid"])
    return removed


def require_finished(path: str | Path) -> Path:
    """`path` (a run folder or its results file), refused when it is a staging folder."""
    path = Path(path)
    folder = path if path.is_dir() or path.suffix != ".json" else path.parent
    if is_staging(folder):
        raise BenchError(f"{folder} is the staging folder of a run that did not finish (it was killed, or is still "
                         "being written); nothing says it is complete",
                         fix="pass a finished run folder (no leading '.', no '.partial'); the next run into the same "
                             "--out removes the staging folders of runs that died")
    return path


def run_file(run_dir: str | Path, relative: str | Path) -> Path:
    """A file that `results.json` names, inside the run folder; refused when it escapes it or is missing."""
    try:
        path = safe_join(run_dir, relative)
    except DataError:
        raise BenchError(f"{Path(run_dir) / 'results.json'} names {str(relative)!r}: the path escapes the run folder",
                         fix="a run folder only refers to files inside it; this one was edited or is not from "
                             "asyrp-bench: do not publish its report, rerun the suite instead") from None
    if not path.is_file():
        raise BenchError(f"{path} is missing from the run folder (results.json lists it)",
                         fix="copy the complete run folder (images/ included), or rerun the suite")
    return path
