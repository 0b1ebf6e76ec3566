"""Executors: a run's units as jobs through submitit, with the stage cache as the only channel.

Stand-in plans (tests/executor_standins.py) keep these fast: submitit's in-process debug executor for the SLURM
path and the scheduling, its LocalExecutor (real subprocesses) for lost workers and Ctrl-C. The synthetic suite's
quick profile against an inline run is in tests/synthetic/test_scale_out_quick.py.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from pathlib import Path

import executor_standins as es
import pytest

from benchmark.cli import main
from benchmark.core.errors import BenchError
from benchmark.core.paths import REPO_ROOT
from benchmark.outputs.results import load_results
from benchmark.run.cache import StageCache, StageOutput
from benchmark.run.executors.backends import local_backend, node_local_reason, slurm_backend, slurm_parameters
from benchmark.run.executors.config import build_config, load_executor_config
from benchmark.run.executors.driver import plan_jobs
from benchmark.run.executors.graph import UnitGraph
from benchmark.run.executors.job import WorkerStopped, sigterm_stops
from benchmark.run.executors.scale import check_workers_see, scale_out
from benchmark.run.pipeline import run_plan
from benchmark.run.runner import Runner, run_environment

submitit = pytest.importorskip("submitit")


def _runner(root: Path, plan) -> Runner:
    return Runner(StageCache(root / "stages"), progress=False, environment=run_environment(plan))


def _inline(tmp_path: Path, recipe):
    plan = recipe()
    return load_results(run_plan(plan, _runner(tmp_path / "inline", plan), tmp_path / "runs"))


def _scaled(tmp_path: Path, recipe, backend, config, name="scaled"):
    plan = recipe()
    runner = _runner(tmp_path / name, plan)
    graph = scale_out(plan, runner, config, recipe, backend=backend, resume_command="python run_all.py run ...")
    return graph, runner, load_results(run_plan(plan, runner, tmp_path / "runs"))


@pytest.fixture
def worker_path(monkeypatch):
    """Local workers are fresh interpreters: they import the checkout and the stand-ins from here."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]))


# -- bad input: exit 2 before anything is submitted -------------------------------------------------------------

def _run_cli(tmp_path, *extra) -> int:
    return main(["run", "--suite", "synthetic", "--profile", "quick", "--device", "cpu", "--out",
                 str(tmp_path / "runs"), *extra])


def _nothing_submitted(cache: Path) -> bool:
    return not (cache / "executor").exists() and not (cache / "stages").exists()


