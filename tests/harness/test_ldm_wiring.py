"""The latent diffusion suite's wiring in the harness: its model manifest and loader offline, t_edit / t_boost
from the LPIPS curves and the loss CLIP's text cosine, its tiny profile, and the curve command's refusals."""

import pytest
import torch

import models as M
from benchmark.core.errors import DataError, MissingWeightsError


def test_real_ldm_manifest_loads_offline_only_with_the_fetch_command(tmp_path):
    from benchmark.inputs.manifests import ManifestRegistry
    from benchmark.plan.loaders import LOADERS

    manifest = ManifestRegistry().get("model", "ldm-celebahq-256@1").manifest
    assert manifest.loader == "diffusers-ldm" and manifest.loader_args["scaling_factor"] == 1.0
    with pytest.raises(MissingWeightsError) as e:
        LOADERS.get("diffusers-ldm")(manifest, device="cpu", weights_root=tmp_path)
    assert "python run_all.py fetch ldm-celebahq-256@1" in e.value.fix


def test_suite_t_select_uses_the_curves_and_the_text_cosine(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from benchmark.inputs import curves as curve_files
    from benchmark.inputs.manifests import TSelect
    from benchmark.plan.planner import selected_t

    M.LpipsCurves(x={0: 0.1, 140: 1.25}, x0t={0: 0.0, 560: 0.31}, x_std={0: 0.0, 140: 0.1},
                  x0t_std={0: 0.0, 560: 0.1}).save(tmp_path / "curves", "toy")
    monkeypatch.setattr(curve_files, "REPO_ROOT", tmp_path)
    suite = SimpleNamespace(t_select=TSelect(curves="curves", prefix="toy"))
    resolved = SimpleNamespace(ref="ldm@1", suite=suite, base_model=SimpleNamespace(ref="ldm-celebahq-256@1"))
    curves = curve_files.load_t_select_curves(resolved)
    chosen = selected_t(suite.t_select, curves, SimpleNamespace(text_cosine=0.9))
    assert (chosen["t_edit"], chosen["t_boost"]) == (560, 140)
    assert chosen["t_select"]["text_cosine"] == 0.9 and len(chosen["t_select"]["sha256"]) == 4

    resolved.suite = SimpleNamespace(t_select=TSelect(curves="absent", prefix="toy"))
    with pytest.raises(DataError, match="not there") as e:
        curve_files.load_t_select_curves(resolved)
    assert "python -m benchmark.plan.lpips_curves --model ldm-celebahq-256@1" in e.value.fix


def test_ldm_suite_resolves_with_its_tiny_profile():
    from benchmark.inputs.manifests import ManifestRegistry, resolve_suite, suite_with_profile
    from benchmark.plan.request import known_metric_names

    registry = ManifestRegistry()
    full = registry.get("suite", "ldm@1").manifest
    assert full.t_select is not None and full.requires == "cuda"
    tiny, _ = suite_with_profile(registry.get("suite", "ldm@1"), "tiny")
    assert tiny.t_select is None and tiny.requires == "cpu-ok"
    resolved = resolve_suite("ldm", profile="tiny", registry=registry, known_metrics=known_metric_names())
    assert resolved.base_model.ref == "tiny-ldm-random@1"


def test_lpips_curves_command_refuses_the_cpu_and_a_missing_alexnet(tmp_path, capsys, monkeypatch):
    from benchmark.plan import lpips_curves

    args = ["--model", "tiny-ldm-random@1", "--data", str(tmp_path), "--dataset", "celebahq-fixtures@1",
            "--out", str(tmp_path / "out"), "--prefix", "tiny", "--device", "cpu"]
    assert lpips_curves.main(args) == 2
    assert "GPU" in capsys.readouterr().err
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no AlexNet there
    assert lpips_curves.main([*args, "--allow-cpu"]) == 2
    err = capsys.readouterr().err
    assert "AlexNet" in err and not (tmp_path / "out").exists()
