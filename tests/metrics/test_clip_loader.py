"""The training loss's CLIP and the S_dir back-ends read OpenAI CLIP files through one loader
(`metrics.backends.clip.build_openai_clip`): OpenAI's TorchScript release and plain state dicts, QuickGELU as the
manifest says. Tiny CLIPs written in the release formats stand in for the real files."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from benchmark.core.errors import BenchError, DigestMismatchError
from benchmark.core.hashing import sha256_file
from benchmark.inputs.manifests import manifest_from_dict
from benchmark.plan.loaders import LOADERS
from benchmark.rehearsal.forge_clip import openai_clip_module, write_openai_clip_archive

TINY = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}}
TINY_NAME = "asyrp-test-tiny-clip"


def clip_manifest(path, *, model_name="ViT-B-16", quick_gelu=True, fmt="torchscript", sha256=None):
    return manifest_from_dict({
        "schema_version": 1, "kind": "model", "name": "test-openai-clip", "version": 1, "description": "test",
        "loader": "open-clip", "loader_args": {"model_name": model_name, "quick_gelu": quick_gelu, "format": fmt},
        "source": {"type": "url", "files": [{"path": path.name, "url": f"https://example.org/{path.name}",
                                             "sha256": sha256 or sha256_file(path)}]}})


@pytest.fixture()
def weights_root(tmp_path):
    (tmp_path / "test-openai-clip@1").mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def tiny_model_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-config")
    (folder / f"{TINY_NAME}.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(folder)
    return TINY_NAME


def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, open_clip.tokenize(["a face", "a smiling face"])


def test_loss_loader_reads_openai_torchscript_release(weights_root):
    path = weights_root / "test-openai-clip@1" / "ViT-tiny.pt"
    write_openai_clip_archive(path, TINY, seed=3)
    assert open_clip.openai.load_openai_model(str(path), device="cpu") is not None  # open_clip's own reader agrees

    model, tokenizer = LOADERS.get("open-clip")(clip_manifest(path), device="cpu", weights_root=weights_root)
    reference = openai_clip_module(TINY, seed=3).float().eval()  # the forged weights, in fp32
    image, text = inputs()
    with torch.no_grad():
        got, want = model.encode_image(image), reference.encode_image(image)
    assert isinstance(model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    # the archive stores fp16 weights; the rebuilt fp32 model must match the same weights up to fp16 rounding
    assert torch.nn.functional.cosine_similarity(got, want).min() > 0.999
    assert tokenizer(["a face"]).shape == (1, 77)


def test_loss_and_metric_clips_agree_on_the_same_file(weights_root):
    from metrics.backends.clip import load_openai_clip

    path = weights_root / "test-openai-clip@1" / "ViT-tiny.pt"
    write_openai_clip_archive(path, TINY, seed=4)
    loss_model, _ = LOADERS.get("open-clip")(clip_manifest(path), device="cpu", weights_root=weights_root)
    embedder = load_openai_clip("ViT-B-16", "ViT-tiny.pt")(path, torch.device("cpu"))
    # the same tensors in the same modules (outputs differ only where requires_grad picks another attention kernel)
    want = embedder.model.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in loss_model.state_dict().items()) and len(want) > 0
    assert [type(m) for m in loss_model.modules()] == [type(m) for m in embedder.model.modules()]


def test_state_dict_honours_quick_gelu(weights_root, tiny_model_config):
    torch.manual_seed(5)
    source = open_clip.CLIP(**TINY, quick_gelu=True).eval()
    path = weights_root / "test-openai-clip@1" / "tiny.pt"
    torch.save(source.state_dict(), path)
    image, _ = inputs()
    load = LOADERS.get("open-clip")
    quick, _ = load(clip_manifest(path, model_name=tiny_model_config, fmt="state-dict"), device="cpu",
                    weights_root=weights_root)
    plain, _ = load(clip_manifest(path, model_name=tiny_model_config, quick_gelu=False, fmt="state-dict"),
                    device="cpu", weights_root=weights_root)
    with torch.no_grad():
        want = source.encode_image(image)
        assert torch.allclose(quick.encode_image(image), want, atol=1e-5)
        assert not torch.allclose(plain.encode_image(image), want, atol=1e-3)  # nn.GELU: another network


def test_torchscript_archive_with_wrong_digest_is_not_opened(weights_root):
    path = weights_root / "test-openai-clip@1" / "ViT-tiny.pt"
    write_openai_clip_archive(path, TINY, seed=3)
    manifest = clip_manifest(path, sha256="0" * 64)
    with pytest.raises(DigestMismatchError, match="refusing to open the TorchScript archive"):
        LOADERS.get("open-clip")(manifest, device="cpu", weights_root=weights_root)


def test_format_mismatch_is_named(weights_root, tiny_model_config):
    path = weights_root / "test-openai-clip@1" / "tiny.pt"
    torch.save(open_clip.CLIP(**TINY, quick_gelu=True).state_dict(), path)
    with pytest.raises(BenchError, match="is not a TorchScript archive"):
        LOADERS.get("open-clip")(clip_manifest(path, model_name=tiny_model_config), device="cpu",
                                 weights_root=weights_root)
