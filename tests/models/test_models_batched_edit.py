"""Batched editing (`models.generate_batched`) against one `generate` call per edit, on the micro UNet.

Runs between t0 = 299 and 0 (a random UNet's x stays O(1) there) with t_boost = 66, so the last two steps add
η = 1 noise and the per-image generators are exercised.
"""

import pytest
import torch
from models_helpers import micro_model, one_thread, smooth_images, tiny_ft  # noqa: F401

import models as M
from benchmark.core.errors import BenchError
from benchmark.core.runtime import generator

T0, STEPS, T_BOOST, N = 299, 10, 66, 3
# Batch composition alone moves the result at the rounding level: the same `generate` call run one image at a
# time instead of three at once differs by 1.2e-5 on |x_0| ≤ 3.2 (measured); the batched edits differed from the
# per-edit calls by at most 8.8e-6, i.e. 4.6e-6 of the scale. The tolerance is 2e-5 of each edit's scale. A wrong
# noise stream, Δh scale, f_t or t_edit moves x_0 by O(0.1) or more.
REL_TOL = 2e-5


def _generators(seed0: int = 100):
    """Fresh per-image generators, as the harness makes them for every edit call."""
    return [generator(seed0 + i) for i in range(N)]


@pytest.fixture(scope="module")
def setup():
    model = micro_model()
    x_T = M.invert(model, smooth_images(N, size=16), STEPS, t0=T0).x_T
    fts = [tiny_ft(model, seed=s) for s in (1, 2, 3)]
    return model, x_T, fts


def _schedule(**kw):
    return M.EditSchedule(**{"n_steps": STEPS, "t0": T0, "t_boost": T_BOOST, "n_train_steps": STEPS, **kw})


def _jobs(fts):
    jobs = [M.EditJob([(ft, 1.0)], _schedule(t_edit=t_edit, delta_scale=scale), _generators())
            for ft, t_edit in zip(fts, (100, 166, 232), strict=True) for scale in (1.0, 0.5)]
    plain = [M.EditJob([], _schedule(), _generators()), M.EditJob([], _schedule(), _generators()),
             M.EditJob([], _schedule(t_boost=0))]  # two boosted plain paths (equal seeds) and one η = 0 path
    return jobs + plain


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=REL_TOL * float(b.abs().max()))


def test_batched_edits_equal_one_generate_call_each(setup):
    model, x_T, fts = setup
    jobs = _jobs(fts)
    out = M.generate_batched(model, x_T, jobs)
    for job, got in zip(jobs, out.generations, strict=True):
        expected = M.generate(model, x_T, job.edits, job.schedule, _generators() if job.generator else None)
        _close(got.latents, expected.latents)
        _close(got.images, expected.images)
        assert got.scale == expected.scale
    # what was shared: at t0 one encode per image for all 9 jobs; then the 6 edits are apart and the plain paths
    # share one row per image until η splits the η = 0 path off (t = 33 < t_boost); the two boosted ones, whose
    # equal seeds draw equal noise, stay together to the end.
    assert out.encoded_rows == [N] + [6 * N + N] * 8 + [6 * N + 2 * N]


def test_an_images_noise_does_not_depend_on_its_batch(setup):
    model, x_T, fts = setup
    schedule = _schedule(t_edit=166)
    both = M.generate_batched(model, x_T, [M.EditJob([(fts[0], 1.0)], schedule, _generators())])
    alone = M.generate_batched(model, x_T[1:2], [M.EditJob([(fts[0], 1.0)], schedule, [generator(101)])])
    _close(both.generations[0].latents[1:2], alone.generations[0].latents)
    other_seed = M.generate_batched(model, x_T[1:2], [M.EditJob([(fts[0], 1.0)], schedule, [generator(7)])])
    assert (other_seed.generations[0].latents - alone.generations[0].latents).abs().max() > 1e-2


def test_one_generator_per_job_draws_like_generate(setup):
    model, x_T, fts = setup
    job = M.EditJob([(fts[1], 1.0)], _schedule(t_edit=100), generator(5))
    (got,) = M.generate_batched(model, x_T, [job]).generations
    _close(got.latents, M.generate(model, x_T, job.edits, job.schedule, generator(5)).latents)


def test_jobs_that_cannot_share_a_batch_are_refused(setup):
    model, x_T, fts = setup
    with pytest.raises(BenchError, match="step grid"):
        M.generate_batched(model, x_T, [M.EditJob([], _schedule(t_boost=0)),
                                        M.EditJob([], _schedule(t_boost=0, n_steps=20))])
    with pytest.raises(BenchError, match="generator"):
        M.generate_batched(model, x_T, [M.EditJob([(fts[0], 1.0)], _schedule())])
    with pytest.raises(BenchError, match="no edit jobs"):
        M.generate_batched(model, x_T, [])
