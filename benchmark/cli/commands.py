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
        from benchmark.inputs.selection import narrow_to_selection

        resolved = resolve_suite(args.suite, profile=args.profile, registry=registry)
        models += list(narrow_to_selection(resolved, args.attributes).models().values())  # what the run reads
    statuses = fetch_models(models, lock=LockFile.load())
    for st in statuses:
        print(f"{st.state:>4}  {st.model}  {st.path}")
    print(f"{len(statuses)} file(s) present and verified")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from benchmark.inputs.lock_digests import lock_suite
    from benchmark.inputs.manifests import resolve_suite

    summary = lock_suite(resolve_suite(args.suite, profile=args.profile, registry=ManifestRegistry()),
                         data_root=args.data, train_data_root=args.train_data, relock=args.relock)
    for key, n in summary.recorded.items():
        print(f"recorded {n} digest(s) for {key}")
    print(f"{summary.already_known} digest(s) already pinned or locked")
    for what in summary.missing:
        print(f"not checked (not on disk): {what}")
    return 0


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark.cli.parser import fast_path_options
    from benchmark.cli.summary import run_summary
    from benchmark.outputs.results import load_results
    from benchmark.plan.request import RunRequest

    request = RunRequest(suite=args.suite, attributes=args.attributes, limit=args.limit, device=args.device,
                         profile=args.profile, data=args.data, train_data=args.train_data, out=args.out.expanduser(),
                         attribute_batching=args.attribute_batching, fast_path=fast_path_options(args),
                         batch_size=args.batch_size)
    run_dir = execute(request, fresh=args.fresh, argv=argv, executor=executor_config(args))
    result = load_results(run_dir)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), **json.loads(result.model_dump_json())}, indent=2))
    else:
        print(run_summary(result, run_dir))
    failed = result.failed_known_answers()  # a claim that does not hold is a finding, not a failed run
    if args.gate and failed:
        names = ", ".join(g.name for g in failed)
        raise GateFailed(f"{len(failed)} of {len(result.known_answers())} known answers failed: {names}")
    return 0


def executor_config(args: argparse.Namespace):
    """The executor settings from `--executor-config` and the flags, checked before anything else (exit 2)."""
    from benchmark.run.executors.config import build_config, load_executor_config

    doc = load_executor_config(args.executor_config) if args.executor_config else None
    return build_config(doc, {"executor": args.executor, "workers": args.workers, "max_tries": args.max_tries,
                              "slurm_partition": args.slurm_partition, "slurm_account": args.slurm_account,
                              "slurm_time_min": args.slurm_time_min, "slurm_gpus_per_job": args.slurm_gpus_per_job})


def execute(request, *, fresh: bool, argv: Sequence[str], executor=None) -> Path:
    """Resolve, check and run a suite; returns the run folder. `executor` (an `ExecutorConfig`) other than
    `inline` computes the units as jobs first (benchmark.run.executors); the run folder is written here."""
    from benchmark.core.paths import cache_dir, check_writable_dir
    from benchmark.plan.suite import resolve_plan
    from benchmark.run.pipeline import run_plan
    from benchmark.run.runner import stage_runner

    check_writable_dir(request.out)  # before any compute: a result that cannot be written is not worth an hour
    scaled = executor is not None and executor.executor != "inline"
    if scaled:
        from benchmark.run.executors.backends import preflight

        preflight(executor, cache_dir())  # before the plan is built, and long before a job is submitted
    plan = resolve_plan(request, ManifestRegistry())
    if plan.limit is not None:
        logging.getLogger("benchmark").warning(
            "--limit %d: NOT FOR REPORTING. Only the first %d images are used; the results are marked as such.",
            plan.limit, plan.limit)
    elif request.limit is not None:
        logging.getLogger("benchmark").info(
            "--limit %d keeps every one of the suite's %d images: a complete run, not marked as limited.",
            request.limit, len(plan.images))
    runner = stage_runner(plan, fresh=fresh)
    if scaled:
        import shlex

        from benchmark.plan.recipe import PlanRecipe
        from benchmark.run.executors.scale import scale_out

        scale_out(plan, runner, executor, PlanRecipe.for_workers(request, str(plan.device)),
                  resume_command="python run_all.py " + shlex.join(argv))
    return run_plan(plan, runner, request.out, argv=list(argv)).resolve()


def cmd_baseline(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark.checks import baseline as bl

    if args.baseline_command == "check":
        from benchmark.outputs.results import load_results
        from benchmark.outputs.run_folder import require_finished

        violations = bl.check_against(load_results(require_finished(args.run_dir)), bl.load_baseline(args.baseline))
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
        bl.require_runs_of(bl.results_of(run_dirs), [str(d) for d in run_dirs], suite=args.suite,
                           profile=args.profile)
    else:
        request = RunRequest(suite=args.suite, device=args.device, profile=args.profile, data=args.data,
                             train_data=args.train_data, out=args.runs_dir.expanduser())
        # --fresh: every rerun recomputes every stage, so the spread is a real rerun spread, not cache hits; one
        # fixed thread count, since CPU numerics depend on it (the baseline records it, `check` compares it)
        with bl.pinned_threads():
            run_dirs = [execute(request, fresh=True, argv=argv) for _ in range(args.runs)]
    baseline = bl.make_baseline(bl.results_of(run_dirs), run_names=[d.name for d in run_dirs],
                                command="python run_all.py " + " ".join(argv))
    path = bl.write_baseline(args.out, baseline, overwrite=args.overwrite)
    spread = max((s.spread for per in baseline.scores.values() for s in per.values()), default=0.0)
    print(f"baseline of {baseline.suite} (profile {baseline.profile}, {baseline.threads} thread(s)) from "
          f"{len(run_dirs)} runs -> {path}; reruns bit-identical: {baseline.provenance.bit_identical}; "
          f"largest spread {spread:.3g}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.outputs.report import build_report
    from benchmark.outputs.run_folder import require_finished

    report = build_report(require_finished(args.run_dir))
    print(report.html)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from benchmark.outputs.figures import make_figures

    made = make_figures(args.run_dir, args.out, args.format)
    for line in made.lines():
        print(line)
    print(f"{len(made.made)} of {len(made.made) + len(made.skipped)} written to {made.out}")
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


def cmd_rehearse(args: argparse.Namespace) -> int:
    from benchmark.rehearsal.command import rehearse

    report = rehearse(args.suite, device=args.device, keep=args.keep, seed=args.seed, attributes=args.attributes)
    if not report.ok:
        failed = next(line for line in report.lines if not line.ok)
        raise BenchError(f"rehearsal of {args.suite} failed at {failed.name} ({failed.detail})",
                         fix="read the stage's log (rerun with --keep DIR to keep it); docs/rehearsal.md")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmark.bench.report import render, run_bench
    from benchmark.cli.parser import fast_path_options
    from benchmark.core.atomic import write_json

    out = args.out.expanduser() if args.out else None
    report = run_bench(args.suite, profile=args.profile, device=args.device, fast_options=fast_path_options(args),
                       peak_tflops=args.peak_tflops, batch=args.batch, warmup=args.warmup, repeats=args.repeats,
                       registry=ManifestRegistry(), units_only=args.units,
                       partial=(lambda r: write_json(out, r)) if out else None)
    if out:
        write_json(out, report)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
