"""LSUN church and bedroom: the config-driven ermongroup loader (against an independent DDPM forward), the LSUN
LMDB dataset (membership by rule, DiffusionCLIP's Resize + CenterCrop), and the `lsun-church-released` suite run
end to end on the CPU with tiny stand-ins written by the test under the real manifests' names: a random
ermongroup-layout DDPM checkpoint, the authors' f_t format, LPIPS tables and an LSUN-layout LMDB."""

from __future__ import annotations

import io
import shutil

import pytest
import torch
import yaml
from ddpm_reference import ddpm_forward, random_ddpm_state_dict

import models as M
from benchmark.core.errors import DataError, DigestMismatchError
from benchmark.core.hashing import sha256_file
from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.data import load_dataset, shorter_side_center_crop
from benchmark.inputs.lock import LockFile
from benchmark.inputs.manifests import ManifestRegistry, manifest_from_dict, resolve_suite
from benchmark.plan.loaders import LOADERS

TINY_ARCH = {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16], "resolution": 32}
CHURCH = ["church-department-store", "church-factory", "church-gothic", "church-red-brick", "church-temple",
          "church-wooden-church"]


def _url_model(name: str, loader: str, loader_args: dict, files: list[tuple[str, str]]) -> dict:
    return {"schema_version": 1, "kind": "model", "name": name, "version": 1, "description": "a test stand-in",
            "loader": loader, "loader_args": loader_args,
            "source": {"type": "url", "files": [{"path": p, "url": f"https://example.invalid/{p}", "sha256": s}
                                                for p, s in files]}}


def _write_ckpt(path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return sha256_file(path)


# --- the loader -------------------------------------------------------------------------------------------------

def test_the_named_configs_are_the_authors_and_celebahq_keeps_its_name():
    import sys

    from benchmark.core.paths import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import make_release_manifests as release

    inventory = release.load_inventory()
    for dataset, file in (("church", "church.yml"), ("bedroom", "bedroom.yml")):
        cfg = inventory["datasets"][dataset]["base_model"]["config"]
        ours = M.ERMONGROUP_CONFIGS.get(file)
        assert ours.arch == {k: tuple(cfg[k]) if isinstance(cfg[k], list) else cfg[k]
                             for k in ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "resolution")}
        assert (ours.beta_start, ours.beta_end, ours.num_timesteps) == (
            cfg["beta_start"], cfg["beta_end"], cfg["num_diffusion_timesteps"])
    celeba = M.ERMONGROUP_CONFIGS.get("celeba.yml")  # what load_sdedit_celebahq always used
    assert celeba.name == "sdedit-celeba-hq" and celeba.arch == M.CELEBAHQ_DDPM_ARCH
    assert torch.equal(celeba.alphas_cumprod(), M.celebahq_alphas_cumprod())
    reg = ManifestRegistry()
    for ref, file in (("sdedit-church-outdoor@1", "church.yml"), ("sdedit-bedroom@1", "bedroom.yml"),
                      ("sdedit-celebahq@1", "celeba.yml")):
        m = reg.get("model", ref).manifest
        assert m.loader == "ddpm-checkpoint" and m.loader_args["config"] == file


def test_a_tiny_ermongroup_checkpoint_loads_through_the_manifest_loader(tmp_path):
    arch = {**TINY_ARCH, "resolution": 16}
    state = random_ddpm_state_dict(seed=3, **arch)
    sha = _write_ckpt(tmp_path / "w" / "tiny-ddpm@1" / "tiny.ckpt", state)
    schedule = {"beta_start": 2e-4, "beta_end": 0.03, "num_diffusion_timesteps": 500}
    manifest = manifest_from_dict(_url_model("tiny-ddpm", "ddpm-checkpoint", {"arch": arch, "schedule": schedule},
                                             [("tiny.ckpt", sha)]))
    model = LOADERS.get("ddpm-checkpoint")(manifest, device="cpu", weights_root=tmp_path / "w")
    assert model.name == "tiny-ddpm@1" and model.image_size == 16
    assert torch.equal(model.alphas_cumprod, M.linear_alphas_cumprod(500, 2e-4, 0.03))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([7, 420])
    with torch.no_grad():
        expected = ddpm_forward(state, x, t, **arch)
        got = model.unet(x, t)
    assert expected.abs().mean() > 0.1 and (got - expected).abs().max() <= 1e-4
    # a checkpoint that needs arbitrary unpickling is refused
    _write_ckpt(tmp_path / "w" / "tiny-ddpm@1" / "tiny.ckpt", {"state": state, "fn": shutil.copyfile})
    with pytest.raises(Exception, match="weights_only"):
        LOADERS.get("ddpm-checkpoint")(manifest, device="cpu", weights_root=tmp_path / "w")


