"""The argument parser of `run_all.py`: one function per command, shared argument groups, examples."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark import __version__

EXAMPLES = """\
examples:
  python run_all.py                                   # the default suite, offline on the CPU
  python run_all.py run --suite paper-table --data celeba_hq_raw.zip --train-data celeba_hq_raw.zip --device cuda
  python run_all.py run --suite official-checkpoints --data celeba_hq_raw.zip --attributes smiling pixar --limit 10
                                                      # a quick look; marked NOT FOR REPORTING
  python run_all.py run --suite paper-table --profile tiny --device cpu   # same suite, tiny models (CI)
  python run_all.py run --suite synthetic --json --gate > result.json     # CI: exit 1 when a known answer fails
  python run_all.py run --suite paper-table --data celeba_hq_raw.zip --device cuda --executor local --workers 4
  python run_all.py run --suite paper-table --data celeba_hq_raw.zip --device cuda --executor slurm \
      --executor-config slurm.yaml               # units as SLURM jobs (docs/scale-out.md)
  python run_all.py ls
  python run_all.py validate --suite paper-table --data celeba_hq_raw.zip   # what is missing, and how to fix it
  python run_all.py fetch --suite paper-table         # the only command that downloads
  python run_all.py lock --suite paper-table --data celeba_hq_raw.zip       # record digests not yet pinned
  python run_all.py report runs/paper-table/20260101T120000Z-1a2b3c4d
  python run_all.py figures runs/synthetic/20260101T120000Z-1a2b3c4d --format pdf   # the blog's figures
  python run_all.py compare runs/paper-table/A runs/paper-table/B
  python run_all.py bias runs/paper-table/A --by Male Young Pale_Skin --attributes-file list_attr_celeba.txt
  python run_all.py baseline create --suite synthetic --profile quick --out results/baselines/synthetic-quick.json
  python run_all.py baseline check runs/synthetic/RUN --baseline results/baselines/synthetic-quick.json

exit codes: 0 ok · 1 a known answer failed (with --gate; a paper claim that does not hold never fails a run)
            2 bad input or usage · 3 a bug (traceback saved) · 130 interrupted (SIGINT) · 143 terminated (SIGTERM);
            rerun to resume
"""

BIAS_EXAMPLES = """\
examples:
  python run_all.py bias runs/paper-table/20260101T120000Z-1a2b3c4d --by Male Young Pale_Skin \\
      --attributes-file ~/data/celeba/list_attr_celeba.txt
  python run_all.py bias RUN --by Pale_Skin --attributes-file CelebAMask-HQ-attribute-anno.txt --seed 1

Writes RUN/bias/{bias.md, bias.csv, bias.json, bias_<ATTR>.png}. N per group is small: read the CIs and N.
exit codes: 0 ok · 2 bad input (unknown attribute, image without a row, a group with N < 2)
"""

FIGURES_EPILOG = """\
writes Figure 5 (segmentation maps behind SC), Figures 6-7 (edit grids, in-domain and unseen), Figure 8 (the
linearity strip), Figure 9 (the combination grid) and Table 2 (paper vs study vs this run, Markdown and LaTeX),
and says which of them this run cannot make, and why. Works on paper-table, synthetic and ablation runs.
exit codes: 0 ok · 2 bad input (no results.json, unknown format)
"""

COMMANDS = ("run", "ls", "validate", "fetch", "lock", "report", "figures", "compare", "bias", "baseline", "rehearse",
            "bench")
DEFAULT_OUT = Path("runs")
_FMT = argparse.RawDescriptionHelpFormatter


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors end with the fix (see --help) and exit code 2, like every bad input."""

    def error(self, message: str):
        # one usage line, not argparse's full one: `run` has too many options for a usage that names them all
        self.exit(2, f"usage: {self.prog} [options]\nerror: {message}\n"
                     f"  fix: see `{self.prog} --help` for the options and examples\n")


