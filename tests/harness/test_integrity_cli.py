"""Every refusal exits 2 with a fix that works, exit 1 only ever means a failed gate, and no path leaves its root.

In-process through `benchmark.cli.main` (one subprocess, for a real write failure): `fetch MODEL`, devices in
`run` and `validate` alike, an unwritable cache, full disks, bugs (exit 3), damaged run folders, paths that escape
the run folder, staging folders of killed runs, `bias` on images that are not CelebA's, and `baseline create` from
runs of another suite.
"""

from __future__ import annotations

import errno
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from benchmark.cli import main
from benchmark.core.paths import MANIFESTS_DIR, REPO_ROOT

TINY = ["--suite", "paper-table", "--profile", "tiny"]
SMILING_FT = "smiling_LC_CelebA_HQ_t999_ninv40_ngen40_0.pth"


@pytest.fixture(autouse=True)
def _private(tmp_path, monkeypatch):
    monkeypatch.setenv("ASYRP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ASYRP_LOCK", str(tmp_path / "lock.json"))
    monkeypatch.setenv("ASYRP_WEIGHTS", str(tmp_path / "weights"))


def _standin() -> None:
    """Register the stand-in code suite `standin` (fast: 6 tiny images, a pixel-shift 'method')."""
    from benchmark.plan.suite import CODE_SUITES

    if "standin" not in CODE_SUITES:
        import harness_cli_standin  # noqa: F401 - registers it


def _run_standin(out: Path, *extra: str) -> Path:
    _standin()
    assert main(["run", "--suite", "standin", "--out", str(out), *extra]) == 0
    return max((out / "standin").iterdir())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One finished stand-in run folder; tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASYRP_CACHE", str(root / "cache"))
        return _run_standin(root / "runs")


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# -- fetch MODEL[@V] ----------------------------------------------------------------------------------------------

def test_fetch_of_named_models_shipped_present_and_downloaded(tmp_path, fixtures, monkeypatch, capsys):
    src = fixtures / "asyrp_official" / "checkpoints"
    (tmp_path / "weights" / "asyrp-ft-smiling@1").mkdir(parents=True)
    shutil.copyfile(src / SMILING_FT, tmp_path / "weights" / "asyrp-ft-smiling@1" / SMILING_FT)
    assert main(["fetch", "synthetic-ddpm@1", "asyrp-ft-smiling@1"]) == 0  # shipped, and already on disk
    assert "1 file(s) present and verified" in capsys.readouterr().out
    # a URL model that is not on disk: downloaded from (a local stand-in for) its pinned URL, then verified
    tree = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, tree, ignore=shutil.ignore_patterns("lock.json"))
    monkeypatch.setenv("ASYRP_MANIFESTS", str(tree))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(src))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = tree / "models" / "asyrp-ft-sad.yaml"
        doc = yaml.safe_load(path.read_text())
        f = doc["source"]["files"][0]
        f["url"] = f"http://127.0.0.1:{server.server_port}/{f['path']}"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        assert main(["fetch", "asyrp-ft-sad"]) == 0
    finally:
        server.shutdown()
    assert (tmp_path / "weights" / "asyrp-ft-sad@1" / f["path"]).is_file()
    assert main(["fetch", "asyrp-ft-smilng@1"]) == 2
    assert "Did you mean: asyrp-ft-smiling@1" in capsys.readouterr().err


# -- devices: one rule in run and validate ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("device", ["gpu", "cuda:7", "mps", "meta"])
def test_a_device_outside_the_accepted_list_is_refused_in_run_and_validate(command, device, tmp_path, capsys):
    import torch

    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = tmp_path / "new" / "runs"
    assert main([command, *TINY, "--device", device, "--out", str(out)]) == 2
    said = capsys.readouterr()
    text = said.out + said.err
    assert "Traceback" not in text and "fix:" in text
    if device == "cuda:7":
        assert "torch sees no CUDA" in text or "does not exist" in text
    else:
        assert f"device {device!r} is not supported" in text and "auto, cpu, cuda, cuda:N" in text
    assert not (tmp_path / "new").exists(), "bad input leaves no empty --out behind"
    assert not list((tmp_path / "cache").rglob("*.lock")) and not list(tmp_path.rglob("results.json"))


