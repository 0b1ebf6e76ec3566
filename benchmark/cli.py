"""The command line: `run`, `ls`, `validate`, `fetch`, `lock`, `report`, `compare`, `bias`, `baseline`.

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
  python run_all.py run --suite paper-table --data celeba_hq_raw.zip --train-data celeba_hq_raw.zip --device cuda
  python run_all.py run --suite official-checkpoints --data celeba_hq_raw.zip --attributes smiling pixar --limit 10
                                                      # a quick look; marked NOT FOR REPORTING
  python run_all.py run --suite paper-table --profile tiny --device cpu   # same suite, tiny models (CI)
  python run_all.py run --suite synthetic --json --gate > result.json     # CI: exit 1 when a gate fails
  python run_all.py ls
  python run_all.py validate --suite paper-table --data celeba_hq_raw.zip   # what is missing, and how to fix it
  python run_all.py fetch --suite paper-table         # the only command that downloads
  python run_all.py lock --suite paper-table --data celeba_hq_raw.zip       # record digests not yet pinned
  python run_all.py report runs/paper-table/20260101T120000Z-1a2b3c4d
  python run_all.py compare runs/paper-table/A runs/paper-table/B
  python run_all.py bias runs/paper-table/A --by Male Young Pale_Skin --attributes-file list_attr_celeba.txt
  python run_all.py baseline create --suite synthetic --profile quick --out results/baselines/synthetic-quick.json
  python run_all.py baseline check runs/synthetic/RUN --baseline results/baselines/synthetic-quick.json

exit codes: 0 ok · 1 a gate failed (with --gate) · 2 bad input or usage · 130 interrupted (rerun to resume)
"""

COMMANDS = ("run", "ls", "validate", "fetch", "lock", "report", "compare", "bias", "baseline")
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
    _data_arguments(run.add_argument_group("data"))
    how = run.add_argument_group("where and how")
    how.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    how.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for run folders (default: %(default)s)")
    how.add_argument("--fresh", action="store_true", help="recompute every stage instead of using the cache")
    out = run.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the results JSON on stdout instead of a summary")
    out.add_argument("--gate", action="store_true", help="exit 1 when any gate fails")

    ls = sub.add_parser("ls", help="list suites, attributes, metrics and models with their versions")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    validate = sub.add_parser("validate", help="resolve and check a suite without computing; lists every problem",
                              formatter_class=fmt, epilog="exit code 2 when any problem is an error")
    _suite_arguments(validate, required=True)
    _data_arguments(validate)
    validate.add_argument("--device", default="auto", help="the device the run would use (default: %(default)s)")
    validate.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the output folder the run would use")
    validate.add_argument("--json", action="store_true", help="machine-readable output")

    fetch = sub.add_parser("fetch", help="download and verify weights (the only command that downloads)",
                           formatter_class=fmt,
                           epilog="examples:\n  python run_all.py fetch --suite paper-table\n"
                                  "  python run_all.py fetch clip-vit-b16-openai@1")
    fetch.add_argument("models", nargs="*", metavar="MODEL", help="model manifests (name[@version]) to fetch")
    _suite_arguments(fetch, required=False)

    lock = sub.add_parser("lock", help="record digests that are not yet pinned (data and fetched weights)")
    _suite_arguments(lock, required=True)
    _data_arguments(lock)

    report = sub.add_parser("report", help="regenerate tables, figures and HTML of a run folder")
    report.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder (holds results.json)")

    compare = sub.add_parser("compare", help="a table of the differences between two runs")
    compare.add_argument("a", type=Path, metavar="A", help="run folder A (the baseline)")
    compare.add_argument("b", type=Path, metavar="B", help="run folder B")
    compare.add_argument("--json", action="store_true", help="machine-readable output")

    bias = sub.add_parser("bias", help="a run's metrics by CelebA attribute group (Male, Young, ...), with CIs and N",
                          formatter_class=fmt, epilog=BIAS_EXAMPLES)
    bias.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (holds results.json)")
    bias.add_argument("--by", nargs="+", metavar="ATTR", default=["Male", "Young", "Pale_Skin"],
                      help="CelebA attributes to split the images by (default: %(default)s)")
    bias.add_argument("--attributes-file", type=Path, metavar="PATH",
                      help="list_attr_celeba.txt or CelebAMask-HQ-attribute-anno.txt (default: $ASYRP_CELEBA_ATTRIBUTES)")
    bias.add_argument("--mapping-file", type=Path, metavar="PATH",
                      help="CelebA-HQ-to-CelebA-mapping.txt; needed only when the dataset manifest does not list the "
                           "CelebA-HQ index and the attribute file is keyed by it")
    bias.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    bias.add_argument("--json", action="store_true", help="print the table as JSON")
    baseline = sub.add_parser("baseline", help="the CI regression baseline: create it from reruns, or check a run")
    bsub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=_Parser, required=True)
    create = bsub.add_parser("create", help="run a suite N times from scratch (no cache) and write its baseline")
    _suite_arguments(create, required=True)
    _data_arguments(create)
    create.add_argument("--runs", type=_positive_int, default=2, help="reruns to measure the spread (default 2)")
    create.add_argument("--from-runs", nargs="+", type=Path, metavar="DIR",
                        help="make it from these run folders instead of running")
    create.add_argument("--device", default="cpu", help="device of the runs (default: %(default)s)")
    create.add_argument("--out", type=Path, required=True, help="the baseline JSON to write")
    create.add_argument("--overwrite", action="store_true", help="replace an existing baseline (never silently)")
    create.add_argument("--runs-dir", type=Path, default=DEFAULT_OUT, help="where the run folders go")
    check = bsub.add_parser("check", help="exit 1 when a score of the run left its baseline tolerance")
    check.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder (holds results.json)")
    check.add_argument("--baseline", type=Path, required=True, help="the baseline JSON")
    return parser


