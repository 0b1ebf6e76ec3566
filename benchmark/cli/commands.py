"""One function per CLI command: parse nothing, decide nothing about exit codes beyond their own result; the
work lives in the packages below (plan, inputs, run, checks, outputs)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from benchmark.core.errors import BenchError, GateFailed
from benchmark.inputs.manifests import ManifestRegistry


def cmd_validate(args: argparse.Namespace) -> int:
    from benchmark.inputs.validate import validate_suite
    from benchmark.plan.loaders import LOADERS
    from benchmark.plan.plugins import load_plugins
    from benchmark.plan.request import known_metric_names

    load_plugins()
    report = validate_suite(args.suite, profile=args.profile, data_root=args.data, train_data_root=args.train_data,
                            device=args.device, out_dir=args.out, registry=ManifestRegistry(),
                            attributes=args.attributes, known_metrics=known_metric_names(),
                            known_loaders=LOADERS.names())
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return report.exit_code


def cmd_fetch(args: argparse.Namespace) -> int:
    from benchmark.inputs.fetch import fetch_models
    from benchmark.inputs.lock import LockFile
    from benchmark.inputs.manifests import resolve_suite

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


def cmd_lock(args: argparse.Namespace) -> int:
    from benchmark.inputs.lock_digests import lock_suite
    from benchmark.inputs.manifests import resolve_suite

    summary = lock_suite(resolve_suite(args.suite, profile=args.profile, registry=ManifestRegistry()),
                         data_root=args.data, train_data_root=args.train_data)
    for key, n in summary.recorded.items():
        print(f"recorded {n} digest(s) for {key}")
    print(f"{summary.already_known} digest(s) already pinned or locked")
    for what in summary.missing:
        print(f"not checked (not on disk): {what}")
    return 0


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark.cli.summary import run_summary
    from benchmark.outputs.results import load_results
    from benchmark.plan.request import RunRequest

    request = RunRequest(suite=args.suite, attributes=args.attributes, limit=args.limit, device=args.device,
                         profile=args.profile, data=args.data, train_data=args.train_data, out=args.out.expanduser())
    run_dir = execute(request, fresh=args.fresh, argv=argv)
    result = load_results(run_dir)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), **json.loads(result.model_dump_json())}, indent=2))
    else:
        print(run_summary(result, run_dir))
    if args.gate and result.failed_gates():
        names = ", ".join(g.name for g in result.failed_gates())
        raise GateFailed(f"{len(result.failed_gates())} of {len(result.gates)} gates failed: {names}")
    return 0


def execute(request, *, fresh: bool, argv: Sequence[str]) -> Path:
    """Resolve, check and run a suite; returns the run folder."""
    from benchmark.core.paths import check_writable_dir
    from benchmark.plan.suite import resolve_plan
    from benchmark.run.pipeline import run_plan
    from benchmark.run.runner import stage_runner

    check_writable_dir(request.out)  # before any compute: a result that cannot be written is not worth an hour
    plan = resolve_plan(request, ManifestRegistry())
    if request.limit is not None:
        logging.getLogger("benchmark").warning(
            "--limit %d: NOT FOR REPORTING. Only the first %d images are used; the results are marked as such.",
            request.limit, request.limit)
    return run_plan(plan, stage_runner(plan, fresh=fresh), request.out, argv=list(argv)).resolve()


def cmd_baseline(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark.checks import baseline as bl

    if args.baseline_command == "check":
        from benchmark.outputs.results import load_results

        violations = bl.check_against(load_results(args.run_dir), bl.load_baseline(args.baseline))
        for v in violations:
            print(f"REGRESSION {v.message()}")
        if violations:
            raise GateFailed(f"{len(violations)} score(s) left their baseline tolerance ({args.baseline})")
        print(f"every score within its tolerance of {args.baseline}")
        return 0
    from benchmark.plan.request import RunRequest

    bl.refuse_existing(args.out, overwrite=args.overwrite)  # before an expensive run, not after
    if args.from_runs:
        run_dirs = [d.resolve() for d in args.from_runs]
    else:
        request = RunRequest(suite=args.suite, device=args.device, profile=args.profile, data=args.data,
                             train_data=args.train_data, out=args.runs_dir.expanduser())
        # --fresh: every rerun recomputes every stage, so the spread is a real rerun spread, not cache hits
        run_dirs = [execute(request, fresh=True, argv=argv) for _ in range(args.runs)]
    baseline = bl.make_baseline(bl.results_of(run_dirs), run_names=[d.name for d in run_dirs],
                                command="python run_all.py " + " ".join(argv))
    path = bl.write_baseline(args.out, baseline, overwrite=args.overwrite)
    spread = max((s.spread for per in baseline.scores.values() for s in per.values()), default=0.0)
    print(f"baseline of {baseline.suite} (profile {baseline.profile}) from {len(run_dirs)} runs -> {path}; "
          f"reruns bit-identical: {baseline.provenance.bit_identical}; largest spread {spread:.3g}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.outputs.report import build_report

    report = build_report(args.run_dir)
    print(report.html)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.outputs.report.compare import compare_runs

    table = compare_runs(args.a, args.b)
    if args.json:
        print(table.frame.to_json(orient="records", indent=2))
    else:
        print(table.markdown())
    return 0


def cmd_bias(args: argparse.Namespace) -> int:
    from benchmark.core.paths import celeba_attributes_file
    from benchmark.outputs.report.bias import build_bias_report, to_markdown

    attributes_file = args.attributes_file or celeba_attributes_file()
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


def cmd_ls(args: argparse.Namespace) -> int:
    from benchmark.plan.suite import catalogue

    entries = catalogue(ManifestRegistry())
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for kind, items in entries.items():
        print(f"{kind}:")
        for item in items:
            extra = f"  {item['description']}" if item.get("description") else ""
            print(f"  {item['name']}{extra}")
    return 0
