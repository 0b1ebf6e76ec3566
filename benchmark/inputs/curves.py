"""The LPIPS curves a suite picks t_edit and t_boost from (`t_select`), read and digested before any compute.

The curves are either a repository folder (`t_select.curves`, e.g. the ones `benchmark.plan.lpips_curves` computes
for a latent model) or the files of a model manifest (`t_select.tables`, e.g. the authors' released tables at their
commit, fetched and digest-checked like weights). A missing curve file is a setup problem like missing weights: it
stops `validate` and `run` alike with the command that brings or computes the curves.
"""

from __future__ import annotations

from benchmark.core.errors import DataError
from benchmark.core.hashing import sha256_file
from benchmark.core.paths import REPO_ROOT, safe_join
from benchmark.inputs.fetch import fetch_command, model_dir
from benchmark.inputs.manifests import ResolvedSuite


def load_t_select_curves(resolved: ResolvedSuite):
    """(curves, {file name: sha256}) of the suite's `t_select`, or None when the suite sets t_* by hand."""
    sel = resolved.suite.t_select
    if sel is None:
        return None
    import models

    if sel.tables is not None:
        tables = resolved.t_select_tables
        folder = model_dir(tables.manifest)
        fix = f"run `{fetch_command([tables.ref])}` (on a machine with internet)"
    else:
        folder = safe_join(REPO_ROOT, sel.curves)
        fix = (f"compute them on a GPU machine: `python -m benchmark.plan.lpips_curves --model "
               f"{resolved.base_model.ref} --data PATH --out {sel.curves} --prefix {sel.prefix}` "
               "(docs/models.md, latent diffusion), or run the suite's `tiny` profile")
    try:
        curves = models.LpipsCurves.load(folder, sel.prefix)
    except DataError as e:
        raise DataError(f"suite {resolved.ref} picks t_edit / t_boost from the LPIPS curves of "
                        f"{resolved.base_model.ref}, which are not there ({e.message})", fix=fix) from None
    digests = {p.name: sha256_file(p) for p in sorted(folder.glob(f"{sel.prefix}_LPIPS_distance_*.tsv"))}
    return curves, digests
