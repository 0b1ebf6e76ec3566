"""The attributes of a run as the stages see them (`AttributePlan`s): settings (t_edit / t_boost by hand or by the
authors' rule), the released f_t they load, the ablation arms they expand into, and where each trained f_t starts.

- t_edit / t_boost: the attribute manifest's values; with `t_select`, the authors' rule on the base model's LPIPS
  curves with the loss CLIP's text cosine: for every attribute (`apply: all`) or only those whose manifest cites
  no t_edit (`apply: unset`, which keeps the manifest's t_boost).
- `clip_source` (training from seeded noise): the suite's `train.source.clip_source`, or an arm's.
- arms (`ft_variants`): one plan per attribute and arm, `smiling[conv]`, for the arms whose `attributes` include it.
- `init_from` (transfer learning): resolved to a file with its digest (a released f_t, a finished run's saved f_t),
  or to another plan of this run, which the pipeline trains first.
"""

from __future__ import annotations

from dataclasses import replace

from benchmark.core.errors import BenchError
from benchmark.inputs.lock import model_key
from benchmark.plan.loaders import weights_file


def attribute_plans(resolved, attributes, lock, curves, clip_loss) -> list:
    """The plans of the selected attributes (`Resolved` attribute manifests), arms and transfer sources included."""
    from benchmark.run.suite_plan import AttributePlan

    suite = resolved.suite
    plans = []
    for r in attributes:
        a = r.manifest
        settings = {"t_edit": a.t_edit, "t_boost": a.t_boost, "lambda_clip": a.lambda_clip,
                    "lambda_recon": a.lambda_recon, "lambda_recon_times_text_cosine": a.lambda_recon_times_text_cosine}
        sel = suite.t_select
        if curves is not None and (sel.apply == "all" or a.t_edit is None):
            chosen = selected_t(sel, curves, clip_loss(a.source_prompt, a.target_prompt))
            if sel.apply == "unset":
                chosen.pop("t_boost")  # cited per dataset; only the missing t_edit comes from the rule
            settings.update(chosen)
        if suite.train is not None and suite.train.source is not None and a.name not in resolved.ft_checkpoints:
            settings["clip_source"] = suite.train.source.clip_source
        plans.append(AttributePlan(a.name, r.ref, a.domain, a.source_prompt, a.target_prompt, settings,
                                   _official(resolved, a.name, lock)))
    plans = ablation_arms(plans, suite.ft_variants)
    return [_with_init(p, resolved, plans, lock) for p in plans]


def _official(resolved, name: str, lock):
    if name not in resolved.ft_checkpoints:
        return None
    ck = resolved.ft_checkpoints[name].manifest
    return str(weights_file(ck)), ck.files[0].sha256 or lock.digest(model_key(ck.ref), ck.files[0].path)


def selected_t(sel, curves, loss) -> dict:
    """t_edit and t_boost by the authors' rule on the base model's curves, with the loss CLIP's text cosine."""
    import models

    table, digests = curves
    cos = float(loss.text_cosine)
    return {"t_edit": models.select_t_edit(table.x0t, cos, sel.edit_threshold),
            "t_boost": models.select_t_boost(table.x, sel.boost_threshold),
            "t_select": {"curves": sel.curves or sel.tables, "prefix": sel.prefix, "text_cosine": cos,
                         "edit_threshold": sel.edit_threshold, "boost_threshold": sel.boost_threshold,
                         "sha256": digests}}


def ablation_arms(plans: list, variants) -> list:
    """Without `ft_variants`, the attributes as they are; with them, one plan per attribute and arm, attribute
    first (`smiling[conv]`, `smiling[transformer-pixel]`, ...), each carrying its arm's f_t and layer; an arm with
    `attributes` applies to those only, and its `clip_source` replaces the suite's."""
    if not variants:
        return plans
    from benchmark.outputs.ablation import arm_name
    from benchmark.run.suite_plan import FtChoice

    out = []
    for p in plans:
        for v in variants:
            if v.attributes and p.name not in v.attributes:
                continue
            settings = dict(p.settings)
            if v.clip_source is not None:
                settings["clip_source"] = v.clip_source
            out.append(replace(p, name=arm_name(p.name, v.key), settings=settings, ft=FtChoice(
                v.key, v.name, dict(v.options), v.optimizer, v.lr, hspace_layer=v.hspace_layer)))
    return out


def _init_spec(resolved, plan):
    """The `init_from` that applies to a plan: its arm's, else the suite's `train.init_from`."""
    if plan.official_ft is not None or resolved.suite.train is None:
        return None
    arm = next((v for v in resolved.suite.ft_variants or [] if plan.ft is not None and v.key == plan.ft.key), None)
    return (arm.init_from if arm is not None else None) or resolved.suite.train.init_from


def _with_init(plan, resolved, plans, lock):
    from benchmark.run.suite_plan import InitPlan

    init = _init_spec(resolved, plan)
    if init is None:
        return plan
    if init.kind == "released":
        manifest = resolved.init_from[init.ft].manifest
        f = manifest.files[0]
        sha = f.sha256 or lock.digest(model_key(manifest.ref), f.path)
        if sha is None:
            raise BenchError(f"{plan.name}: init_from {manifest.ref} has no pinned or locked sha256, so its weights "
                             "cannot be checked before loading", fix="run `python run_all.py lock --suite ...`")
        return replace(plan, init=InitPlan("released", init.label(), str(weights_file(manifest)), sha))
    if init.kind == "run":
        from benchmark.inputs.saved_ft import find_ft_weights

        path, sha, _ = find_ft_weights(init.run, init.attribute)
        return replace(plan, init=InitPlan("run", init.label(), str(path), sha))
    return replace(plan, init=InitPlan("this-run", init.label(),
                                       attribute=_in_run_source(plan, init, plans, resolved)))


def _in_run_source(plan, init, plans, resolved) -> str:
    """The plan name an in-run `init_from` names; it must be trained here, by another plan, from scratch."""
    from benchmark.outputs.ablation import arm_name

    name = arm_name(init.attribute, init.arm) if init.arm else init.attribute
    source = next((p for p in plans if p.name == name), None)
    if source is None or source.official_ft is not None or source.name == plan.name:
        names = [p.name for p in plans if p.official_ft is None and p.name != plan.name]
        raise BenchError(f"{plan.name}: init_from {name!r} is not an f_t this run trains (it trains {names})",
                         fix="name an attribute (and arm) the run trains, and select it with --attributes")
    source_init = _init_spec(resolved, source)
    if source_init is not None and source_init.kind == "this-run":
        raise BenchError(f"{plan.name}: init_from {name!r} itself starts from another f_t of this run",
                         fix="start from an f_t trained from scratch (chains are not supported)")
    return name
