"""S_dir through a tiny seeded open_clip CLIP: the metric uses the pure function, the template ensemble, flags."""

from __future__ import annotations

import pytest
from metrics_helpers import random_images

from metrics import EditSet, directional_similarity, get_metric
from metrics.backends import load_backend
from metrics.templates import expand


@pytest.fixture(scope="module")
def edits():
    return EditSet(edited=random_images(6, 64, seed=1), original=random_images(6, 64, seed=2),
                   source_text="face", target_text="smiling face")


def sdir(**kw):
    return get_metric("sdir@1", backend="clip-tiny-random", device="cpu", bootstrap_resamples=100, **kw)


def test_sdir_equals_the_pure_function_on_the_prompt_ensemble(edits):
    result = sdir().compute(edits)
    clip = load_backend("clip", "clip-tiny-random", device="cpu", preprocess="open_clip")

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