def build_parser(prog: str = "run_all.py") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="asyrp-bench: a reproducibility benchmark for Asyrp (ICLR 2023).",
                     epilog=EXAMPLES, formatter_class=_FMT)
    parser.add_argument("--version", action="version", version=f"asyrp-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_run, _add_ls, _add_validate, _add_fetch, _add_lock, _add_report, _add_figures, _add_compare,
                _add_bias, _add_baseline, _add_rehearse, _add_bench):
        add(sub)
    return parser


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run a suite: invert, train, edit, measure, report", epilog=EXAMPLES,
                         formatter_class=_FMT)
    what = run.add_argument_group("what to run")
    what.add_argument("--suite", default=None, help="suite name[@version] (default: synthetic, or the demo until it exists)")
    what.add_argument("--attributes", nargs="+", metavar="NAME",
                      help="only these attributes of the suite (`all`: every one; default: the suite's default "
                           "selection, else all)")
    what.add_argument("--limit", type=positive_int, metavar="N",
                      help="only the first N images; the result is marked NOT FOR REPORTING")
    what.add_argument("--profile", metavar="NAME", help="a profile of the suite (e.g. tiny: small models, for CI)")
    _data_arguments(run.add_argument_group("data"))
    how = run.add_argument_group("where and how")
    how.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    how.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for run folders (default: %(default)s)")
    how.add_argument("--fresh", action="store_true", help="recompute every stage instead of using the cache")
    execution_arguments(run.add_argument_group("speed (recorded in the results and part of the cache keys)"))
    _executor_arguments(run.add_argument_group("scale-out (docs/scale-out.md)"))
    out = run.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the results JSON on stdout instead of a summary")
    out.add_argument("--gate", action="store_true",
                     help="exit 1 when a known answer fails (paper claims are reported, never fail a run)")


