"""Attribute-batched training and batched editing in the harness: one pass for the attributes that share the
training settings, each f_t and each edit still its own cache unit (keyed with the training/editing mode), only
the missing ones computed; the sequential path as the off switch; fast-path options recorded and refused where
the device cannot run them. Runs the demo suite's real engine on its tiny random models (seconds)."""

from __future__ import annotations

import pytest
import torch

from benchmark.core.errors import BenchError
from benchmark.plan.demo import build_demo
from benchmark.plan.request import RunRequest, fast_path_for
from benchmark.run.cache import StageCache
from benchmark.run.pipeline import run_plan, run_stages
from benchmark.run.runner import Runner


def _plan(batching: bool, **request):
    plan = build_demo(RunRequest(suite="demo", device="cpu", attribute_batching=batching, **request))
    calls = {"train_many": [], "edit_many": [], "invert": []}
    engine = plan.engine
    for name in calls:
        original = getattr(engine, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            first = args[0]
            calls[_name].append([getattr(a, "name", None) or getattr(a[0], "name", None) for a in first]
                                if _name != "invert" else {"n": first.shape[0], **kwargs})
            return _original(*args, **kwargs)

        object.__setattr__(engine, name, spy)
    return plan, calls


def _run(plan, cache_root, fresh=False):
    return run_stages(plan, Runner(StageCache(cache_root), fresh=fresh, progress=False))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("batching")
    batched, b_calls = _plan(True)
    sequential, s_calls = _plan(False)
    return {"batched": (_run(batched, root / "cache"), b_calls), "sequential": (_run(sequential, root / "cache"), s_calls),
            "root": root}


def test_attributes_train_in_one_pass_each_under_its_own_key(runs):
    state, calls = runs["batched"]
    assert calls["train_many"] == [["smiling", "pixar"]]  # one pass for both (same training settings)
    keys = {name: e.key for name, e in state.ft.items()}
    assert len(set(keys.values())) == 2
    for entry in state.ft.values():
        assert entry.output.data["training"] == {"mode": "attribute-batched", "reference": "on-the-fly",
                                                 "pass": ["smiling", "pixar"]}
    # on-the-fly reference: the training inversions carry no reference trajectory, nor a reconstruction
    assert not any(k.startswith("reference.") or k == "reconstruction"
                   for e in state.train_inversions for k in e.output.tensors)
    assert calls["edit_many"] == [["smiling", "pixar"]]  # every edit setting in one batch


def test_sequential_mode_is_the_off_switch_with_its_own_keys(runs):
    batched, _ = runs["batched"]
    state, calls = runs["sequential"]
    assert calls["train_many"] == [["smiling"], ["pixar"]]
    for name, entry in state.ft.items():
        assert entry.output.data["training"]["mode"] == "sequential"
        assert entry.key != batched.ft[name].key  # what is computed changed, so the key did
    assert any(k.startswith("reference.") for e in state.train_inversions for k in e.output.tensors)
    assert calls["edit_many"] == [["smiling"], ["pixar"]]


def test_batched_and_sequential_differ_by_rounding_only(runs):
    """The demo trains at batch 4 with SGD, lr 0.5 and the L1 term, whose sign gradient can turn a 1e-7 change
    into a different step (docs/speed.md); the f_t move by far more than their differences."""
    batched, _ = runs["batched"]
    sequential, _ = runs["sequential"]
    for name in ("smiling", "pixar"):
        a, b = batched.ft[name].output.tensors, sequential.ft[name].output.tensors
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        assert diff < 1e-4, (name, diff)
        history_a = batched.ft[name].output.data["history"]["loss"]
        history_b = sequential.ft[name].output.data["history"]["loss"]
        assert history_a == pytest.approx(history_b, rel=1e-4)
    for key, entry in batched.edits.items():
        edited = entry.output.tensors["edited"].int()
        assert (edited - sequential.edits[key].output.tensors["edited"].int()).abs().max() <= 1  # uint8 rounding


def test_only_the_missing_attributes_are_batched(runs):
    root = runs["root"]
    plan, calls = _plan(True)
    first = _run(plan, root / "partial")
    pixar = first.ft["pixar"]
    import shutil

    shutil.rmtree(pixar.path)  # lose one attribute's f_t (and keep the other)
    plan, calls = _plan(True)
    second = _run(plan, root / "partial")
    assert calls["train_many"] == [["pixar"]]
    assert second.ft["smiling"].hit and not second.ft["pixar"].hit
    assert second.ft["pixar"].key == pixar.key  # the key does not depend on which attributes shared the pass
    # the edits are keyed on the f_t entries' keys, which did not change: both are cache hits
    assert calls["edit_many"] == []


def test_results_record_how_the_run_computed(tmp_path):
    plan, _ = _plan(True)
    runner = Runner(StageCache(tmp_path / "cache"), progress=False)
    from benchmark.outputs.results import load_results

    result = load_results(run_plan(plan, runner, tmp_path / "runs"))
    execution = result.run.execution
    assert execution["attribute_batching"] is True
    assert execution["fast_path"]["precision"] == "fp32" and execution["fast_path"]["tf32"] == "off"
    assert execution["fast_path"]["flags"]["cudnn.allow_tf32"] is False  # strict fp32, set explicitly
    assert execution["trained"]["smiling"]["mode"] == "attribute-batched"


def test_gpu_only_options_refuse_on_the_cpu():
    for options in ({"tf32": "on"}, {"compile": True, "cuda_graphs": True}, {"cudnn_benchmark": True}):
        with pytest.raises(BenchError) as err:
            fast_path_for(RunRequest(suite="demo", fast_path=options), torch.device("cpu"))
        assert "CUDA" in err.value.message and err.value.fix
    with pytest.raises(BenchError, match="compile"):
        fast_path_for(RunRequest(suite="demo", fast_path={"cuda_graphs": True}), torch.device("cpu"))
    assert fast_path_for(RunRequest(suite="demo", fast_path={"precision": "bf16"}), torch.device("cpu")).precision \
        == "bf16"


def test_fast_path_is_part_of_the_keys(runs, tmp_path):
    batched, _ = runs["batched"]
    plan, _ = _plan(True, fast_path={"channels_last": True})
    state = _run(plan, tmp_path / "cache")
    assert state.ft["smiling"].key != batched.ft["smiling"].key
    assert state.test_inversions[0].key != batched.test_inversions[0].key


def test_cli_refuses_a_gpu_option_on_the_cpu(capsys, tmp_path):
    from benchmark.cli import main

    code = main(["run", "--suite", "demo", "--device", "cpu", "--tf32", "on", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "tf32='on'" in err and "fix:" in err