# --- the dataset ------------------------------------------------------------------------------------------------

def _webp(w: int, h: int, seed: int) -> bytes:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    buf = io.BytesIO()
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(buf, format="WEBP", quality=90)
    return buf.getvalue()


def _lsun_lmdb(path, n: int, short: int, seed: int = 0) -> list[str]:
    """An LMDB laid out like LSUN's: hex keys, webp values whose shorter side is `short`. Returns the keys."""
    import hashlib

    import lmdb

    env = lmdb.open(str(path), map_size=1 << 28)
    keys = []
    with env.begin(write=True) as txn:
        for i in range(n):
            key = hashlib.sha1(f"{seed}:{i}".encode()).hexdigest()
            w, h = (short + 12 + i % 5, short) if i % 2 else (short, short + 20)
            txn.put(key.encode(), _webp(w, h, seed * 1000 + i))
            keys.append(key)
    env.close()
    return sorted(keys)


def test_center_crop_is_torchvisions_resize_and_center_crop():
    from PIL import Image
    from torchvision import transforms

    for w, h in ((300, 256), (256, 341), (400, 300), (511, 512)):
        img = Image.open(io.BytesIO(_webp(w, h, w + h))).convert("RGB")
        ref = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(256)])(img)
        assert list(shorter_side_center_crop(img, 256).getdata()) == list(ref.getdata()), (w, h)


