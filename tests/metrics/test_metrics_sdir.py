"""S_dir through a tiny seeded open_clip CLIP: the metric uses the pure function, the template ensemble, flags."""

from __future__ import annotations

import pytest
import torch
from metrics_helpers import random_images

from metrics import EditSet, directional_similarity, get_metric
from metrics.backends import load_backend
from metrics.templates import expand


@pytest.fixture(scope="module")
def edits():
    return EditSet(edited=random_images(6, 64, seed=1), original=random_images(6, 64, seed=2),
                   source_text="face", target_text="smiling face")


def sdir(**kw):
    return get_metric("sdir@1", backend="tiny-clip-random", device="cpu", bootstrap_resamples=100, **kw)


def test_sdir_equals_the_pure_function_on_the_prompt_ensemble(edits):
    result = sdir().compute(edits)
    clip = load_backend("clip", "tiny-clip-random", device="cpu", preprocess="open_clip")

    def ensemble(prompt):  # CLIP prompt ensembling, written out: mean of normalised template embeddings
        e = clip.encode_texts(expand(prompt)).double()
        assert e.shape[0] == 79
        return (e / e.norm(dim=-1, keepdim=True)).mean(0)

    expected = directional_similarity(clip.encode_images(edits.original), clip.encode_images(edits.edited),
                                      ensemble("face"), ensemble("smiling face"))
    assert result.per_image["value"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert result.per_image["one_minus_cos"] == pytest.approx([1 - v for v in expected.tolist()], abs=1e-12)
    assert result.variants["one_minus_cos"].mean == pytest.approx(1 - result.primary.mean)
    assert result.spec["templates"] is True and result.direction == "higher"


def test_raw_prompts_and_tensor_preprocessing_are_distinct_specs(edits):
    base = sdir().compute(edits).per_image["value"]
    raw = sdir(templates=False).compute(edits)
    tensor = sdir(image_preprocess="tensor").compute(edits)
    assert raw.spec["templates"] is False and raw.per_image["value"] != base
    assert tensor.spec["image_preprocess"] == "tensor" and tensor.per_image["value"] != base


def test_unchanged_images_are_flagged_not_nan(edits):
    edited = edits.edited.clone()
    edited[[1, 4]] = edits.original[[1, 4]]
    result = sdir().compute(EditSet(edited=edited, original=edits.original, source_text="face",
                                    target_text="smiling face", ids=tuple("abcdef")))
    values = result.per_image["value"]
    assert values[1] == 0.0 and values[4] == 0.0
    assert all(v == v for v in values)  # no NaN
    assert result.flags == {"zero_image_direction": ["b", "e"]}


def test_sdir_can_compare_against_the_reconstruction(edits):
    recon = EditSet(edited=edits.edited, original=edits.original, reconstruction=random_images(6, 64, seed=3),
                    source_text="face", target_text="smiling face")
    a = sdir().compute(recon).primary.mean
    b = sdir(reference="reconstruction").compute(recon).primary.mean
    assert a != b


def test_openai_torchscript_release_format_loads_into_open_clip(tmp_path):
    """OpenAI ships CLIP as TorchScript archives; the loader keeps only their tensors and rebuilds an open_clip CLIP."""
    import open_clip

    from metrics.backends.clip import build_openai_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}}
    model = open_clip.CLIP(**cfg, quick_gelu=True).eval()
    image, text = torch.randn(2, 3, 32, 32), open_clip.tokenize(["face", "smiling face"])
    torch.jit.trace(model, (image, text), strict=False).save(str(tmp_path / "ViT-tiny.pt"))
    rebuilt = build_openai_clip("ViT-B-32", tmp_path / "ViT-tiny.pt").eval()
    # open_clip rebuilds OpenAI checkpoints with its OpenAI-style blocks (LayerNormFp32 etc.), which differ from the
    # traced model in the 4th decimal; a wrong weight mapping would give unrelated embeddings instead.
    with torch.no_grad():
        for a, b in [(rebuilt.encode_image(image), model.encode_image(image)),
                     (rebuilt.encode_text(text), model.encode_text(text))]:
            assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99999
            assert (a - b).abs().max() < 2e-3