BIAS_EXAMPLES = """\
examples:
  python run_all.py bias runs/paper-table/20260101T120000Z-1a2b3c4d --by Male Young Pale_Skin \\
      --attributes-file ~/data/celeba/list_attr_celeba.txt
  python run_all.py bias RUN --by Pale_Skin --attributes-file CelebAMask-HQ-attribute-anno.txt --seed 1

Writes RUN/bias/{bias.md, bias.csv, bias.json, bias_<ATTR>.png}. N per group is small: read the CIs and N.
exit codes: 0 ok · 2 bad input (unknown attribute, image without a row, a group with N < 2)
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


# -- shared argument groups --------------------------------------------------------------------------------------

def _suite_arguments(p, *, required: bool) -> None:
    p.add_argument("--suite", required=required, help="suite name[@version]")
    p.add_argument("--profile", metavar="NAME", help="a profile of the suite (e.g. tiny)")


def _data_arguments(p) -> None:
    p.add_argument("--data", metavar="PATH", help="the test images: a folder, zip or LMDB (docs/data.md)")
    p.add_argument("--train-data", metavar="PATH", help="the training images, when another dataset")


# -- validate / fetch / lock (the checks themselves live in benchmark.validate, .fetch and .lock) -------------------

def _cmd_validate(args: argparse.Namespace) -> int:
    from benchmark.suite import known_metric_names
    from benchmark.validate import validate_suite

    report = validate_suite(args.suite, profile=args.profile, data_root=args.data, train_data_root=args.train_data,
                            device=args.device, out_dir=args.out, known_metrics=known_metric_names())
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return report.exit_code


def _cmd_fetch(args: argparse.Namespace) -> int:
    from benchmark.fetch import fetch_models
    from benchmark.lock import LockFile
    from benchmark.manifests import ManifestRegistry, resolve_suite

    if not args.models and not args.suite:
        raise BenchError("fetch needs model names or --suite", fix="e.g. `python run_all.py fetch --suite paper-table`")
    registry = ManifestRegistry()
    models = [registry.get("model", ref).manifest for ref in args.models]
    if args.suite:
        models += list(resolve_suite(args.suite, profile=args.profile, registry=registry).models().values())
    statuses = fetch_models(models, lock=LockFile.load())
    for st in statuses:
        print(f"{st.state:>4}  {st.model}  {st.path}")
    print(f"{len(statuses)} file(s) present and verified")
    return 0


def _cmd_lock(args: argparse.Namespace) -> int:
    from benchmark.lock import lock_suite
    from benchmark.manifests import resolve_suite

    summary = lock_suite(resolve_suite(args.suite, profile=args.profile), data_root=args.data,
                         train_data_root=args.train_data)
    for key, n in summary.recorded.items():
        print(f"recorded {n} digest(s) for {key}")
    print(f"{summary.already_known} digest(s) already pinned or locked")
    for what in summary.missing:
        print(f"not checked (not on disk): {what}")
    return 0


# -- run ----------------------------------------------------------------------------------------------------------

def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark.results import load_results
    from benchmark.suite import RunRequest

    request = RunRequest(suite=args.suite, attributes=args.attributes, limit=args.limit, device=args.device,
                         profile=args.profile, data=args.data, train_data=args.train_data)
    run_dir = _execute(request, args.out.expanduser(), fresh=args.fresh, argv=argv)
    result = load_results(run_dir)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), **json.loads(result.model_dump_json())}, indent=2))
    else:
        print(_summary(result, run_dir))
    if args.gate and result.failed_gates():
        names = ", ".join(g.name for g in result.failed_gates())
        raise GateFailed(f"{len(result.failed_gates())} of {len(result.gates)} gates failed: {names}")
    return 0


def _execute(request, out: Path, *, fresh: bool, argv: Sequence[str]) -> Path:
    """Resolve, check and run a suite; returns the run folder."""
    from benchmark.results import check_writable
    from benchmark.suite import resolve_plan

    check_writable(out)  # before any compute: a result that cannot be written is not worth an hour of GPU
    plan = resolve_plan(request)
    if request.limit is not None:
        logging.getLogger("benchmark").warning(
            "--limit %d: NOT FOR REPORTING. Only the first %d images are used; the results are marked as such.",
            request.limit, request.limit)
    from benchmark.pipeline import run_plan

    return run_plan(plan, stage_runner(plan, fresh=fresh), out, argv=list(argv)).resolve()


def stage_runner(plan, *, fresh: bool = False, progress: bool | None = None):
    """The runner over the user's stage cache, keyed as every run's is."""
    import torch

    from benchmark.cache import StageCache
    from benchmark.paths import cache_dir
    from benchmark.results import package_versions
    from benchmark.runner import Runner

    device = torch.device(plan.device)
    # Library versions and the device type change numerics without changing any input: part of every key.
    return Runner(StageCache(cache_dir() / "stages"), fresh=fresh, progress=progress,
                  environment={**package_versions(), "device": device.type})


# -- baseline -----------------------------------------------------------------------------------------------------

def _cmd_baseline(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark import baseline as bl

    if args.baseline_command == "check":
        from benchmark.results import load_results

        violations = bl.check_against(load_results(args.run_dir), bl.load_baseline(args.baseline))
        for v in violations:
            print(f"REGRESSION {v.message()}")
        if violations:
            raise GateFailed(f"{len(violations)} score(s) left their baseline tolerance ({args.baseline})")
        print(f"every score within its tolerance of {args.baseline}")
        return 0
    from benchmark.suite import RunRequest

    bl.refuse_existing(args.out, overwrite=args.overwrite)  # before an expensive run, not after
    if args.from_runs:
        run_dirs = [d.resolve() for d in args.from_runs]
    else:
        request = RunRequest(suite=args.suite, device=args.device, profile=args.profile, data=args.data,
                             train_data=args.train_data)
        # --fresh: every rerun recomputes every stage, so the spread is a real rerun spread, not cache hits
        run_dirs = [_execute(request, args.runs_dir.expanduser(), fresh=True, argv=argv) for _ in range(args.runs)]
    baseline = bl.make_baseline(bl.results_of(run_dirs), run_names=[d.name for d in run_dirs],
                                command="python run_all.py " + " ".join(argv))
    path = bl.write_baseline(args.out, baseline, overwrite=args.overwrite)
    spread = max((s.spread for per in baseline.scores.values() for s in per.values()), default=0.0)
    print(f"baseline of {baseline.suite} (profile {baseline.profile}) from {len(run_dirs)} runs -> {path}; "
          f"reruns bit-identical: {baseline.provenance.bit_identical}; largest spread {spread:.3g}")
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


def _cmd_bias(args: argparse.Namespace) -> int:
    import os

    from benchmark.report.bias import build_bias_report, to_markdown

    attributes_file = args.attributes_file or os.environ.get("ASYRP_CELEBA_ATTRIBUTES")
    if not attributes_file:
        raise BenchError("no CelebA attribute file given",
                         fix="pass --attributes-file PATH (list_attr_celeba.txt or CelebAMask-HQ-attribute-anno.txt)"
                             " or set ASYRP_CELEBA_ATTRIBUTES")
    report = build_bias_report(args.run_dir, args.by, attributes_file, mapping_file=args.mapping_file,
                               seed=args.seed)
    if args.json:
        print((report.folder / "bias.json").read_text(encoding="utf-8"))
    else:
        provenance = json.loads((report.folder / "bias.json").read_text(encoding="utf-8"))["provenance"]
        print(to_markdown(report.analysis, provenance))
        print(f"written: {report.folder}")
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
        if args.command == "baseline":
            return _cmd_baseline(args, argv)
        return {"report": _cmd_report, "compare": _cmd_compare, "ls": _cmd_ls, "validate": _cmd_validate,
                "fetch": _cmd_fetch, "lock": _cmd_lock, "bias": _cmd_bias}[args.command](args)
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