def test_an_unwritable_cache_is_refused_by_validate_and_run_alike(tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setenv("ASYRP_CACHE", str(tmp_path / "afile" / "cache"))
    assert main(["validate", *TINY, "--device", "cpu", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert [p["code"] for p in report["problems"] if p["severity"] == "error"] == ["cache-not-writable"]
    assert "ASYRP_CACHE" in report["problems"][0]["fix"]
    assert main(["run", *TINY, "--device", "cpu", "--out", str(tmp_path / "runs")]) == 2
    assert "the cache folder" in capsys.readouterr().err and not (tmp_path / "runs").exists()


# -- exit codes: 2 for what the user fixes, 3 for a bug, 1 only for a gate ---------------------------------------------

def test_an_unexpected_exception_is_a_bug_with_exit_3_and_a_saved_traceback(tmp_path, monkeypatch, capsys):
    import benchmark.plan.suite

    def broken(_registry):
        raise RuntimeError("boom")

    monkeypatch.setattr(benchmark.plan.suite, "catalogue", broken)
    assert main(["ls"]) == 3
    err = capsys.readouterr().err
    assert "this is a bug in asyrp-bench" in err and "RuntimeError: boom" in err
    logs = list((tmp_path / "cache" / "logs").glob("asyrp-bench-crash-*.txt"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "command: run_all.py ls" in logs[0].read_text() and "raise RuntimeError" in logs[0].read_text()


def test_a_full_disk_under_the_cache_exits_2(tmp_path, monkeypatch, capsys):
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args, **kwargs):  # what safetensors raises on ENOSPC: its own type, the OS error in its text
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    _standin()
    assert main(["run", "--suite", "standin", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the stage cache" in err and "No space left on device" in err and "ASYRP_CACHE" in err


def test_a_full_disk_under_out_exits_2_and_leaves_no_staging_folder(tmp_path, monkeypatch, capsys):
    import benchmark.run.pipeline

    def full(folder, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "results.json"))

    monkeypatch.setattr(benchmark.run.pipeline, "write_results", full)
    _standin()
    assert main(["run", "--suite", "standin", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "results.json" in err and "--out" in err
    assert not list((tmp_path / "runs").rglob("*.partial*"))


@pytest.mark.slow
def test_a_real_write_failure_exits_2(tmp_path):
    """A file-size limit makes every large write fail for real (EFBIG), as a full disk would (ENOSPC)."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    env = {**os.environ, "ASYRP_CACHE": str(tmp_path / "cache"), "TQDM_DISABLE": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "harness_cli_standin.py"), "run", "--suite",
                           "standin", "--out", str(tmp_path / "runs")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=240, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "File too large" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr


def test_baseline_check_with_a_file_that_is_not_a_baseline(finished_run, capsys):
    assert main(["baseline", "check", str(finished_run), "--baseline", str(finished_run / "results.json")]) == 2
    err = capsys.readouterr().err
    assert "is not a baseline file" in err and "baseline create" in err


def test_report_of_a_run_folder_with_a_missing_png_or_garbled_rows(finished_run, tmp_path, capsys):
    missing = _copy(finished_run, tmp_path / "missing")
    next((missing / "images").rglob("*.png")).unlink()
    assert main(["report", str(missing)]) == 2
    assert "is missing from the run folder" in capsys.readouterr().err
    garbled = _copy(finished_run, tmp_path / "garbled")
    with open(garbled / "per_image.jsonl", "a") as f:
        f.write('{"attribute": "smiling", "metric"\n')
    assert main(["report", str(garbled)]) == 2
    err = capsys.readouterr().err
    assert "per_image.jsonl is damaged: line" in err and "fix:" in err


# -- paths stay inside the run folder --------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["../../outside.png", "absolute"])
def test_report_refuses_a_grid_image_outside_the_run_folder(where, finished_run, tmp_path, capsys):
    from PIL import Image

    run = _copy(finished_run, tmp_path / "received" / "run")
    outside = tmp_path / "outside.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(outside)
    results = json.loads((run / "results.json").read_text())
    first = next(iter(results["grid_images"]))
    results["grid_images"][first]["original"] = str(outside) if where == "absolute" else where
    (run / "results.json").write_text(json.dumps(results))
    before = (run / "report" / "index.html").read_bytes()
    assert main(["report", str(run)]) == 2
    assert "the path escapes the run folder" in capsys.readouterr().err
    assert (run / "report" / "index.html").read_bytes() == before, "the published report is left as it was"


# -- staging folders of killed runs -------------------------------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_next_run_removes_dead_staging_folders_and_commands_refuse_them(finished_run, tmp_path, capsys):
    out = tmp_path / "runs"
    run = _copy(finished_run, out / "standin" / finished_run.name)
    host = socket.gethostname()
    dead = _copy(run, run.with_name(f".{run.name}-2.partial-{_dead_pid()}@{host}"))
    live = _copy(run, run.with_name(f".{run.name}-3.partial-{os.getpid()}@{host}"))
    other_host = _copy(run, run.with_name(f".{run.name}-4.partial-{_dead_pid()}@not-{host}"))
    old_style = _copy(run, run.with_name(f".{run.name}-5.partial"))
    for staging in (dead, old_style):
        for args in (["report", str(staging)], ["compare", str(run), str(staging)],
                     ["bias", str(staging), "--by", "Male", "--attributes-file", str(tmp_path / "none.txt")],
                     ["baseline", "check", str(staging), "--baseline", str(tmp_path / "none.json")]):
            assert main(args) == 2, args
            assert "staging folder of a run that did not finish" in capsys.readouterr().err
    _run_standin(out)
    assert not dead.exists(), "a dead process's staging folder is removed by the next run into the same --out"
    assert live.exists() and other_host.exists() and old_style.exists(), "only provably dead ones are removed"


# -- bias and baseline: fixes that lead somewhere ---------------------------------------------------------------------

def test_bias_on_images_that_are_not_celeba_does_not_repeat_the_mapping_fix(finished_run, fixtures, capsys):
    anno = fixtures / "celebahq" / "CelebAMask-HQ-attribute-anno.txt"
    mapping = fixtures / "celebahq" / "CelebA-HQ-to-CelebA-mapping.noheader.txt"
    for extra in ([], ["--mapping-file", str(mapping)]):
        assert main(["bias", str(finished_run), "--by", "Male", "--attributes-file", str(anno), *extra]) == 2
        err = capsys.readouterr().err
        assert "are not CelebA images" in err and "pass --mapping-file" not in err


def test_baseline_create_refuses_runs_of_another_suite_or_profile(finished_run, tmp_path, capsys):
    second = _copy(finished_run, tmp_path / "second")
    args = ["baseline", "create", "--from-runs", str(finished_run), str(second), "--out", str(tmp_path / "b.json")]
    assert main([*args, "--suite", "synthetic", "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert "is a run of standin@1" in err and "--suite standin@1" in err
    assert not (tmp_path / "b.json").exists()
    assert main([*args, "--suite", "standin"]) == 0 and (tmp_path / "b.json").is_file()
