"""What the CLI prints, and which exit code it returns, for an exception.

Exit 1 means one thing: a gate failed. So nothing else may end with 1: a `BenchError` (bad input, a missing file,
a full disk) exits 2 with a few lines that name the fix, and any other exception is a bug in asyrp-bench: it exits
3 (`BUG_EXIT_CODE`) with "this is a bug" and the file its traceback was written to, so CI that uses `--gate` never
reads a crash as a regression.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from benchmark.core.errors import BenchError

BUG_EXIT_CODE = 3

# What a full or read-only disk looks like from Python: the user fixes it, so it is not a bug.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})
_OS_ERROR = re.compile(r"os error (\d+)")  # how safetensors (Rust) words an I/O error in its own exception type


def print_error(exc: BenchError) -> int:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.fix:
        print(f"  fix: {exc.fix}", file=sys.stderr)
    return exc.exit_code


def storage_error(exc: BaseException) -> BenchError | None:
    """A disk that is full or cannot be written, as a `BenchError`; None for anything else. Covers `OSError` and
    safetensors' `SafetensorError` (which carries the OS error only in its message)."""
    code, where = None, ""
    if isinstance(exc, OSError):
        code, where = exc.errno, f" at {exc.filename}" if exc.filename else ""
    elif type(exc).__name__ == "SafetensorError" and (m := _OS_ERROR.search(str(exc))):
        code = int(m.group(1))
    if code not in STORAGE_ERRNOS:
        return None
    return BenchError(f"cannot write{where}: {os.strerror(code)} (the disk is full or read-only, or a quota or "
                      "size limit was reached)",
                      fix="free disk space, or point --out (run folders) or ASYRP_CACHE (the stage cache and "
                          "weights) at a folder with room that you can write; finished stages are cached, so the "
                          "same command resumes")


def exit_code_for(exc: Exception, argv: Sequence[str]) -> int:
    """Exit 2 for a storage failure, else 3: a bug, with its traceback saved to a file that the message names."""
    if (err := storage_error(exc)) is not None:
        return print_error(err)
    log = _save_traceback(exc, argv)
    print(f"error: this is a bug in asyrp-bench, not a problem with your input: {type(exc).__name__}: {exc}",
          file=sys.stderr)
    print(f"  the traceback is in {log}" if log else "  the traceback follows:", file=sys.stderr)
    if log is None:
        traceback.print_exception(exc, file=sys.stderr)
    print("  please report it to the asyrp-bench maintainers (the project's issue tracker) with the command line "
          "and that traceback", file=sys.stderr)
    return BUG_EXIT_CODE


def _save_traceback(exc: Exception, argv: Sequence[str]) -> Path | None:
    """The traceback, with the command, in `<cache>/logs/` (or the temp folder when the cache is not writable)."""
    from benchmark.core.paths import cache_dir

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = f"command: run_all.py {' '.join(argv)}\n\n" + "".join(traceback.format_exception(exc))
    for folder in (cache_dir() / "logs", Path(tempfile.gettempdir())):
        path = folder / f"asyrp-bench-crash-{stamp}-{os.getpid()}.txt"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError:
            continue
        return path
    return None
