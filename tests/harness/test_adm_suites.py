"""AFHQ-dog and METFACES: the user-supplied base-model source (never downloaded; validate and run say where the
file goes and where to get it; `lock` records its digest and later reads check it), the `adm-checkpoint` loader,
and the `afhq-dog-released` suite run end to end on the CPU with tiny stand-ins written under the real manifests'
names: a random guided-diffusion-layout checkpoint, f_t in the authors' save layout, LPIPS tables and an
AFHQ-layout folder of PNGs.

The stand-in checkpoint is made by inverting the converter's key plan on a random `UNet2DModel`, so it is in
guided-diffusion's layout but not an independent check of the conversion; that one is
tests/models/test_models_adm.py (against guided-diffusion's own `UNetModel`)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

import models as M
from benchmark.core.errors import BenchError, DigestMismatchError
from benchmark.core.hashing import sha256_file
from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.manifests import ManifestRegistry, resolve_suite
from models.adm import _RESNET_KEYS, _key_plan, adm_unet_config, build_adm_unet

TINY = {"image_size": 32, "num_channels": 32, "num_res_blocks": 1, "channel_mult": [1, 2],
        "attention_resolutions": [16], "num_head_channels": 16, "learn_sigma": True, "resblock_updown": True,
        "use_scale_shift_norm": True, "use_new_attention_order": False}
DOGS = ["dog-angry", "dog-happy", "dog-sleepy", "dog-wolf", "dog-yorkshire"]


def guided_diffusion_state(seed: int) -> tuple[dict, dict]:
    """A random tiny UNet2DModel and the same weights under guided-diffusion `UNetModel` keys (legacy qkv)."""
    config = adm_unet_config(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()})
    torch.manual_seed(seed)
    unet = build_adm_unet(config)
    with torch.no_grad():
        for p in unet.parameters():  # diffusers zero-inits nothing we rely on, but make every weight count
            p.add_(0.02 * torch.randn_like(p))
    ours, gd = unet.state_dict(), {}
    for src, dst, kind in _key_plan(config):
        if kind == "resnet":
            for old, new in _RESNET_KEYS.items():
                for param in ("weight", "bias"):
                    if f"{dst}.{new}.{param}" in ours:
                        gd[f"{src}.{old}.{param}"] = ours[f"{dst}.{new}.{param}"]
        elif kind == "attention":
            gd.update(_gd_attention(ours, src, dst, config["attention_head_dim"]))
        else:
            gd.update({f"{src}.{p}": ours[f"{dst}.{p}"] for p in ("weight", "bias")})
    return ours, gd


def _gd_attention(ours: dict, src: str, dst: str, head_dim: int) -> dict:
    w = torch.stack([ours[f"{dst}.to_{n}.weight"] for n in "qkv"])  # (3, C, C)
    b = torch.stack([ours[f"{dst}.to_{n}.bias"] for n in "qkv"])
    width = w.shape[1]
    heads = width // head_dim
    # legacy order: rows grouped by head, then (q | k | v), then channel
    qkv_w = w.reshape(3, heads, head_dim, width).transpose(0, 1).reshape(3 * width, width, 1)
    qkv_b = b.reshape(3, heads, head_dim).transpose(0, 1).reshape(3 * width)
    return {f"{src}.qkv.weight": qkv_w, f"{src}.qkv.bias": qkv_b,
            f"{src}.norm.weight": ours[f"{dst}.group_norm.weight"], f"{src}.norm.bias": ours[f"{dst}.group_norm.bias"],
            f"{src}.proj_out.weight": ours[f"{dst}.to_out.0.weight"][:, :, None],
            f"{src}.proj_out.bias": ours[f"{dst}.to_out.0.bias"]}


def _save(path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return sha256_file(path)


def _stand_in_tree(tmp_path, fixtures):
    """The manifest tree with afhq-dog-iddpm (still a user source, tiny arch inline), the dog f_t and tables and
    the AFHQ data manifest made tiny; the files are written under the real names."""
    from PIL import Image

    root, weights = tmp_path / "manifests", tmp_path / "weights"
    shutil.copytree(MANIFESTS_DIR, root)
    base_path = root / "models" / "afhq-dog-iddpm.yaml"
    base = yaml.safe_load(base_path.read_text())
    base["loader_args"]["arch"] = TINY
    base_path.write_text(yaml.safe_dump(base))
    _, gd = guided_diffusion_state(seed=5)
    _save(weights / "afhq-dog-iddpm@1" / "afhq_dog_4m.pt", gd)
    h, temb = 2 * TINY["num_channels"], 4 * TINY["num_channels"]
    for i, name in enumerate(DOGS):
        doc = yaml.safe_load((root / "models" / f"asyrp-ft-{name}.yaml").read_text())
        f = doc["source"]["files"][0]
        torch.manual_seed(i)
        f["sha256"] = _save(weights / f"asyrp-ft-{name}@1" / f["path"],
                            {"0": M.ResDeltaBlock(h, temb).state_dict(), "optimizer": {}, "scheduler": {}})
        (root / "models" / f"asyrp-ft-{name}.yaml").write_text(yaml.safe_dump(doc))
    tables = weights / "asyrp-lpips-dog@1"
    tables.mkdir(parents=True)
    for f in (fixtures / "asyrp_official" / "tables").glob("celeba_LPIPS_*.tsv"):  # arbitrary curves: wiring only
        shutil.copyfile(f, tables / f.name.replace("celeba_", "afhq_"))
    ds_path = root / "datasets" / "afhq-dog-val-first100.yaml"
    ds = yaml.safe_load(ds_path.read_text())
    ds.update(image_size=32, count=4)
    ds["distributions"]["afhq"]["image_size"] = 64
    ds_path.write_text(yaml.safe_dump(ds))
    dogs = tmp_path / "afhq" / "val" / "dog"
    dogs.mkdir(parents=True)
    for i in range(5):
        px = (torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(i)) * 255).to(torch.uint8).numpy()
        Image.fromarray(px).save(dogs / f"flickr_dog_{i:06d}.png")
    return root, weights


def test_the_adm_loader_converts_a_guided_diffusion_checkpoint_and_returns_the_eps_half(tmp_path, monkeypatch):
    from benchmark.plan.loaders import LOADERS

    ours, gd = guided_diffusion_state(seed=1)
    monkeypatch.setenv("ASYRP_LOCK", str(tmp_path / "lock.json"))
    _save(tmp_path / "w" / "afhq-dog-iddpm@1" / "afhq_dog_4m.pt", gd)
    manifest = ManifestRegistry().get("model", "afhq-dog-iddpm@1").manifest
    manifest = manifest.model_copy(update={"loader_args": {**manifest.loader_args, "arch": TINY}})
    model = LOADERS.get("adm-checkpoint")(manifest, device="cpu", weights_root=tmp_path / "w")
    assert model.name == "afhq-dog-iddpm@1" and model.image_size == 32
    assert torch.equal(model.alphas_cumprod, M.linear_alphas_cumprod(1000, 1e-4, 0.02))
    reference = build_adm_unet(adm_unet_config(**{k: tuple(v) if isinstance(v, list) else v
                                                   for k, v in TINY.items()}))
    reference.load_state_dict(ours)
    x, t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([5, 700])
    with torch.no_grad():
        full = reference(x, t).sample
        eps = model.unet(x, t)
    assert full.shape[1] == 6 and eps.shape[1] == 3 and full[:, :3].abs().mean() > 0.01
    assert (eps - full[:, :3]).abs().max() <= 1e-5
    from benchmark.inputs.lock import LockFile, model_key

    lock = LockFile.load()
    lock.record(model_key("afhq-dog-iddpm@1"), "afhq_dog_4m.pt", "0" * 64)  # another file was recorded first
    lock.save()
    with pytest.raises(DigestMismatchError, match="expected 0000"):
        LOADERS.get("adm-checkpoint")(manifest, device="cpu", weights_root=tmp_path / "w")


def test_validate_and_run_name_where_a_missing_user_supplied_base_model_goes(tmp_path, monkeypatch, capsys):
    from benchmark.cli import main
    from benchmark.plan.request import RunRequest
    from benchmark.plan.suite import resolve_plan

    monkeypatch.setenv("ASYRP_WEIGHTS", str(tmp_path / "weights"))
    dest = tmp_path / "weights" / "metfaces-adm-p2@1" / "metface_p2.pt"
    code = main(["validate", "--suite", "metfaces-released", "--profile", "tiny", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 2
    assert f"{dest} is missing" in out and f"copy the file to {dest}" in out
    assert "kwonminki/Asyrp_official" in out and "OneDrive" in out
    assert "fetch metfaces-adm-p2" not in out  # nothing can fetch it
    request = RunRequest(suite="metfaces-released", profile="tiny", device="cpu", data=str(tmp_path),
                         out=tmp_path / "runs")
    with pytest.raises(BenchError) as e:
        resolve_plan(request, ManifestRegistry())
    assert "metface_p2.pt missing" in e.value.message and str(dest) in e.value.fix and "OneDrive" in e.value.fix


def test_fetch_checks_and_locks_a_user_supplied_file_and_later_reads_check_it(tmp_path):
    from benchmark.inputs.fetch import fetch_model
    from benchmark.inputs.lock import LockFile, model_key

    manifest = ManifestRegistry().get("model", "afhq-dog-iddpm@1").manifest
    lock = LockFile.load(tmp_path / "lock.json")
    with pytest.raises(BenchError) as e:
        fetch_model(manifest, root=tmp_path / "w", lock=lock)
    assert str(tmp_path / "w" / "afhq-dog-iddpm@1" / "afhq_dog_4m.pt") in e.value.fix
    path = tmp_path / "w" / "afhq-dog-iddpm@1" / "afhq_dog_4m.pt"
    sha = _save(path, {"w": torch.ones(3)})
    [status] = fetch_model(manifest, root=tmp_path / "w", lock=lock)
    assert status.state == "ok" and lock.digest(model_key("afhq-dog-iddpm@1"), "afhq_dog_4m.pt") == sha
    _save(path, {"w": torch.zeros(3)})  # another file under the same name
    with pytest.raises(DigestMismatchError):
        fetch_model(manifest, root=tmp_path / "w", lock=lock)


def test_a_missing_user_file_stops_the_fetch_of_the_others_only_at_the_end(tmp_path):
    from benchmark.inputs.fetch import fetch_models
    from benchmark.inputs.lock import LockFile, model_key
    from benchmark.inputs.manifests import manifest_from_dict

    user = ManifestRegistry().get("model", "metfaces-adm-p2@1").manifest
    other = manifest_from_dict({"schema_version": 1, "kind": "model", "name": "tables", "version": 1,
                                "description": "a downloadable file already on disk", "loader": "lpips-tables",
                                "source": {"type": "url", "files": [{"path": "t.tsv",
                                                                     "url": "https://example.invalid/t.tsv"}]}})
    (tmp_path / "w" / "tables@1").mkdir(parents=True)
    (tmp_path / "w" / "tables@1" / "t.tsv").write_text("0\t1\n")
    lock = LockFile.load(tmp_path / "lock.json")
    with pytest.raises(BenchError) as e:
        fetch_models([user, other], root=tmp_path / "w", lock=lock)
    assert "metface_p2.pt" in e.value.message and "OneDrive" in e.value.fix
    assert LockFile.load(tmp_path / "lock.json").digest(model_key("tables@1"), "t.tsv") == sha256_file(
        tmp_path / "w" / "tables@1" / "t.tsv")  # the other model was still checked and locked


def test_a_user_source_takes_no_url_and_preprocessing_pil_bicubic_is_a_plain_pil_resize(tmp_path):
    import numpy as np
    from PIL import Image

    from benchmark.core.errors import ManifestError
    from benchmark.inputs.data import preprocess
    from benchmark.inputs.manifests import manifest_from_dict

    doc = yaml.safe_load((MANIFESTS_DIR / "models" / "afhq-dog-iddpm.yaml").read_text())
    doc["source"]["files"][0]["url"] = "https://example.invalid/afhq_dog_4m.pt"
    with pytest.raises(ManifestError, match="url"):
        manifest_from_dict(doc)
    spec = ManifestRegistry().get("dataset", "afhq-dog-val-first100@1").manifest.preprocessing
    px = (torch.rand(512, 512, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    img = Image.fromarray(px)
    expected = np.asarray(img.resize((256, 256)))  # Asyrp's AFHQ_dataset: resize with PIL's default filter
    assert np.array_equal(preprocess(img, spec, 256), expected)
    assert not np.array_equal(np.asarray(img.resize((256, 256), Image.BILINEAR)), expected)


@pytest.mark.slow
def test_afhq_dog_released_runs_end_to_end_on_tiny_stand_ins(tmp_path, fixtures, monkeypatch):
    from benchmark.inputs.lock_digests import lock_suite
    from benchmark.plan.request import RunRequest
    from benchmark.plan.suite import resolve_plan
    from benchmark.run.cache import StageCache
    from benchmark.run.pipeline import run_plan
    from benchmark.run.runner import Runner

    root, weights = _stand_in_tree(tmp_path, fixtures)
    monkeypatch.setenv("ASYRP_WEIGHTS", str(weights))
    monkeypatch.setenv("ASYRP_LOCK", str(tmp_path / "lock.json"))
    registry = ManifestRegistry(root)
    rs = resolve_suite("afhq-dog-released", profile="tiny", registry=registry)
    assert set(rs.suite.metrics_omitted) == {"sc", "id"}
    summary = lock_suite(rs, data_root=tmp_path / "afhq")
    assert summary.recorded["model:afhq-dog-iddpm@1"] == 1  # the user's file, recorded on first use
    request = RunRequest(suite="afhq-dog-released", profile="tiny", attributes=["dog-wolf"], limit=2,
                         device="cpu", data=str(tmp_path / "afhq"), out=tmp_path / "runs")
    plan = resolve_plan(request, registry)
    [attr] = plan.attributes
    assert attr.settings["t_boost"] == 167 and "t_select" in attr.settings
    assert plan.engine.model.name == "afhq-dog-iddpm@1" and plan.engine.model.image_size == 32
    out = run_plan(plan, Runner(StageCache(tmp_path / "cache"), progress=False), tmp_path / "runs")
    result = json.loads((out / "results.json").read_text())
    assert set(result["metrics"]["dog-wolf"]) == {"sdir", "kid_orig"}
    assert result["metrics"]["dog-wolf"]["sdir"]["n"] == 2
    _save(weights / "afhq-dog-iddpm@1" / "afhq_dog_4m.pt", guided_diffusion_state(seed=6)[1])  # a changed file
    with pytest.raises(BenchError) as e:
        resolve_plan(request, registry)
    assert "afhq_dog_4m.pt mismatch" in e.value.message
