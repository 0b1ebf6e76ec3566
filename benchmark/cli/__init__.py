"""The command line: `run`, `ls`, `validate`, `fetch`, `lock`, `report`, `compare`, `bias`, `baseline`, `bench`.

Results go to stdout (a summary, or JSON with `--json`), progress and logs to stderr. Exit codes: 0 ok, 1 a gate
failed (with `--gate`), 2 bad input or usage, 130 interrupted. Every `BenchError` is printed as a few lines that
name the fix; no traceback for what the user can fix.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from benchmark.cli import commands
from benchmark.cli.parser import COMMANDS, build_parser
from benchmark.core.errors import BenchError, GateFailed

_HANDLERS = {"report": commands.cmd_report, "compare": commands.cmd_compare, "ls": commands.cmd_ls,
             "validate": commands.cmd_validate, "fetch": commands.cmd_fetch, "lock": commands.cmd_lock,
             "bias": commands.cmd_bias, "bench": commands.cmd_bench}


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("benchmark")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


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
    try:
        if args.command == "run":
            return commands.cmd_run(args, argv)
        if args.command == "baseline":
            return commands.cmd_baseline(args, argv)
        return _HANDLERS[args.command](args)
    except BenchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return exc.exit_code
    except GateFailed as exc:
        print(f"gate failed: {exc}", file=sys.stderr)
        return GateFailed.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished work is cached; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