def _executor_arguments(p) -> None:
    p.add_argument("--executor", choices=("inline", "local", "slurm"), default=None,
                   help="who computes the units: inline (this process; the default), local worker processes, or "
                        "SLURM jobs (submitit)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="jobs in flight (default: 2 local workers, one per GPU when there are several; 8 SLURM jobs)")
    p.add_argument("--executor-config", type=Path, metavar="FILE", help="a YAML executor profile (docs/scale-out.md)")
    p.add_argument("--max-tries", type=positive_int, metavar="N", help="jobs a unit may lose before the run stops (3)")
    p.add_argument("--slurm-partition", metavar="NAME")
    p.add_argument("--slurm-account", metavar="NAME")
    p.add_argument("--slurm-time-min", type=positive_int, metavar="MIN", help="time limit of each job (240)")
    p.add_argument("--slurm-gpus-per-job", type=int, metavar="N", help="GPUs of each job (1)")


def _add_ls(sub) -> None:
    ls = sub.add_parser("ls", help="list suites, attributes, metrics and models with their versions")
    ls.add_argument("--json", action="store_true", help="machine-readable output")


def _add_validate(sub) -> None:
    validate = sub.add_parser("validate", help="resolve and check a suite without computing; lists every problem",
                              formatter_class=_FMT, epilog="exit code 2 when any problem is an error")
    _suite_arguments(validate, required=True)
    validate.add_argument("--attributes", nargs="+", metavar="NAME", help="check what these attributes need")
    _data_arguments(validate)
    validate.add_argument("--device", default="auto", help="the device the run would use (default: %(default)s)")
    validate.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the output folder the run would use")
    validate.add_argument("--json", action="store_true", help="machine-readable output")


def _add_fetch(sub) -> None:
    fetch = sub.add_parser("fetch", help="download and verify weights (the only command that downloads)",
                           formatter_class=_FMT,
                           epilog="examples:\n  python run_all.py fetch --suite paper-table\n"
                                  "  python run_all.py fetch clip-vit-b16-openai@1")
    fetch.add_argument("models", nargs="*", metavar="MODEL", help="model manifests (name[@version]) to fetch")
    _suite_arguments(fetch, required=False)
    fetch.add_argument("--attributes", nargs="+", metavar="NAME",
                       help="with --suite: the weights a run of these attributes needs (default: the suite's "
                            "default attributes; `all` for every one)")


def _add_lock(sub) -> None:
    lock = sub.add_parser("lock", help="record digests that are not yet pinned (data and fetched weights)")
    _suite_arguments(lock, required=True)
    _data_arguments(lock)
    lock.add_argument("--relock", action="store_true",
                      help="replace digests the lock file recorded (never those a manifest pins) with those of these "
                           "files, after the same decode, size and mode checks as `run`")


def _add_report(sub) -> None:
    report = sub.add_parser("report", help="regenerate tables, figures and HTML of a run folder")
    report.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder (holds results.json)")


def _add_figures(sub) -> None:
    figures = sub.add_parser("figures", help="the blog's figures (5-9) and Table 2 from a finished run",
                             formatter_class=_FMT, epilog=FIGURES_EPILOG)
    figures.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (holds results.json)")
    figures.add_argument("--out", type=Path, metavar="DIR", help="where to write them (default: RUN_DIR/blog)")
    figures.add_argument("--format", choices=("png", "pdf", "svg"), default="png",
                         help="png, or vector pdf/svg (default: %(default)s)")


def _add_compare(sub) -> None:
    compare = sub.add_parser("compare", help="a table of the differences between two runs")
    compare.add_argument("a", type=Path, metavar="A", help="run folder A (the baseline)")
    compare.add_argument("b", type=Path, metavar="B", help="run folder B")
    compare.add_argument("--json", action="store_true", help="machine-readable output")


def _add_bias(sub) -> None:
    bias = sub.add_parser("bias", help="a run's metrics by CelebA attribute group (Male, Young, ...), with CIs and N",
                          formatter_class=_FMT, epilog=BIAS_EXAMPLES)
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


def _add_baseline(sub) -> None:
    baseline = sub.add_parser("baseline", help="the CI regression baseline: create it from reruns, or check a run")
    bsub = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=_Parser, required=True)
    create = bsub.add_parser("create", help="run a suite N times from scratch (no cache) and write its baseline")
    _suite_arguments(create, required=True)
    _data_arguments(create)
    create.add_argument("--runs", type=positive_int, default=2, help="reruns to measure the spread (default 2)")
    create.add_argument("--from-runs", nargs="+", type=Path, metavar="DIR",
                        help="make it from these run folders instead of running")
    create.add_argument("--device", default="cpu", help="device of the runs (default: %(default)s)")
    create.add_argument("--out", type=Path, required=True, help="the baseline JSON to write")
    create.add_argument("--overwrite", action="store_true", help="replace an existing baseline (never silently)")
    create.add_argument("--runs-dir", type=Path, default=DEFAULT_OUT, help="where the run folders go")
    check = bsub.add_parser("check", help="exit 1 when a score of the run left its baseline tolerance")
    check.add_argument("run_dir", type=Path, metavar="DIR", help="a run folder (holds results.json)")
    check.add_argument("--baseline", type=Path, required=True, help="the baseline JSON")


def _add_rehearse(sub) -> None:
    rehearse = sub.add_parser(
        "rehearse", help="the real journey (fetch, validate, run) against forged weights served on 127.0.0.1",
        formatter_class=_FMT, epilog="examples:\n  python run_all.py rehearse --suite paper-table\n"
                                     "  python run_all.py rehearse --suite ldm --keep /tmp/rehearsal --device cuda\n"
                                     "exit codes: 0 every stage ran and the run folder is complete · 2 otherwise")
    rehearse.add_argument("--suite", required=True, help="paper-table, official-checkpoints, ldm, ablation-ft, "
                                                         "lsun-church-released or lsun-bedroom-released")
    rehearse.add_argument("--device", default="cpu", help="device of the smoke run (default: %(default)s)")
    rehearse.add_argument("--keep", type=Path, metavar="DIR",
                          help="work in DIR and keep it (forgeries, manifests, logs, the run folder)")
    rehearse.add_argument("--attributes", nargs="+", metavar="NAME",
                          help="attributes of the smoke run (default: smiling; church-gothic, bedroom-hotel "
                               "for the LSUN suites)")
    rehearse.add_argument("--seed", type=int, default=0, help="seed of the forgeries (default: %(default)s)")


