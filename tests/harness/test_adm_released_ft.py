"""The authors' released f_t of AFHQ-dog and METFACES (ResBlock-style, `models.ft.ResDeltaBlock`): their model and
attribute manifests as the authors' repository names and prompts them, and a stand-in in the authors' save layout
(`{"0": state_dict, "optimizer", "scheduler"}`) written under a manifest's file name, loaded the way a run loads a
released f_t (digest first, `weights_only=True`) and checked against an independent forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import models as M
from benchmark.core.errors import DigestMismatchError
from benchmark.core.hashing import sha256_file
from benchmark.core.paths import MANIFESTS_DIR
from benchmark.inputs.ft_fit import checkpoint_channels
from benchmark.inputs.manifests import load_manifest
from benchmark.plan.loaders import weights_file

COMMIT = "a6c82dc760849dd4c1e878990ce38e824967e5b0"
# kwonminki/Asyrp_official utils/text_dic.py SRC_TRG_TXT_DIC, read through the search tool; the file names are the
# repository's checkpoint/ listing ({attribute}_LC_{category}_t999_ninv40_ngen40_0.pth, category dog / metfaces).
RELEASED = {
    "dog_angry": ("dog", "Dog", "Angry Dog"), "dog_happy": ("dog", "Dog", "Happy Dog"),
    "dog_sleepy": ("dog", "Dog", "Sleepy Dog"), "dog_wolf": ("dog", "Dog", "Wolf"),
    "dog_yorkshire": ("dog", "Dog", "Yorkshire Terrier"),
    "metface_angry": ("metfaces", "painting of a person", "painting of a Angry person"),
    "metface_disgusted": ("metfaces", "painting of a person", "painting of a Disgusted person"),
    "metface_sad": ("metfaces", "painting of a person", "painting of a Sad person"),
    "metface_smiling": ("metfaces", "painting of a person", "painting of a Smiling person"),
}
T_BOOST = {"dog": 167, "metfaces": 180}  # scripts/release_inventory.yaml (the authors' rule on their tables)


def _ft_manifest(attribute: str):
    return load_manifest(MANIFESTS_DIR / "models" / f"asyrp-ft-{attribute.replace('_', '-')}.yaml").manifest


@pytest.mark.parametrize("attribute", sorted(RELEASED))
def test_each_released_f_t_is_pinned_at_the_authors_commit_with_their_prompts(attribute):
    category, source, target = RELEASED[attribute]
    ft = _ft_manifest(attribute)
    [f] = ft.files
    assert f.path == f"{attribute}_LC_{category}_t999_ninv40_ngen40_0.pth"
    assert f.url == f"https://raw.githubusercontent.com/kwonminki/Asyrp_official/{COMMIT}/checkpoint/{f.path}"
    assert f.sha256 is None and "`lock` records it" in ft.provenance  # no fixture copy: the digest is locked
    assert ft.loader == "asyrp-deltablock" and ft.loader_args["state_dict_key"] == "0"
    assert "resblock" in ft.description
    attr = load_manifest(MANIFESTS_DIR / "attributes" / f"{attribute.replace('_', '-')}.yaml").manifest
    assert (attr.source_prompt, attr.target_prompt) == (source, target)
    assert attr.t_edit is None and "authors' rule" in attr.provenance  # no source cites one
    assert attr.t_boost == T_BOOST[category] and attr.domain == "unstated"


def _authors_layout(seed: int, channels: int = 512, temb_dim: int = 512) -> dict:
    """What the authors' `run_training` saves for one f_t: the block's state dict under "0", with the optimizer's
    and the scheduler's state dicts beside it."""
    torch.manual_seed(seed)
    block = M.ResDeltaBlock(channels, temb_dim)
    opt = torch.optim.Adam(block.parameters(), lr=0.5)
    block(torch.randn(1, channels, 8, 8), torch.randn(1, temb_dim)).square().mean().backward()
    opt.step()  # a non-empty optimizer state, as after training
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    return {"0": block.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}


def _reference_forward(state: dict, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
    """The authors' DeltaBlock.forward written out from its parameters: in_layers(h) + emb_layers(temb), then
    out_layers; GroupNorm(32, eps 1e-5), SiLU, 1x1 convs, no residual."""
    x = F.group_norm(h, 32, state["in_layers.0.weight"], state["in_layers.0.bias"], eps=1e-5)
    x = F.conv2d(F.silu(x), state["in_layers.2.weight"], state["in_layers.2.bias"])
    x = x + F.linear(F.silu(temb), state["emb_layers.1.weight"], state["emb_layers.1.bias"])[:, :, None, None]
    x = F.group_norm(x, 32, state["out_layers.0.weight"], state["out_layers.0.bias"], eps=1e-5)
    return F.conv2d(F.silu(x), state["out_layers.3.weight"], state["out_layers.3.bias"])


def test_a_stand_in_in_the_authors_layout_loads_as_the_resblock_f_t_of_the_adm_h_space(tmp_path):
    ft = _ft_manifest("metface_smiling")
    path = weights_file(ft, tmp_path)  # where `fetch` puts it: <weights>/<name>@<version>/<file>
    path.parent.mkdir(parents=True)
    payload = _authors_layout(seed=3)
    torch.save(payload, path)
    block = M.load_official_ft(path, sha256=sha256_file(path))
    assert isinstance(block, M.ResDeltaBlock)
    arch = M.adm_unet_config(**M.ADM_ARCHS["metfaces-p2"])
    h_channels, temb_dim = arch["block_out_channels"][-1], 4 * arch["block_out_channels"][0]
    assert checkpoint_channels(path) == h_channels == 512 and temb_dim == 512  # fits the ADM's 512x8x8 h-space
    h, temb = torch.randn(2, h_channels, 8, 8), torch.randn(2, temb_dim)
    with torch.no_grad():
        torch.testing.assert_close(block(h, temb), _reference_forward(payload["0"], h, temb), rtol=1e-5, atol=1e-5)


def test_a_released_f_t_with_the_wrong_digest_is_refused_before_loading(tmp_path):
    path = weights_file(_ft_manifest("dog_wolf"), tmp_path)
    path.parent.mkdir(parents=True)
    torch.save(_authors_layout(seed=4), path)
    with pytest.raises(DigestMismatchError):
        M.load_official_ft(path, sha256="0" * 64)
