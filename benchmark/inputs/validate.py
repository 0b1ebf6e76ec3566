"""`validate`: resolve a suite and check everything a run needs, without computing anything.

Every problem is collected (never just the first) as a `Problem` record with a code, the subject it concerns, a
message and the fix; the CLI prints them (or `--json`) and exits 2 when any is an error. The planner runs the
same checks and raises the first error (`ValidationReport.raise_first`), so `validate` and `run` can never
disagree. Checks, cheapest first: manifests (all parse; the suite and everything it names resolves; metric,
loader and f_t names are registered; the attribute selection exists), device, output folder, cache folder,
disk space, weights (present and matching, else the `fetch` command; released f_t checkpoints that fit the base
model), the LPIPS curves a suite picks t_edit from, and the data (present, complete, digests match the manifest or
lock)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from benchmark.core.errors import BenchError, DataError, DeviceError, DigestMismatchError, ManifestError
from benchmark.core.paths import cache_dir, check_writable_dir
from benchmark.inputs.data_roots import data_root, datasets_to_read
from benchmark.inputs.fetch import free_bytes, missing_weights, weights_fix
from benchmark.inputs.lock import LockFile, lock_command
from benchmark.inputs.manifests import (
    ManifestRegistry,
    ResolutionErrors,
    ResolvedSuite,
    parse_ref,
    resolve_suite,
)
from benchmark.inputs.selection import narrow_to_selection, selected_names
from benchmark.inputs.validation_report import Problem, Severity, ValidationReport  # noqa: F401  (callers import them from here)


@dataclass(frozen=True)
class CheckRequest:
    """What a run would use, as far as the checks are concerned (the CLI's flags, or a `RunRequest`)."""

    suite: str
    profile: str | None = None
    attributes: Sequence[str] | None = None
    data_root: str | Path | None = None
    train_data_root: str | Path | None = None
    distribution: str | None = None
    weights_root: str | Path | None = None
    out_dir: str | Path | None = None
    device: str = "auto"


def validate_suite(suite: str, *, profile: str | None = None, data_root: str | Path | None = None,
                   train_data_root: str | Path | None = None, distribution: str | None = None,
                   weights_root: str | Path | None = None, out_dir: str | Path | None = None,
                   device: str = "auto", attributes: Sequence[str] | None = None, lock: LockFile | None = None,
                   registry: ManifestRegistry | None = None, known_metrics: Iterable[str] | None = None,
                   known_loaders: Iterable[str] | None = None, verify_digests: bool = True,
                   verify_data: bool | None = None) -> ValidationReport:
    """Check everything a run of `suite` needs; return all problems found (see the module docstring).

    `verify_digests` hashes the weights and the data; `verify_data=False` only checks that the data is there (the
    planner reads and verifies it right after, once)."""
    request = CheckRequest(suite, profile, attributes, data_root, train_data_root, distribution, weights_root,
                           out_dir, device)
    report = ValidationReport(suite, profile)
    registry = registry if registry is not None else ManifestRegistry()
    resolved = _check_manifests(report, request, registry, known_metrics, known_loaders)
    if resolved is None:
        return report
    if any(p.code == "attribute-unknown" for p in report.problems):
        request = replace(request, attributes=None)  # reported once; the other checks go on with every attribute
    report.resolved = resolved
    report.suite = resolved.ref
    report.manifest_digests = resolved.manifest_digests()
    _check_device(report, resolved, device)
    _check_out_dir(report, out_dir)
    _check_cache_dir(report)
    _check_disk(report, resolved, out_dir)
    report.lock = _load_lock(report, lock)
    _check_weights(report, resolved, weights_root, report.lock, verify_digests)
    _check_ft_fit(report, resolved, request.attributes, registry)
    _check_curves(report, resolved)
    _check_init_from(report, resolved)
    _check_data(report, request, resolved, verify_digests if verify_data is None else verify_data)
    return report


# -- manifests ----------------------------------------------------------------------------------------------------

def _check_manifests(report, request, registry, known_metrics, known_loaders) -> ResolvedSuite | None:
    report.checked.append("manifests")
    if registry.errors:
        report.add_error("manifest-invalid", "manifests", broken_manifests_error(registry))
    try:
        resolved = resolve_suite(request.suite, profile=request.profile, registry=registry,
                                 known_metrics=known_metrics)
    except ResolutionErrors as e:
        for p in e.problems:
            report.add_error("reference-unknown", f"suite {request.suite}", p)
        resolved = e.partial  # go on with what resolved, so one run of validate lists everything
    except BenchError as e:
        report.add_error("suite-unknown", "suite", e)
        return None
    _check_code_names(report, resolved, known_loaders)
    try:
        selected_names(resolved, request.attributes, profile=request.profile,
                       without_profile=_unprofiled_attributes(registry, request.suite))
    except BenchError as e:
        report.add_error("attribute-unknown", f"suite {resolved.ref}", e)
        return resolved
    # Only the selected attributes' released f_t (and LPIPS tables) need to be on disk.
    return narrow_to_selection(resolved, request.attributes)


def _unprofiled_attributes(registry, suite: str) -> list[str]:
    """The attribute names of the suite's own manifest, before any profile narrows them."""
    try:
        return [parse_ref(a)[0] for a in registry.get("suite", suite).manifest.attributes]
    except BenchError:
        return []


def broken_manifests_error(registry: ManifestRegistry) -> ManifestError:
    """A manifest that does not parse stops every run: the pinned state of the suite is then unknown."""
    errors = registry.errors
    listed = "\n".join(f"  - {e.message}" for e in errors[:5])
    more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
    return ManifestError(f"{len(errors)} manifest(s) under {registry.root} do not load:\n{listed}{more}",
                         fix=errors[0].fix or "fix or remove the file (`python run_all.py validate` lists every "
                                              "problem)")


def _check_code_names(report, resolved: ResolvedSuite, known_loaders) -> None:
    """Loader and f_t names live in code registries: an unknown one fails now, with did-you-mean."""
    from benchmark.core.registry import unknown_name_message

    if known_loaders is not None:
        loaders = sorted(known_loaders)
        for r in (resolved.base_model, resolved.clip_loss_model):
            if r is not None and r.manifest.loader not in loaders:
                report.add("loader-unknown", f"model {r.ref}", unknown_name_message(
                    "model loader", r.manifest.loader, loaders), "use a registered loader (docs/manifests.md)")
    try:
        check_ft_names(resolved.suite)
    except BenchError as e:
        report.add_error("ft-unknown", f"suite {resolved.ref}", e)


def check_ft_names(suite) -> None:
    """Every f_t a suite names is in the f_t registry (did-you-mean); unchecked without the method package."""
    try:
        import models
    except ImportError:
        return
    for name in [suite.ft.name, *(v.name for v in suite.ft_variants or [])]:
        models.FT_REGISTRY.get(name)


# -- device, output, disk -----------------------------------------------------------------------------------------

def device_for_suite(suite, requested: str):
    """The run's device. A suite that needs CUDA refuses the CPU (it would take days, not hours); an unknown or
    absent device is refused with the list of what is accepted."""
    from benchmark.core.runtime import resolve_device

    device = resolve_device(requested)
    if suite.requires == "cuda" and device.type != "cuda":
        tiny = ", or `--profile tiny` for a CPU wiring check" if "tiny" in suite.profiles else ""
        import torch

        why = ("this machine has none (torch sees no CUDA)" if not torch.cuda.is_available()
               else f"--device {requested} asks for the CPU")
        raise DeviceError(f"suite {suite.ref} needs a CUDA GPU and {why}", fix=f"run it on a GPU machine{tiny}")
    return device


def _check_device(report, resolved: ResolvedSuite, requested: str) -> None:
    report.checked.append("device")
    try:
        report.device = device_for_suite(resolved.suite, requested)
    except DeviceError as e:
        report.add_error("device-no-cuda" if "CUDA" in e.message else "device-unknown",
                         f"suite {resolved.ref}", e)


def _check_out_dir(report, out_dir) -> None:
    report.checked.append("output folder")
    if out_dir is None:
        return
    try:
        check_writable_dir(out_dir)
    except BenchError as e:
        report.add_error("out-not-writable", str(out_dir), e)


def _check_cache_dir(report) -> None:
    """The stage cache is written from the first stage on: an unwritable one stops the run now, not after setup."""
    report.checked.append("cache folder")
    try:
        check_writable_dir(cache_dir(), what="the cache folder",
                           fix="set ASYRP_CACHE to a folder you can write to, with free space (it is created if "
                               "missing)")
    except BenchError as e:
        report.add_error("cache-not-writable", str(cache_dir()), e)


def _check_disk(report, resolved: ResolvedSuite, out_dir) -> None:
    report.checked.append("disk")
    need = int(resolved.suite.resources.disk_gb * 1e9)
    for r in resolved.models().values():
        need += sum(f.size or 0 for f in r.manifest.files)
    where = Path(out_dir) if out_dir else cache_dir()
    free = free_bytes(where)
    if free < need:
        report.add_error("disk-space", str(where), BenchError(
            f"{free / 1e9:.1f} GB free at {where}, the suite needs about {need / 1e9:.1f} GB (weights, cache and "
            "outputs)", fix="free disk space or point ASYRP_CACHE / --out elsewhere"))


# -- lock, weights, curves ------------------------------------------------------------------------------------------

def _load_lock(report, lock: LockFile | None) -> LockFile | None:
    try:
        return lock if lock is not None else LockFile.load()
    except BenchError as e:
        report.add_error("lock-invalid", "lock file", e)
        return None


def _check_weights(report, resolved: ResolvedSuite, root, lock, verify) -> None:
    report.checked.append("weights")
    weights = missing_weights(resolved, root=Path(root) if root else None, lock=lock, verify=verify)
    report.weights = weights
    models = resolved.models()
    for f in weights.files:
        subject = f"model {f.model}"
        fix = weights_fix(models[f.model].manifest, f, suite=resolved.suite.name, profile=resolved.profile)
        if f.state == "missing":
            report.add("weights-missing", subject, f"{f.path} is missing", fix)
        elif f.state == "mismatch":
            report.add("weights-digest", subject, f"{f.path} has sha256 {f.actual}, expected {f.expected}", fix)
        elif f.state == "unverified":
            report.add("weights-unlocked", subject, f"{f.path} has no pinned or locked digest yet",
                       "run `python run_all.py lock --suite ...` to record it", severity="warning")
    if weights.problems:  # what `run` stops with: every missing or wrong file in one message
        listed = "; ".join(f"{f.model}: {f.path.name} {f.state}" for f in weights.problems[:6])
        from benchmark.core.errors import MissingWeightsError

        error = MissingWeightsError(f"suite {resolved.ref} needs weights that are not on disk or do not match "
                                    f"({listed})", fix=_weights_problems_fix(weights, models, resolved))
        first = next(i for i, p in enumerate(report.problems) if p.code in ("weights-missing", "weights-digest"))
        report.problems[first] = Problem(**{**report.problems[first].to_dict(), "error": error})


def _weights_problems_fix(weights, models, resolved: ResolvedSuite) -> str:
    """`fetch` brings what it can; a user-supplied file's fix says where it goes and where to get it."""
    from benchmark.inputs.user_files import is_user_supplied

    fixes = [f"run `{weights.command}` (on a machine with internet)"] if weights.command else []
    fixes += [f"{f.model}: {weights_fix(models[f.model].manifest, f, suite=resolved.suite.name, profile=resolved.profile)}"
              for f in weights.problems if is_user_supplied(models[f.model].manifest)]
    return "; ".join(fixes)


def _check_ft_fit(report, resolved: ResolvedSuite, attributes, registry) -> None:
    from benchmark.inputs.ft_fit import ft_misfit

    # suites that train their f_t in the same profile, plain ones (no f_t ablation arms) first
    trains = sorted({(bool(m.ft_variants), m.name) for m in (lm.manifest for lm in registry.all("suite"))
                     if report.profile in m.profiles and not m.ft.checkpoints})
    if (e := ft_misfit(resolved, report.weights.files, attributes, [n for _, n in trains])) is not None:
        report.add_error("ft-checkpoint-misfit", f"suite {resolved.ref}", e)


def _check_curves(report, resolved: ResolvedSuite) -> None:
    """The base model's LPIPS curves named by the suite's `t_select`: a missing file is a setup problem."""
    sel = resolved.suite.t_select
    if sel is None or resolved.base_model is None or (sel.tables is not None and resolved.t_select_tables is None):
        return  # no t_select, or tables that no selected attribute needs (or that did not resolve)
    if sel.tables is not None and report.weights is not None and any(
            f.model == resolved.t_select_tables.ref for f in report.weights.problems):
        return  # missing or wrong table files are already reported, with the `fetch` command
    from benchmark.inputs.curves import load_t_select_curves

    report.checked.append("t_select curves")
    try:
        report.curves = load_t_select_curves(resolved)
    except DataError as e:
        report.add_error("curves-missing", f"suite {resolved.ref}", e)


def _check_init_from(report, resolved: ResolvedSuite) -> None:
    """An f_t that starts from a finished run's saved f_t: the run folder and its entry must be there."""
    suite = resolved.suite
    inits = [suite.train.init_from if suite.train else None, *(v.init_from for v in suite.ft_variants or [])]
    runs = [i for i in inits if i is not None and i.run is not None]
    if not runs:
        return
    from benchmark.inputs.saved_ft import find_ft_weights

    report.checked.append("init_from runs")
    for init in runs:
        try:
            find_ft_weights(init.run, init.attribute)
        except DataError as e:
            report.add_error("init-from-missing", f"suite {resolved.ref}", e)


# -- data -----------------------------------------------------------------------------------------------------------

def _check_data(report, request: CheckRequest, resolved: ResolvedSuite, verify: bool) -> None:
    for ds, given, flag, label, dist in datasets_to_read(resolved, request.data_root, request.train_data_root,
                                                         request.attributes, request.distribution):
        report.checked.append(label)
        _warn_unpinned(report, ds, label)
        try:
            root = data_root(ds, given, flag)
        except DataError as e:
            report.add_error("data-missing", f"{label} {ds.ref}", e)
            continue
        _check_dataset(report, ds, root, dist, report.lock, verify, label,
                       lock_command(resolved.suite.name, profile=resolved.profile, flag=flag, root=root))


def _warn_unpinned(report, ds, label) -> None:
    m = ds.manifest
    if not m.pinned:
        subject = f"{label} {ds.ref}"
        report.add("dataset-unpinned", subject,
                   f"the manifest defines the membership by a rule only ({m.selection.rule}); no source available "
                   "to this project lists it, so it is taken from your copy on first use and recorded in the lock "
                   "file (docs/data.md)",
                   "with the StyleMapGAN raw images, run `python scripts/make_celebahq_manifests.py --raw PATH` to "
                   "pin it, or let the first run lock it", severity="warning")


def _check_dataset(report, ds, root, distribution, lock, verify, label, relock_command) -> None:
    from benchmark.inputs.data import read_verified

    m = ds.manifest
    subject = f"{label} {ds.ref}"
    if not verify:
        if not Path(root).exists():
            report.add_error("data-missing", subject, DataError(
                f"data for {ds.ref} not found: {root} does not exist",
                fix="pass the folder, zip or LMDB folder that holds it (docs/data.md)"))
        return
    try:
        _, _, _, _, states = read_verified(m, root, distribution=distribution, lock=lock, record=False,
                                           relock_command=relock_command)
    except DigestMismatchError as e:
        report.add_error("data-digest", subject, e)
        return
    except DataError as e:
        report.add_error("data-missing", subject, e)
        return
    unknown = [i for i, s in states.items() if s == "unknown"]
    if unknown:
        report.add("data-unlocked", subject,
                   f"{len(unknown)} of {len(states)} images have no pinned or locked digest yet (e.g. {unknown[0]})",
                   "run `python run_all.py lock --suite ...` (or any run) to record them; later runs check them",
                   severity="warning")
