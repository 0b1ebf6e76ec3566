"""The command line: `run`, `ls`, `validate`, `fetch`, `lock`, `report`, `compare`.

Results go to stdout (a summary, or JSON with `--json`), progress and logs to stderr. Exit codes: 0 ok, 1 a gate
failed (with `--gate`), 2 bad input or usage, 130 interrupted. Every `BenchError` is printed as a few lines that
name the fix; no traceback for what the user can fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark import __version__
from benchmark.errors import BenchError, GateFailed

EXAMPLES = """\
examples:
  python run_all.py                                   # the default suite, offline on the CPU
  python run_all.py run --suite paper-table --device cuda
  python run_all.py run --suite paper-table --attributes smiling pixar --limit 10   # quick look; not for reporting
  python run_all.py run --suite paper-table --profile tiny --device cpu   # same suite, tiny models (CI)
  python run_all.py run --suite synthetic --json --gate > result.json     # CI: exit 1 when a gate fails
  python run_all.py ls
  python run_all.py validate --suite paper-table      # what is missing, and the commands that fix it
  python run_all.py fetch --suite paper-table         # the only command that downloads
  python run_all.py lock --suite paper-table          # record digests not yet pinned
  python run_all.py report runs/paper-table/20260101T120000Z-1a2b3c4d
  python run_all.py compare runs/paper-table/A runs/paper-table/B

exit codes: 0 ok · 1 a gate failed (with --gate) · 2 bad input or usage · 130 interrupted (rerun to resume)
"""

COMMANDS = ("run", "ls", "validate", "fetch", "lock", "report", "compare")
DEFAULT_OUT = Path("runs")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors end with the fix (see --help) and exit code 2, like every bad input."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n  fix: see `{self.prog} --help` for the options and examples\n")


def build_parser(prog: str = "run_all.py") -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog=prog, description="asyrp-bench: a reproducibility benchmark for Asyrp (ICLR 2023).",
                     epilog=EXAMPLES, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"asyrp-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a suite: invert, train, edit, measure, report", epilog=EXAMPLES,
                         formatter_class=fmt)
    what = run.add_argument_group("what to run")
    what.add_argument("--suite", default=None, help="suite name[@version] (default: synthetic, or the demo until it exists)")
    what.add_argument("--attributes", nargs="+", metavar="NAME", help="only these attributes of the suite")
    what.add_argument("--limit", type=_positive_int, metavar="N",
                      help="only the first N images; the result is marked NOT FOR REPORTING")
    what.add_argument("--profile", metavar="NAME", help="a profile of the suite (e.g. tiny: small models, for CI)")
    how = run.add_argument_group("where and how")
    how.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    how.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for run folders (default: %(default)s)")
    how.add_argument("--fresh", action="store_true", help="recompute every stage instead of using the cache")
    out = run.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the results JSON on stdout instead of a summary")
    out.add_argument("--gate", action="store_true", help="exit 1 when any gate fails")

    ls = sub.add_parser("ls", help="list suites, attributes, metrics and models with their versions")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    for name, text in (("validate", "resolve and check a suite without computing; lists every problem"),
                       ("fetch", "download and verify weights and data (the only command that downloads)"),
                       ("lock", "record digests that are not yet pinned")):
        p = sub.add_parser(name, help=text, formatter_class=fmt)
        _delegate(name).add_arguments(p) if _delegate_available(name) else _fallback_arguments(p)

    report = sub.add_parser("report", help="regenerate tables, figures and HTML of a run folder")
    report.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder (holds results.json)")

    compare = sub.add_parser("compare", help="a table of the differences between two runs")
    compare.add_argument("a", type=Path, metavar="A", help="run folder A (the baseline)")
    compare.add_argument("b", type=Path, metavar="B", help="run folder B")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


# -- delegated commands (validate, fetch, lock live in their own modules) ---------------------------------------

_DELEGATES = {"validate": "benchmark.validate", "fetch": "benchmark.fetch", "lock": "benchmark.lock"}


def _delegate(name: str):
    import importlib

    return importlib.import_module(_DELEGATES[name])


def _delegate_available(name: str) -> bool:
    import importlib.util

    spec = importlib.util.find_spec(_DELEGATES[name])
    return spec is not None


def _fallback_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default=None, help="suite name[@version]")


def _run_delegate(name: str, args: argparse.Namespace) -> int:
    if not _delegate_available(name):
        raise BenchError(f"`{name}` is not available in this build ({_DELEGATES[name]} is missing)",
                         fix="update the checkout; the command ships with the manifests package")
    return int(_delegate(name).command(args) or 0)


# -- run ----------------------------------------------------------------------------------------------------------

def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark.results import check_writable
    from benchmark.suite import RunRequest, resolve_plan

    out = args.out.expanduser()
    check_writable(out)  # before any compute: a result that cannot be written is not worth an hour of GPU
    request = RunRequest(suite=args.suite, attributes=args.attributes, limit=args.limit, device=args.device,
                         profile=args.profile)
    plan = resolve_plan(request)
    if args.limit is not None:
        logging.getLogger("benchmark").warning(
            "--limit %d: NOT FOR REPORTING. Only the first %d images are used; the results are marked as such.",
            args.limit, args.limit)
    import torch

    from benchmark.cache import StageCache
    from benchmark.paths import cache_dir
    from benchmark.pipeline import run_plan
    from benchmark.results import load_results
    from benchmark.runner import Runner

    device = torch.device(plan.device)
    runner = Runner(StageCache(cache_dir() / "stages"), fresh=args.fresh,
                    environment={"torch": torch.__version__, "device": device.type})
    run_dir = run_plan(plan, runner, out, argv=list(argv)).resolve()
    result = load_results(run_dir)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), **json.loads(result.model_dump_json())}, indent=2))
    else:
        print(_summary(result, run_dir))
    if args.gate and result.failed_gates():
        names = ", ".join(g.name for g in result.failed_gates())
        raise GateFailed(f"{len(result.failed_gates())} of {len(result.gates)} gates failed: {names}")
    return 0


def _summary(result, run_dir: Path) -> str:
    from benchmark.report.tables import all_tables, to_markdown

    lines = [f"{result.suite}: {run_dir}"]
    if result.not_for_reporting:
        lines.append("NOT FOR REPORTING (--limit)")
    lines += [note for note in result.run.notes]
    lines += ["", *(to_markdown(t) for t in all_tables(result))]
    if result.gates:
        failed = result.failed_gates()
        lines.append(f"gates: {len(result.gates) - len(failed)}/{len(result.gates)} pass"
                     + "".join(f"\n  FAIL {g.name}: {g.value} not in {g.band.describe()}" for g in failed))
    lines.append(f"report: {run_dir / 'report' / 'index.html'}")
    return "\n".join(lines)


# -- report / compare / ls ----------------------------------------------------------------------------------------

def _cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report import build_report

    report = build_report(args.run_dir)
    print(report.html)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.report.compare import compare_runs

    table = compare_runs(args.a, args.b)
    if args.json:
        print(table.frame.to_json(orient="records", indent=2))
    else:
        print(table.markdown())
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    from benchmark.suite import catalogue

    entries = catalogue()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for kind, items in entries.items():
        print(f"{kind}:")
        for item in items:
            extra = f"  {item['description']}" if item.get("description") else ""
            print(f"  {item['name']}{extra}")
    return 0


# -- entry point --------------------------------------------------------------------------------------------------

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
            return _cmd_run(args, argv)
        if args.command in _DELEGATES:
            return _run_delegate(args.command, args)
        return {"report": _cmd_report, "compare": _cmd_compare, "ls": _cmd_ls}[args.command](args)
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
