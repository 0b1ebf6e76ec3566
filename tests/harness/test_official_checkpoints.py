"""official-checkpoints at the API level: the authors' released f_t (real fixture files) loaded and applied through
the harness's train (load) and edit stages, against a random UNet with the CelebA-HQ h-space shape (512 channels,
512-d time embedding), since the real DDPM is not available offline."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("models", reason="needs the Asyrp core (models/), not in this checkout")

import models  # noqa: E402
from benchmark.core.errors import DigestMismatchError  # noqa: E402
from benchmark.inputs.manifests import (
    ManifestRegistry,  # noqa: E402
    Steps,  # noqa: E402
)
from benchmark.run.cache import StageCache  # noqa: E402
from benchmark.run.runner import Runner  # noqa: E402
from benchmark.run.stages.asyrp import AsyrpEngine  # noqa: E402
from benchmark.run.stages.edit import edit_attribute  # noqa: E402
from benchmark.run.stages.invert import invert_images  # noqa: E402
from benchmark.run.stages.train import train_attribute  # noqa: E402
from benchmark.run.suite_plan import AttributePlan  # noqa: E402

# diffusers' time embedding is 4 × block_out_channels[0] = 512 and h has block_out_channels[-1] = 512 channels:
# the shapes the released DeltaBlocks expect, at 8² so it runs on a CPU.
H512_UNET = {"sample_size": 8, "in_channels": 3, "out_channels": 3, "block_out_channels": [128, 512],
             "layers_per_block": 1, "down_block_types": ["DownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 32, "norm_eps": 1e-6,
             "flip_sin_to_cos": False, "freq_shift": 1, "downsample_padding": 0}


def _official(fixtures, name):
    manifest = ManifestRegistry().get("model", f"asyrp-ft-{name}@1").manifest
    f = manifest.files[0]
    return str(fixtures / "asyrp_official" / "checkpoints" / f.path), f.sha256


@pytest.fixture(scope="module")
def setup(fixtures):
    model = models.random_diffusion_model(H512_UNET, seed=0, name="h512-random")
    attrs = {}
    for name, t_edit in (("smiling", 513), ("pixar", 321)):
        attrs[name] = AttributePlan(name, f"{name}@1", "in-domain", "face", f"{name} face",
                                    {"t_edit": t_edit, "t_boost": 167, "lambda_clip": 0.8, "lambda_recon": 3.0},
                                    official_ft=_official(fixtures, name))
    engine = AsyrpEngine(model=model, steps=Steps(4, 4, 4), digests={"base_model": "h512-random"},
                         seeds={"boost_noise": 0})
    return model, engine, attrs


def test_released_f_t_loads_through_the_train_stage_and_edits_like_the_core(setup, tmp_path):
    model, engine, attrs = setup
    from harness_standins import images

    items = images(2, size=8)
    runner = Runner(StageCache(tmp_path), progress=False)
    inversions = invert_images(runner, engine, items, batch_size=2, with_reference=False, purpose="test",
                               device="cpu")
    ft_entry = train_attribute(runner, engine, attrs["smiling"], [], [])
    assert ft_entry.output.data["source"] == "official" and not ft_entry.hit
    released = models.load_official_ft(attrs["smiling"].official_ft[0])
    for k, v in released.state_dict().items():
        assert torch.equal(ft_entry.output.tensors[k], v), k
    edit = edit_attribute(runner, engine, attrs["smiling"], ft_entry, inversions, delta_h_scale=1.0, device="cpu")

    # The same edit straight through the core: the harness adds nothing to the method.
    x_T = inversions[0].output.tensors["x_T"]
    schedule = models.EditSchedule(n_steps=4, t_edit=513, t_boost=167, delta_scale=1.0, n_train_steps=4)
    direct = models.generate(model, x_T, [(released, 1.0)], schedule,
                             engine.noise_generators([it.id for it in items])).images
    from benchmark.core.images import to_uint8

    assert torch.equal(edit.output.tensors["edited"], to_uint8(direct))
    # And the released f_t changes the image (Δh ≠ 0), unlike a plain reverse process with the same noise.
    plain = models.generate(model, x_T, [], schedule, engine.noise_generators([it.id for it in items])).images
    assert (to_uint8(plain).int() - edit.output.tensors["edited"].int()).abs().max() > 0
    # Cached: a second pass reads both entries back.
    again = train_attribute(runner, engine, attrs["smiling"], [], [])
    assert again.hit and again.key == ft_entry.key


def test_each_attribute_and_digest_is_its_own_key_and_a_wrong_digest_is_refused(setup, tmp_path):
    _, engine, attrs = setup
    runner = Runner(StageCache(tmp_path), progress=False)
    smiling = train_attribute(runner, engine, attrs["smiling"], [], [])
    pixar = train_attribute(runner, engine, attrs["pixar"], [], [])
    assert smiling.key != pixar.key
    assert not torch.equal(smiling.output.tensors["conv1.weight"], pixar.output.tensors["conv1.weight"])
    path, _ = attrs["smiling"].official_ft
    wrong = AttributePlan("smiling", "smiling@1", "in-domain", "face", "smiling face",
                          dict(attrs["smiling"].settings), official_ft=(path, "0" * 64))
    with pytest.raises(DigestMismatchError):
        train_attribute(runner, engine, wrong, [], [])
