"""The command line: `run`, `ls`, `validate`, `fetch`, `lock`, `report`, `figures`, `compare`, `bias`, `baseline`, `rehearse`,
`bench`.

Results go to stdout (a summary, or JSON with `--json`), progress and logs to stderr. Exit codes: 0 ok, 1 a known
answer failed (with `--gate`), 2 bad input or usage (a full disk included), 3 a bug (its traceback saved to a
file), 130 interrupted (SIGINT), 143 terminated (SIGTERM). Every `BenchError` is printed as a few lines that name
the fix; no traceback for what the user can fix (`benchmark.cli.failures`).
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Sequence

from benchmark.cli import commands
from benchmark.cli.failures import exit_code_for, print_error
from benchmark.cli.parser import COMMANDS, build_parser
from benchmark.core.errors import BenchError, GateFailed
from benchmark.core.runtime import fix_cpu_thread_count

fix_cpu_thread_count()  # before anything loads torch: results must not depend on how busy the CPU is

_HANDLERS = {"report": commands.cmd_report, "figures": commands.cmd_figures, "compare": commands.cmd_compare,
             "ls": commands.cmd_ls,
             "validate": commands.cmd_validate, "fetch": commands.cmd_fetch, "lock": commands.cmd_lock,
             "bias": commands.cmd_bias, "rehearse": commands.cmd_rehearse,
             "bench": commands.cmd_bench}


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("benchmark")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where the run is: finished units stay cached and no run folder is half-written."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


def _stop_cleanly_on_signals() -> Callable[[], None]:
    """Make SIGINT and SIGTERM (what schedulers send before they kill a job) stop the run cleanly; returns the
    function that puts the previous handlers back. Installed explicitly: a process started from a background
    shell inherits an ignored SIGINT, and Python then never raises KeyboardInterrupt."""
    previous = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, _raise_interrupted)
    except ValueError:  # not the main thread (main() called from a worker): signals stay the caller's
        pass

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def main(argv: Sequence[str] | None = None, default_command: str | None = None) -> int:
    """Run the CLI; returns the exit code. `default_command` is inserted when argv names no command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if default_command and (not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help",
                                                                                          "--version"))):
        argv = [default_command, *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _setup_logging()
    restore_signals = _stop_cleanly_on_signals()
    try:
        if args.command == "run":
            return commands.cmd_run(args, argv)
        if args.command == "baseline":
            return commands.cmd_baseline(args, argv)
        return _HANDLERS[args.command](args)
    except BenchError as exc:
        return print_error(exc)
    except GateFailed as exc:
        print(f"gate failed: {exc}", file=sys.stderr)
        return GateFailed.exit_code
    except KeyboardInterrupt as exc:
        print(f"interrupted{f' ({exc})' if isinstance(exc, Interrupted) else ''}: finished work is cached; "
              "run the same command again to resume", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except Exception as exc:  # the last resort: a crash must never read as a failed gate (exit 1)
        return exit_code_for(exc, argv)
    finally:
        restore_signals()


if __name__ == "__main__":
    sys.exit(main())