def test_the_lsun_manifest_takes_the_first_keys_and_locks_them(tmp_path):
    import numpy as np
    from PIL import Image

    manifest = ManifestRegistry().get("dataset", "lsun-church-outdoor-val-first100@1").manifest
    keys = _lsun_lmdb(tmp_path / "church_outdoor_val_lmdb", 103, 256)
    lock = LockFile.load(tmp_path / "lock.json")
    got = load_dataset(manifest, tmp_path / "church_outdoor_val_lmdb", limit=3, lock=lock)
    assert got.ids == keys[:3] and got.images.shape == (3, 3, 256, 256)
    import lmdb

    env = lmdb.open(str(tmp_path / "church_outdoor_val_lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        raw = txn.get(keys[1].encode())
    env.close()
    crop = shorter_side_center_crop(Image.open(io.BytesIO(raw)).convert("RGB"), 256)
    assert torch.equal(got.images[1], torch.from_numpy(np.asarray(crop)).permute(2, 0, 1))
    lock.save()
    # another copy (a different first key) no longer matches the recorded membership
    other = _lsun_lmdb(tmp_path / "other", 103, 256, seed=1)
    assert other[:100] != keys[:100]
    with pytest.raises(DigestMismatchError, match="membership"):
        load_dataset(manifest, tmp_path / "other", limit=3, lock=LockFile.load(tmp_path / "lock.json"))
    small = _lsun_lmdb(tmp_path / "small", 100, 200)
    with pytest.raises(DataError, match="shorter side is 256"):
        load_dataset(manifest, tmp_path / "small", limit=2)
    assert len(small) == 100


# --- the suite, end to end with stand-ins -------------------------------------------------------------------------

def _stand_in_tree(tmp_path, fixtures):
    """A copy of the manifest tree whose LSUN church base model, f_t, tables and dataset are tiny files written
    here under the same names, so the real suite manifest runs on the CPU."""
    root, weights = tmp_path / "manifests", tmp_path / "weights"
    shutil.copytree(MANIFESTS_DIR, root)
    state = random_ddpm_state_dict(seed=5, **TINY_ARCH)
    sha = _write_ckpt(weights / "sdedit-church-outdoor@1" / "church_outdoor.ckpt", state)
    models = {"sdedit-church-outdoor": _url_model("sdedit-church-outdoor", "ddpm-checkpoint",
                                                  {"arch": TINY_ARCH}, [("church_outdoor.ckpt", sha)])}
    h, temb = TINY_ARCH["ch"] * TINY_ARCH["ch_mult"][-1], 4 * TINY_ARCH["ch"]
    for i, name in enumerate(CHURCH):
        ft = M.build_ft("conv", h_channels=h, temb_dim=temb, h_size=8, seed=i)
        with torch.no_grad():
            for p in ft.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i)))  # Δh ≠ 0
        file = f"{name.replace('-', '_')}_LC_church_outdoor_t999_ninv40_ngen40_0.pth"
        sha = _write_ckpt(weights / f"asyrp-ft-{name}@1" / file, {"0": ft.state_dict(), "optimizer": {}})
        models[f"asyrp-ft-{name}"] = _url_model(f"asyrp-ft-{name}", "asyrp-deltablock",
                                                {"attribute": name.replace("-", "_"), "state_dict_key": "0"},
                                                [(file, sha)])
    tables = weights / "asyrp-lpips-church@1"
    tables.mkdir(parents=True)
    for f in (fixtures / "asyrp_official" / "tables").glob("celeba_LPIPS_*.tsv"):  # arbitrary curves: wiring only
        shutil.copyfile(f, tables / f.name.replace("celeba_", "church_"))
    for name, doc in models.items():
        (root / "models" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    ds_path = root / "datasets" / "lsun-church-outdoor-val-first100.yaml"
    ds = yaml.safe_load(ds_path.read_text())
    ds.update(image_size=32, count=4)
    ds["distributions"]["lsun-lmdb"]["image_size"] = 32
    ds_path.write_text(yaml.safe_dump(ds))
    _lsun_lmdb(tmp_path / "church_outdoor_val_lmdb", 5, 32)
    return root, weights


@pytest.mark.slow
def test_lsun_church_released_runs_end_to_end_on_tiny_stand_ins(tmp_path, fixtures, monkeypatch):
    import json

    from benchmark.plan.request import RunRequest
    from benchmark.plan.suite import resolve_plan
    from benchmark.run.cache import StageCache
    from benchmark.run.pipeline import run_plan
    from benchmark.run.runner import Runner

    root, weights = _stand_in_tree(tmp_path, fixtures)
    monkeypatch.setenv("ASYRP_WEIGHTS", str(weights))
    monkeypatch.setenv("ASYRP_LOCK", str(tmp_path / "lock.json"))
    registry = ManifestRegistry(root)
    rs = resolve_suite("lsun-church-released", profile="tiny", registry=registry)
    assert set(rs.suite.metrics_omitted) == {"sc", "id"}
    request = RunRequest(suite="lsun-church-released", profile="tiny", attributes=["church-gothic"], limit=2,
                         device="cpu", data=str(tmp_path / "church_outdoor_val_lmdb"), out=tmp_path / "runs")
    plan = resolve_plan(request, registry)
    [attr] = plan.attributes
    assert attr.settings["t_boost"] == 293 and "t_select" in attr.settings  # t_edit by the rule, t_boost cited
    assert plan.engine.model.name == "sdedit-church-outdoor@1" and plan.engine.model.image_size == 32
    out = run_plan(plan, Runner(StageCache(tmp_path / "cache"), progress=False), tmp_path / "runs")
    result = json.loads((out / "results.json").read_text())
    assert set(result["metrics"]["church-gothic"]) == {"sdir", "kid_orig"}
    assert any("metric sc left out" in n for n in result["run"]["notes"])
    assert any("metric id left out" in n for n in result["run"]["notes"])
    assert result["metrics"]["church-gothic"]["sdir"]["n"] == 2