def test_bad_executor_input_exits_2_before_anything_is_submitted(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ASYRP_CACHE", str(cache))
    with pytest.raises(SystemExit) as exc:
        _run_cli(tmp_path, "--executor", "local", "--workers", "0")
    assert exc.value.code == 2 and "expected a number ≥ 1" in capsys.readouterr().err

    assert _run_cli(tmp_path, "--workers", "2") == 2
    assert "--executor local" in capsys.readouterr().err

    config = tmp_path / "slurm.yaml"
    config.write_text("workers: 4\nslurm:\n  partiton: gpu\n")
    assert _run_cli(tmp_path, "--executor", "slurm", "--executor-config", str(config)) == 2
    err = capsys.readouterr().err
    assert "slurm.partiton: unknown key (did you mean partition?)" in err and "fix:" in err

    config.write_text("wokers: 4\n")
    assert _run_cli(tmp_path, "--executor-config", str(config)) == 2
    assert "wokers: unknown key (did you mean workers?)" in capsys.readouterr().err

    config.write_text("slurm: [not, a, mapping]\n")
    assert _run_cli(tmp_path, "--executor-config", str(config)) == 2
    assert "slurm" in capsys.readouterr().err
    assert _nothing_submitted(cache)


def test_slurm_without_submitit_or_sbatch_or_a_shared_cache_exits_2(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"  # pytest's tmp_path is under /tmp: private to each node of a cluster
    monkeypatch.setenv("ASYRP_CACHE", str(cache))
    assert node_local_reason(cache) is not None
    assert _run_cli(tmp_path, "--executor", "slurm") == 2
    err = capsys.readouterr().err
    assert f"the cache root {cache} is not on a filesystem the SLURM jobs can see" in err and "ASYRP_CACHE" in err

    config = tmp_path / "one-node.yaml"
    config.write_text("slurm: {assume_shared_cache: true}\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    assert _run_cli(tmp_path, "--executor", "slurm", "--executor-config", str(config)) == 2
    assert "needs SLURM's `sbatch`, which is not on PATH" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "submitit", None)  # as if it were not installed
    assert _run_cli(tmp_path, "--executor", "local") == 2
    assert "pip install submitit==1.5.4" in capsys.readouterr().err
    assert _nothing_submitted(cache)


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("executor: slurm\nworkers: 3\nslurm: {partition: a, time_min: 60, additional: {constraint: x}}\n")
    config = build_config(load_executor_config(path), {"workers": 5, "slurm_partition": "b", "executor": None})
    assert (config.executor, config.workers, config.slurm.partition, config.slurm.time_min) == ("slurm", 5, "b", 60)
    assert config.slurm.additional == {"constraint": "x"}


# -- the SLURM path, through submitit's own machinery ------------------------------------------------------------

def test_slurm_submission_is_what_the_config_asks_for(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    config = build_config({"executor": "slurm", "slurm": {
        "partition": "gpu", "account": "proj", "time_min": 90, "gpus_per_job": 1, "cpus_per_job": 8, "mem_gb": 64,
        "setup": ["module load cuda/12.4"], "additional": {"constraint": "a100"}}}, {})
    script = _make_sbatch_string(command="python -u -m submitit.core._submit JOBS", folder=tmp_path,
                                 **slurm_parameters(config))
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --time=90",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB",
                 "#SBATCH --constraint=a100", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --signal=USR2@120", "module load cuda/12.4"):
        assert line in script, f"{line!r} missing from\n{script}"
    # the same parameters pass submitit's own validation of SLURM parameters
    backend = slurm_backend(config, tmp_path / "jobs", cluster="debug")
    assert backend.slots == 8 and backend.name == "debug"


def test_slurm_path_in_submitits_debug_executor_matches_an_inline_run(tmp_path):
    log = tmp_path / "computed.log"
    recipe = es.Recipe(str(log))
    inline = _inline(tmp_path, recipe)
    inline_lines = es.computed(log)
    log.write_text("")
    config = build_config({"executor": "slurm", "workers": 2}, {})
    graph, runner, scaled = _scaled(tmp_path, recipe, slurm_backend(config, tmp_path / "jobs", cluster="debug"),
                                    config)
    assert scaled.metrics == inline.metrics
    assert sorted(es.computed(log)) == sorted(inline_lines), "each unit computed once, as inline"
    assert scaled.run.executor.name == "debug" and scaled.run.executor.workers == 2
    units = scaled.run.units
    assert {u.stage for u in units} == {"invert", "train", "edit", "measure"}
    assert len(units) == 5 + 2 + 2 * 3 + 2  # inversion chunks, trainings, edit chunks (3 per attribute), metrics
    assert all(not u.cached and u.worker in ("debug-0", "debug-1") and u.job for u in units)
    assert {u.worker for u in units if u.stage == "train"} == {"debug-0", "debug-1"}
    assert runner.stats["train"].misses == 2 and runner.stats["train"].hits == 0
    # a second run: every unit is cached, nothing is submitted
    log.write_text("")
    graph2, _, again = _scaled(tmp_path, recipe, slurm_backend(config, tmp_path / "jobs2", cluster="debug"), config,
                               name="scaled")
    assert es.computed(log) == [] and not graph2.todo() and graph2.count("cached") == 15
    assert all(u.cached and u.worker == "cache" and u.seconds == 0.0 for u in again.run.units)
    assert again.metrics == inline.metrics


def test_jobs_group_ready_units_in_dependency_order():
    graph = UnitGraph()
    for i in range(4):
        graph.add("invert", f"i{i}", f"chunk{i}", (), complete=False)
    graph.add("train", "tA", "A", ("i0", "i1"), complete=False)
    graph.add("train", "tB", "B", ("i0", "i1"), complete=False)
    graph.add("edit", "eA", "A", ("tA", "i2"), complete=False)
    graph.add("measure", "mA", "A/sdir", ("eA", "i2"), complete=False)
    jobs = plan_jobs(graph, free=2, slots=2)
    assert [[n.key for n in j] for j in jobs] == [["i0", "i1"], ["i2", "i3"]]
    for node in graph.nodes.values():
        node.state = "done" if node.stage == "invert" else node.state
    assert [[n.key for n in j] for j in plan_jobs(graph, free=1, slots=2)] == [["tA"]]
    assert [[n.key for n in j] for j in plan_jobs(graph, free=2, slots=2, train_per_job=2)] == [["tA", "tB"]]
    graph.nodes["tA"].state = "done"
    # the edit waits for its f_t; its metric unit rides in the edit's job, which goes first (a unit waits for it)
    assert [[n.key for n in j] for j in plan_jobs(graph, free=2, slots=2)] == [["eA", "mA"], ["tB"]]


def test_the_edit_settings_of_one_chunk_share_a_job():
    # an engine that batches the settings of a chunk must get them together, as an inline run batches them
    graph = UnitGraph()
    for key in ("i0", "i1", "tA", "tB"):
        graph.add("invert" if key.startswith("i") else "train", key, key, (), complete=True)
    for ft in ("tA", "tB"):
        for chunk in ("i0", "i1"):
            graph.add("edit", f"e{ft[1]}{chunk[1]}", f"{ft[1]} chunk {chunk[1]}", (ft, chunk), complete=False)
    assert [[n.key for n in j] for j in plan_jobs(graph, free=2, slots=2)] == [["eA0", "eB0"], ["eA1", "eB1"]]


def test_a_worker_without_the_drivers_environment_stops_the_run(tmp_path):
    recipe = es.Recipe(str(tmp_path / "log"))
    plan = recipe()
    runner = Runner(StageCache(tmp_path / "c" / "stages"), progress=False,
                    environment={**run_environment(plan), "torch": "0.0"})
    config = build_config({"executor": "slurm", "workers": 1}, {})
    with pytest.raises(BenchError, match="does not have the driver's environment .*torch: driver '0.0'"):
        scale_out(plan, runner, config, recipe, backend=slurm_backend(config, tmp_path / "jobs", cluster="debug"))


def test_workers_that_cannot_see_the_cache_root_stop_the_run_before_any_unit(tmp_path):
    config = build_config({"executor": "slurm"}, {})
    backend = slurm_backend(config, tmp_path / "jobs", cluster="debug")
    real_submit = backend.submit

    def elsewhere(fn, token, slot):  # the worker's filesystem lacks what the driver wrote into the cache root
        Path(token).unlink()
        return real_submit(fn, token, slot)

    backend.submit = elsewhere
    (tmp_path / "cache-root").mkdir()
    with pytest.raises(BenchError, match="workers cannot see the cache root") as exc:
        check_workers_see(backend, tmp_path / "cache-root", poll_s=0.01)
    assert "ASYRP_CACHE" in exc.value.fix


# -- real worker processes (submitit's LocalExecutor) -----------------------------------------------------------

@pytest.mark.slow
def test_lost_workers_are_replaced_and_the_scores_stay_identical(tmp_path, worker_path):
    """One worker SIGKILLed in the middle of a training (a lost node), another SIGTERMed (a preemption): each
    unit is resubmitted and the run's scores are those of an inline run."""
    inline = _inline(tmp_path, es.Recipe(str(tmp_path / "inline.log")))
    log = tmp_path / "computed.log"
    recipe = es.Recipe(str(log), marker_dir=str(tmp_path),
                       signals=(("smiling", es.SIGKILL), ("pixar", es.SIGTERM)))
    config = build_config({"executor": "local", "workers": 2, "poll_s": 0.2}, {})
    _, _, scaled = _scaled(tmp_path, recipe, local_backend(config, tmp_path / "jobs", 0), config)
    assert scaled.metrics == inline.metrics
    lines = es.computed(log)
    assert lines.count("dying smiling") == 1 and lines.count("dying pixar") == 1
    assert lines.count("train smiling") == 1 and lines.count("train pixar") == 1
    trains = {u.label: u for u in scaled.run.units if u.stage == "train"}
    assert trains["smiling"].attempts == 2 and trains["pixar"].attempts == 2
    assert len({u.worker for u in scaled.run.units}) == 2


@pytest.mark.slow
def test_a_unit_lost_too_often_stops_the_run_naming_it_its_log_and_the_resume_command(tmp_path, worker_path):
    recipe = es.Recipe(str(tmp_path / "log"), marker_dir=str(tmp_path), signals=(("smiling", es.SIGKILL),))
    config = build_config({"executor": "local", "workers": 1, "max_tries": 1, "poll_s": 0.2}, {})
    plan = recipe()
    with pytest.raises(BenchError) as exc:
        scale_out(plan, _runner(tmp_path / "c", plan), config, recipe,
                  backend=local_backend(config, tmp_path / "jobs", 0), resume_command="python run_all.py run X")
    message = exc.value.message  # the fix (the resume command) is its own field
    assert "unit train[smiling]" in message and "was lost 1 time(s)" in message
    assert str(tmp_path / "jobs") in message and message.rstrip().endswith(".err")
    assert "python run_all.py run X" in exc.value.fix


@pytest.mark.slow
def test_ctrl_c_or_sigterm_in_the_driver_cancels_the_jobs_and_a_rerun_resumes(tmp_path, worker_path):
    log = tmp_path / "computed.log"
    recipe = es.Recipe(str(log), sleep=3.0)
    config = build_config({"executor": "local", "workers": 2, "poll_s": 0.2}, {})
    backend = local_backend(config, tmp_path / "jobs", 0)
    jobs = []
    real_submit = backend.submit

    def submit(fn, arg, slot):
        job = real_submit(fn, arg, slot)
        jobs.append(job)
        if len(jobs) == 3:  # the probe, then two jobs of units: stop the driver while they run
            threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return job

    backend.submit = submit
    plan = recipe()
    with pytest.raises(KeyboardInterrupt):
        scale_out(plan, _runner(tmp_path / "c", plan), config, recipe, backend=backend)
    deadline = time.time() + 60
    while any(j.state == "RUNNING" for j in jobs) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(j.state == "RUNNING" for j in jobs), "Ctrl-C must cancel every job in flight"
    before = es.computed(log)
    _, _, resumed = _scaled(tmp_path, recipe, local_backend(config, tmp_path / "jobs2", 0), config, name="c")
    assert resumed.metrics == _inline(tmp_path, es.Recipe(str(tmp_path / "inline.log"))).metrics
    # the engine logs what it computes (inversions, trainings, edits; the metric units are not the engine's)
    engine_units = [u for u in resumed.run.units if u.stage in ("invert", "train", "edit")]
    assert len(es.computed(log)) - len(before) == sum(not u.cached for u in engine_units)


def test_sigterm_in_a_worker_stops_the_unit_like_ctrl_c():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(WorkerStopped, match="SIGTERM"), sigterm_stops():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before  # the worker's own handling ends with the job


def _holder(root, queue):
    cache = StageCache(root)

    def compute():
        queue.put("computing")
        time.sleep(60)
        return StageOutput(data={"by": "holder"})

    cache.get_or_compute("train", "f" * 64, compute)


def test_a_worker_killed_holding_a_units_lock_does_not_block_the_next(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    holder = ctx.Process(target=_holder, args=(str(tmp_path), queue))
    holder.start()
    assert queue.get(timeout=300) == "computing"  # a spawned interpreter imports torch first
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    cache = StageCache(tmp_path, lock_timeout=30)
    entry = cache.get_or_compute("train", "f" * 64, lambda: StageOutput(data={"by": "next"}))
    assert not entry.hit and entry.output.data == {"by": "next"}


@pytest.mark.slow
def test_local_workers_each_see_one_gpu_of_their_own(tmp_path):
    """With several GPUs, worker i sees GPU i (mod their number) and no other: submitit sets CUDA_VISIBLE_DEVICES
    of each job from the slot's parameters (checked in real subprocesses; no GPU is needed to read the variable)."""
    config = build_config({"executor": "local"}, {})
    backend = local_backend(config, tmp_path / "jobs", n_gpus=3)
    assert backend.slots == 3
    jobs = [backend.submit(lambda _: os.environ.get("CUDA_VISIBLE_DEVICES"), None, slot) for slot in (0, 1, 2, 4)]
    assert [job.result() for job in jobs] == ["0", "1", "2", "1"]
    cpu_only = local_backend(config, tmp_path / "jobs-cpu", n_gpus=0)
    assert cpu_only.slots == 2 and cpu_only.submit(lambda _: os.environ.get("CUDA_VISIBLE_DEVICES"), None, 0).result() == ""
