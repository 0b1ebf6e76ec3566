"""Segmentation consistency: the real CelebAMask-HQ masks, hand-computed perturbations, label remaps, parsers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_helpers import load_fixture_images, load_mask, random_images

from benchmark.core.errors import DataError
from metrics import (
    BISENET_FACE_PARSING,
    CELEBAMASK_HQ,
    EditSet,
    LabelSet,
    get_metric,
    label_agreement,
    label_miou,
)
from metrics.backends import load_backend


@pytest.fixture(scope="module")
def masks(fixtures):
    return torch.stack([load_mask(fixtures, i) for i in range(4)])


def test_fixture_masks_use_the_celebamask_hq_label_range(masks):
    assert masks.shape == (4, 512, 512)
    assert masks.min() >= 0 and masks.max() < len(CELEBAMASK_HQ)


def test_a_mask_against_itself_scores_one(masks):
    assert label_agreement(masks, masks).tolist() == [1.0] * 4
    assert label_miou(masks, masks).tolist() == [1.0] * 4


def test_relabelled_region_matches_hand_counts(masks):
    hair, hat = CELEBAMASK_HQ.index("hair"), CELEBAMASK_HQ.index("hat")
    for m in masks:
        if (m == hat).any() or not (m == hair).any():
            continue  # the hand count below assumes hair present and hat absent
        edited = torch.where(m == hair, torch.tensor(hat), m)
        counts = np.bincount(m.numpy().ravel(), minlength=19)
        n_present = int((counts > 0).sum())
        assert label_agreement(edited[None], m[None]).item() == pytest.approx(1 - counts[hair] / m.numel())
        # hair and hat each appear in only one map (IoU 0); every other present class is untouched (IoU 1)
        assert label_miou(edited[None], m[None]).item() == pytest.approx((n_present - 1) / (n_present + 1))
        return
    pytest.fail("no fixture mask with hair and without hat")


def test_shift_by_one_column_matches_an_independent_count(masks):
    m = masks[0]
    shifted = torch.cat([m[:, :1], m[:, :-1]], dim=1)  # shift right by one pixel, repeat the first column
    a, b = m.numpy(), shifted.numpy()
    expected_agreement = np.count_nonzero(a == b) / a.size
    ious = []
    for c in np.union1d(np.unique(a), np.unique(b)):
        inter = np.count_nonzero((a == c) & (b == c))
        union = np.count_nonzero((a == c) | (b == c))
        ious.append(inter / union)
    assert label_agreement(shifted[None], m[None]).item() == pytest.approx(expected_agreement)
    assert label_miou(shifted[None], m[None]).item() == pytest.approx(float(np.mean(ious)))
    assert 0.9 < expected_agreement < 1.0  # a one-pixel shift only changes class boundaries


def test_remap_between_celebamask_and_bisenet_orders(masks):
    table = CELEBAMASK_HQ.remap_table(BISENET_FACE_PARSING)
    # spot checks against the two published orders (fixtures/README.md)
    for name, cm_idx, bis_idx in [("nose", 2, 10), ("eye_g", 3, 6), ("hair", 13, 17), ("neck", 17, 14),
                                  ("cloth", 18, 16), ("ear_r", 15, 9), ("background", 0, 0)]:
        assert CELEBAMASK_HQ.index(name) == cm_idx and BISENET_FACE_PARSING.index(name) == bis_idx
        assert table[cm_idx].item() == bis_idx
    to_bisenet = CELEBAMASK_HQ.remap(masks, BISENET_FACE_PARSING)
    back = BISENET_FACE_PARSING.remap(to_bisenet, CELEBAMASK_HQ)
    assert torch.equal(back, masks)
    assert (label_agreement(to_bisenet, masks) < 1.0).all()  # the orders really differ


def test_remap_to_a_coarser_label_set_needs_an_explicit_merge():
    coarse = LabelSet("coarse", ("background", "face", "hair"))
    with pytest.raises(DataError, match="no counterpart"):
        CELEBAMASK_HQ.remap_table(coarse)
    merge = {c: "face" for c in CELEBAMASK_HQ.classes if c not in ("background", "hair")}
    table = CELEBAMASK_HQ.remap_table(coarse, merge)
    assert table[CELEBAMASK_HQ.index("nose")].item() == 1 and table[CELEBAMASK_HQ.index("hair")].item() == 2


@pytest.mark.parametrize("backend", ["bisenet-random", "tiny-faceparser-random"])
def test_parsers_on_real_fixture_images(fixtures, backend):
    images = load_fixture_images(fixtures, ["celebamaskhq_0.jpg", "celebamaskhq_1.jpg", "000121.jpg"], size=256)
    parser = load_backend("face-parser", backend, device="cpu", input_size=256, normalize="imagenet")
    labels = parser.parse(images)
    assert labels.shape == (3, 256, 256) and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() < len(parser.label_set) == 19
    assert torch.equal(labels, parser.parse(images))  # deterministic
    assert torch.equal(labels[1:2], parser.parse(images[1:2]))  # batch-independent


def test_sc_metric_end_to_end_on_fixture_images(fixtures):
    images = load_fixture_images(fixtures, ["celebamaskhq_0.jpg", "celebamaskhq_1.jpg"], size=128)
    edits = EditSet(edited=torch.flip(images, dims=[-1]), original=images, reconstruction=images)
    metric = get_metric("sc@1", backend="bisenet-random", device="cpu", input_size=128, bootstrap_resamples=100)
    result = metric.compute(edits)
    assert result.spec["reference"] == "reconstruction" and result.spec["label_set"]["name"] == "bisenet-face-parsing"
    assert len(result.per_image["value"]) == 2 and set(result.variants) == {"miou"}
    same = metric.compute(EditSet(edited=images, original=images, reconstruction=images))
    assert same.primary.mean == 1.0 and same.variants["miou"].mean == 1.0


def test_sc_parser_resizes_to_the_spec_input_size():
    edits = EditSet(edited=random_images(2, 64), original=random_images(2, 64, seed=5),
                    reconstruction=random_images(2, 64, seed=6))
    parser = load_backend("face-parser", "bisenet-random", device="cpu", input_size=96, normalize="none")
    assert parser.parse(edits.edited).shape == (2, 96, 96)


def test_segformer_loads_a_snapshot_folder_through_from_pretrained(tmp_path, fixtures):
    """The real back-end's path: a hub-style folder (config.json + model.safetensors), labels from its config."""
    from metrics.backends.parsers import tiny_random_segformer

    tiny_random_segformer(seed=3).save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()
    metric = get_metric("sc@1", backend="segformer-face-parsing", weights=tmp_path, device="cpu", input_size=64,
                        bootstrap_resamples=10)
    assert len(metric.spec.weights_sha256) == 64  # digest of model.safetensors, recorded (none is pinned yet)
    images = load_fixture_images(fixtures, ["celebamaskhq_0.jpg", "celebamaskhq_1.jpg"], size=64)
    result = metric.compute(EditSet(edited=images, original=images, reconstruction=images.flip(-1)))
    assert result.spec["label_set"]["classes"] == list(CELEBAMASK_HQ.classes)
    assert len(result.per_image["value"]) == 2


def test_bisenet_checkpoint_loader_is_strict_and_weights_only(tmp_path):
    from benchmark.core.errors import BenchError
    from metrics.backends.bisenet import random_bisenet
    from metrics.backends.parsers import load_bisenet, load_random_bisenet

    torch.save(random_bisenet(seed=0).state_dict(), tmp_path / "79999_iter.pth")
    images = random_images(2, 64, seed=4)
    loaded = load_bisenet(tmp_path, torch.device("cpu"), input_size=64)
    assert torch.equal(loaded.parse(images), load_random_bisenet(None, torch.device("cpu"), input_size=64).parse(images))
    state = random_bisenet(seed=0).state_dict()
    state.pop("conv_out.conv_out.weight")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(BenchError, match="expected layout"):
        load_bisenet(tmp_path / "broken.pth", torch.device("cpu"))