BENCH_EXAMPLES = """\
examples:
  python run_all.py bench --suite synthetic --profile quick              # seconds, on the CPU
  python run_all.py bench --suite paper-table --device cpu --json        # full-size units, each timed once
  python run_all.py bench --suite paper-table --device cuda --precision bf16 --compile --out bench.json

Builds the suite's architectures (random weights where the real ones would be fetched: nothing is downloaded),
times each unit after a warm-up, counts its FLOPs (torch FlopCounterMode) and projects the suite's wall time
from its own unit counts. exit codes: 0 ok · 2 bad input (unknown suite, a GPU-only option on the CPU)
"""


def _add_bench(sub) -> None:
    bench = sub.add_parser("bench", help="time and count a suite's units on a device; project its wall time",
                           formatter_class=_FMT, epilog=BENCH_EXAMPLES)
    _suite_arguments(bench, required=True)
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    fast_path_arguments(bench)
    bench.add_argument("--peak-tflops", type=float, metavar="X",
                       help="the device's peak TFLOP/s for its arithmetic (default: the datasheet table; "
                            "unknown on a CPU)")
    bench.add_argument("--batch", type=positive_int, metavar="N", help="images per unit call (default: 8 on CUDA; "
                                                                       "on a CPU 1 at full size, else 8)")
    bench.add_argument("--warmup", type=int, metavar="N", help="untimed calls before timing each unit")
    bench.add_argument("--repeats", type=positive_int, metavar="N", help="timed calls per unit (the median counts)")
    bench.add_argument("--units", nargs="+", metavar="NAME",
                       help="time only these units (e.g. invert_step edit_step); no projection unless it has all")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument("--out", type=Path, metavar="FILE",
                       help="also write the JSON report to FILE (rewritten after every unit, marked complete: false "
                            "until the end, so a run cut short keeps what it measured)")


def execution_arguments(p) -> None:
    """How a run computes: batching and the fast-path options (`models.FastPath`); the default is the authors'
    arithmetic, strict fp32 with TF32 off."""
    p.add_argument("--no-attribute-batching", dest="attribute_batching", action="store_false", default=None,
                   help="train and edit one attribute at a time, with the reference trajectory cached at inversion "
                        "(default: the suite's `attribute_batching`, on unless the manifest says otherwise)")
    p.add_argument("--batch-size", type=positive_int, metavar="N",
                   help="UNet rows per batch for inversion and editing (default: from free GPU memory; on the CPU "
                        "8 for inversion, all rows for editing)")
    fast_path_arguments(p)


def fast_path_arguments(p) -> None:
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: autocast over the UNet, f_t and CLIP, f_t weights and optimiser in fp32 (default: fp32)")
    p.add_argument("--tf32", choices=["off", "torch-default", "on"], default="off",
                   help="TF32 matmuls/convolutions on CUDA: off (strict fp32, default), torch-default (cuDNN "
                        "convolutions in TF32: what runs did before this option), on (GPU only)")
    p.add_argument("--channels-last", action="store_true", help="UNet in NHWC memory layout")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet's encode and decode")
    p.add_argument("--cuda-graphs", action="store_true", help="CUDA graphs via compile mode reduce-overhead "
                                                               "(GPU only; needs --compile)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick its fastest kernels (GPU only)")


def fast_path_options(args) -> dict:
    """The parsed fast-path flags as `models.FastPath` fields."""
    return {"precision": args.precision, "tf32": args.tf32, "channels_last": args.channels_last,
            "compile": args.compile, "cuda_graphs": args.cuda_graphs, "cudnn_benchmark": args.cudnn_benchmark}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


def _suite_arguments(p, *, required: bool) -> None:
    p.add_argument("--suite", required=required, help="suite name[@version]")
    p.add_argument("--profile", metavar="NAME", help="a profile of the suite (e.g. tiny)")


def _data_arguments(p) -> None:
    p.add_argument("--data", metavar="PATH", help="the test images: a folder, zip or LMDB (docs/data.md)")
    p.add_argument("--train-data", metavar="PATH", help="the training images, when another dataset")
