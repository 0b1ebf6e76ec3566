"""h-space property scores: statistics against hand computations, drivers on a micro random model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from models_helpers import micro_model, one_thread, smooth_images  # noqa: F401

import models as M
from benchmark.checks import hspace_properties as P

SCALES = P.LINEARITY_SCALES


# -- statistics -----------------------------------------------------------------------------------------------

def test_r_squared_hand_cases():
    assert P.r_squared([0, 1, 2], [1, 3, 5]) == pytest.approx(1.0)
    # y = (0, 1, 0): the best line is flat at 1/3, which explains nothing
    assert P.r_squared([0, 1, 2], [0, 1, 0]) == pytest.approx(0.0, abs=1e-12)
    # y = (0, 0, 1): slope 1/2, intercept -1/6; residuals (1/6, -1/3, 1/6) -> SSR 1/6; SST 2/3 -> R² 3/4
    assert P.r_squared([0, 1, 2], [0, 0, 1]) == pytest.approx(0.75)
    assert P.r_squared([0, 1, 2], [2, 2, 2]) == 1.0


def test_monotone_on_constructed_curves():
    assert P.is_monotone([-2, -1, 0, 1, 2], +1)
    assert P.is_monotone([-2, -1, -1, 1, 2], +1)  # a tie is still non-decreasing
    assert not P.is_monotone([-2, -1, 0, 1, 2], -1)
    assert not P.is_monotone([-2, 0, -1, 1, 2], +1)
    assert P.is_monotone([3, 1, 0, -1, -4], -1)


def test_exactly_linear_measure_gives_r2_one_and_all_monotone():
    slopes = np.array([0.5, 1.0, 2.0, 3.0])
    responses = slopes[:, None] * np.array(SCALES)[None, :] + 7.0  # an offset is removed (scale 0 is the origin)
    score = P.linearity_scores(SCALES, responses)
    assert score.r2_mean_curve.mean == pytest.approx(1.0)
    assert score.r2_per_image.mean == pytest.approx(1.0)
    assert score.monotone_fraction.mean == 1.0
    assert score.mean_curve_monotone and score.direction == 1
    assert score.slope.mean == pytest.approx(slopes.mean())
    assert score.mean_curve[SCALES.index(1.0)].mean == pytest.approx(slopes.mean())
    assert score.curves[:, SCALES.index(0.0)].tolist() == [0, 0, 0, 0]


def test_linearity_counts_non_monotone_images_and_follows_the_mean_direction():
    up = [-1.0, -0.5, 0.0, 0.5, 1.0]
    bump = [0.0, 1.0, 0.0, 1.0, 0.0]  # not monotone either way
    down = [2.0, 1.0, 0.0, -1.0, -2.0]
    score = P.linearity_scores(SCALES, np.array([down, down, bump, up]))
    assert score.direction == -1  # the mean curve falls
    assert score.monotone_fraction.mean == pytest.approx(0.5)
    assert score.monotone_fraction.n == 4


def test_linearity_refuses_bad_shapes():
    with pytest.raises(ValueError, match="increasing"):
        P.linearity_scores([1.0, 0.0], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="N×5"):
        P.linearity_scores(SCALES, np.zeros((2, 4)))


def test_homogeneity_hand_case():
    v = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    # pairs: (0,1) cos 1, (0,2) 0, (1,2) 0 -> per image 1/2, 1/2, 0; mean pairwise 1/3
    assert P.mean_cosine_to_others(v).tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert P.homogeneity_score(v).mean == pytest.approx(1 / 3)
    assert P.homogeneity_score(np.array([[1.0, 1.0]] * 5)).mean == pytest.approx(1.0)
    opposite = P.homogeneity_score(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    assert opposite.mean == pytest.approx(-1.0)


def test_combination_additive_and_interacting_grids():
    base = np.array([[0.0, 0.0], [1.0, 1.0]])
    da, db = np.array([[1.0, 0.1], [2.0, 0.0]]), np.array([[0.0, 3.0], [0.2, 1.0]])
    additive = {(0.0, 0.0): base, (1.0, 0.0): base + da, (0.0, 1.0): base + db, (1.0, 1.0): base + da + db}
    s = P.combination_scores(additive, ("mouth", "skin"))
    assert s.additivity_error.mean == pytest.approx(0.0, abs=1e-12)
    # retention counts the other edit's leakage too: mouth (1 + 2.2) / (1 + 2), skin (3.1 + 1) / (3 + 1)
    assert s.retention["mouth"].mean == pytest.approx(3.2 / 3)
    assert s.retention["skin"].mean == pytest.approx(4.1 / 4)
    assert s.own["mouth"].mean == pytest.approx(1.5) and s.own["skin"].mean == pytest.approx(2.0)
    assert s.cross["mouth"].mean == pytest.approx(0.1) and s.cross["skin"].mean == pytest.approx(0.05)
    # The joint edit keeps only B's effect: A's retention is B's leakage alone, (0 + 0.2) / 3, and the error is ‖da‖ / (‖da‖ + ‖db‖)
    lost = dict(additive)
    lost[1.0, 1.0] = base + db
    s = P.combination_scores(lost, ("mouth", "skin"))
    assert s.retention["mouth"].mean == pytest.approx(0.2 / 3)
    expected = [np.linalg.norm(da[i]) / (np.linalg.norm(da[i]) + np.linalg.norm(db[i])) for i in range(2)]
    assert s.additivity_error.mean == pytest.approx(np.mean(expected))
    with pytest.raises(ValueError, match="lacks"):
        P.combination_scores({(0.0, 0.0): base}, ("a", "b"))


def test_consistency_scores_extremes():
    plain = torch.zeros(3, 3, 4, 4)
    edit = torch.ones(3, 3, 4, 4)
    shift = np.array([1.0, 2.0, 3.0])
    same = P.consistency_scores("same", plain=plain, edit=edit, other=edit, shift_edit=shift, shift_other=shift)
    assert same.relative_distance.mean == 0.0 and same.shift_ratio.mean == pytest.approx(1.0)
    none = P.consistency_scores("none", plain=plain, edit=edit, other=plain, shift_edit=shift,
                                shift_other=np.zeros(3))
    assert none.relative_distance.mean == pytest.approx(1.0) and none.shift_ratio.mean == 0.0
    half = P.consistency_scores("half", plain=plain, edit=edit, other=edit * 0.5, shift_edit=shift,
                                shift_other=shift / 2)
    assert half.relative_distance.mean == pytest.approx(0.5) and half.shift_ratio.mean == pytest.approx(0.5)


# -- drivers on a micro model ------------------------------------------------------------------------------------

class ConstantDelta(torch.nn.Module):
    """A fake f_t: the same Δh for every image and timestep."""

    def __init__(self, delta: torch.Tensor):
        super().__init__()
        self.delta = delta

    def forward(self, h, temb):
        return self.delta.expand_as(h)


def _mean_colour(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(2, 3))  # N×3: a measure that needs no model


@pytest.fixture(scope="module")
def ctx():
    model = micro_model()
    x0 = smooth_images(3, size=16, seed=1)
    inv = M.invert(model, x0, 6, t0=299)
    schedule = M.EditSchedule(n_steps=6, t0=299, t_edit=100, t_boost=60)
    return P.EditContext(model, inv.x_T, schedule, noise=lambda: torch.Generator().manual_seed(5))


def _constant_delta(model, seed=0, std=0.5):
    u = model.unet
    g = torch.Generator().manual_seed(seed)
    return ConstantDelta(torch.randn(1, u.h_channels, u.h_size, u.h_size, generator=g) * std)


def test_zero_scale_is_plain_generation_and_linearity_runs(ctx):
    ft = _constant_delta(ctx.model)
    run = P.run_linearity(ctx, ft, _mean_colour, 0)
    zero = ctx.generate([(ft, 1.0)], scale=0.0).images
    assert torch.equal(zero, ctx.plain())
    assert set(run.images) == set(SCALES)
    assert run.score.curves.shape == (3, 5)
    assert 0.0 <= run.score.monotone_fraction.mean <= 1.0


def test_constant_delta_h_is_perfectly_consistent_across_timesteps(ctx):
    ft = _constant_delta(ctx.model)
    # a global Δh holding the same constant: the third way to write the same edit
    glob = M.build_ft("global", h_channels=ctx.model.unet.h_channels, temb_dim=ctx.model.unet.temb_dim,
                      h_size=ctx.model.unet.h_size)
    with torch.no_grad():
        glob.delta.copy_(ft.delta[0])
    run = P.run_consistency(ctx, ft, _mean_colour, 0, global_ft=glob)
    assert set(run.scores) == {"time_mean", "image_mean", "global"}
    for score in run.scores.values():
        assert score.relative_distance.mean == pytest.approx(0.0, abs=1e-5)
        assert score.shift_ratio.mean == pytest.approx(1.0, abs=1e-4)
    # the edit moved the images, so the zero distances above are not vacuous
    assert (run.images["delta_h_t"] - run.images["plain"]).abs().max() > 1e-3


def test_a_timestep_dependent_delta_h_is_not_consistent(ctx):
    class Flipping(ConstantDelta):
        calls = 0

        def forward(self, h, temb):  # +Δh at the first edit step, −Δh after: not one direction over t
            self.calls += 1
            return (1.0 if self.calls == 1 else -1.0) * self.delta.expand_as(h)

    ft = Flipping(_constant_delta(ctx.model, std=1.0).delta)
    run = P.run_consistency(ctx, ft, _mean_colour, 0)
    assert run.scores["time_mean"].relative_distance.mean > 0.05


def test_a_remembered_edit_is_never_served_to_another_f_t(ctx, monkeypatch):
    """The context remembers generations by f_t. CPython gives a new object the id (the address) of one just
    freed, and a memo keyed by id alone once served a new f_t the edit of a freed one (a test saw it happen: a
    flipping Δh measured as perfectly consistent). Here every object gets the same id, as a reused address would."""
    import weakref

    context = P.EditContext(ctx.model, ctx.x_T, ctx.schedule, noise=ctx.noise)
    monkeypatch.setattr(P, "id", lambda _obj: 1, raising=False)
    first_ft = _constant_delta(ctx.model, seed=7)
    alive = weakref.ref(first_ft)
    first = context.generate([(first_ft, 1.0)]).images
    del first_ft
    assert alive() is not None  # the memo keeps it, so no other object can take its id
    assert context.generate([(alive(), 1.0)]).images is first  # and the same f_t is remembered
    other = _constant_delta(ctx.model, seed=8)
    assert not torch.equal(context.generate([(other, 1.0)]).images, first)


def test_combination_driver_builds_the_grid(ctx):
    a, b = _constant_delta(ctx.model, seed=1), _constant_delta(ctx.model, seed=2)
    run = P.run_combination(ctx, a, b, _mean_colour, (0, 2), ("red", "blue"), coefficients=(0.0, 0.5, 1.0))
    assert len(run.images) == 9 and torch.equal(run.images[0.0, 0.0], ctx.plain())
    assert math.isfinite(run.score.additivity_error.mean)


def test_delta_h_directions_flatten_over_timesteps():
    d = {10: torch.ones(2, 3, 2, 2), 20: torch.zeros(2, 3, 2, 2)}
    assert P.delta_h_directions(d).shape == (2, 24)
    assert P.time_mean(d).unique().tolist() == [0.5]
    assert P.image_mean({1: torch.arange(4.0).reshape(2, 2)})[1].tolist() == [[1.0, 2.0]]
