"""t_edit / t_boost selection on the authors' CelebA-HQ LPIPS tables, and computing curves for a new model."""

from pathlib import Path

import pytest
import torch
from models_helpers import micro_model, one_thread, smooth_images  # noqa: F401

import models as M
from benchmark.core.errors import BenchError, DataError, MissingWeightsError


def _tables(fixtures):
    return fixtures / "asyrp_official" / "tables"


@pytest.mark.parametrize(("cos", "t_edit"), [(1.0, 538), (0.9, 514), (0.8, 489), (0.7, 459)])
def test_celeba_t_edit_from_the_authors_table(fixtures, cos, t_edit):
    path = _tables(fixtures) / "celeba_LPIPS_distance_x0_t.tsv"
    assert M.select_t_edit(path, cos) == t_edit
    assert M.select_t_edit(str(path), cos) == t_edit


def test_celeba_t_boost_from_the_authors_table(fixtures):
    curve = M.read_lpips_curve(_tables(fixtures) / "celeba_LPIPS_distance_x.tsv")
    assert min(curve) == 1 and max(curve) == 999 and len(curve) == 998  # the authors' table has no t = 998
    assert M.select_t_boost(curve) == 167


def test_rule_is_smallest_t_at_or_above_threshold():
    curve = {5: 0.5, 1: 0.1, 3: 0.33, 2: 0.4}  # not monotone, unsorted: the first t in order that qualifies
    assert M.select_t_edit(curve, cos=1.0) == 2
    assert M.select_t_edit(curve, cos=1.0, threshold=0.45) == 5
    assert M.select_t_boost({10: 1.19, 20: 1.2}) == 20
    with pytest.raises(BenchError, match="never reaches"):
        M.select_t_boost(curve)


def test_malformed_tables_are_reported_with_their_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\t0.1\n2 0.2\n")
    with pytest.raises(DataError, match="bad.tsv:2"):
        M.read_lpips_curve(bad)
    with pytest.raises(DataError, match="not found"):
        M.read_lpips_curve(Path(tmp_path / "none.tsv"))


def test_curves_for_a_new_model_follow_the_authors_indexing():
    """Keys are the upper t of each inversion step; values average the injected distance over images."""
    model = micro_model()
    images = smooth_images(2, size=16)

    def mean_abs(a, b):
        return (a - b).abs().flatten(1).mean(1)

    curves = M.compute_lpips_curves(model, images, n_steps=6, distance=mean_abs)
    grid = M.timestep_grid(6)
    assert sorted(curves.x) == grid[1:] == sorted(curves.x0t)
    inv = M.invert(model, images, 6)
    per_image = mean_abs(inv.x_T, images)
    assert curves.x[999] == pytest.approx(float(per_image.mean()), rel=1e-5)
    assert curves.x_std[999] == pytest.approx(float(per_image.std(unbiased=False)), rel=1e-4)
    with torch.no_grad():  # the first step: P_0 from the clean image, stored under its upper t
        eps = model.unet(images, 0)
        a0 = model.alpha(0)
        p0 = (images - (1 - a0) ** 0.5 * eps) / a0 ** 0.5
    assert curves.x0t[grid[1]] == pytest.approx(float(mean_abs(p0, images).mean()), rel=1e-5)


def test_lpips_without_its_trunk_weights_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MissingWeightsError, match=M.t_select.ALEXNET_WEIGHTS_FILE):
        M.lpips_alex_distance()
