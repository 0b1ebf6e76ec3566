"""The batched trainer on a tiny UNet and a tiny CLIP.

A random UNet is no denoiser: from t = 999 its P_t reaches |x| ~ 1e2 and the L1 term swamps everything. These
tests therefore run the diffusion between t0 = 299 and t_edit = 100 (the authors' code takes t_0 as an option),
where P_t stays O(1).
"""

import numpy as np
import pydantic
import pytest
import torch
from models_helpers import micro_model, one_thread, smiling_training_setup, tiny_ft  # noqa: F401

import models as M
from benchmark.core.errors import BenchError, DataError

T0, T_EDIT, STEPS = 299, 100, 10


@pytest.fixture(scope="module")
def setup():
    return smiling_training_setup(micro_model(), 4, 16, steps=STEPS, t0=T0, t_edit=T_EDIT)


def _config(**kw):
    return M.TrainConfig(**{"t_edit": T_EDIT, "n_train_steps": STEPS, "t0": T0, **kw})


def _mean(history, key):
    return float(np.mean([r[key] for r in history.rows()]))


def test_one_epoch_lowers_the_directional_loss_and_changes_the_edit(setup):
    model, loss, images, inv = setup
    ft = tiny_ft(model)
    initial = {k: v.clone() for k, v in ft.state_dict().items()}
    config = _config(batch_size=1)
    before = M.evaluate_losses(model, ft, loss, images, inv, config)
    result = M.train_ft(model, ft, loss, images, inv, config, progress=False)
    after = M.evaluate_losses(model, ft, loss, images, inv, config)
    # the same (image, t) pairs, before the first step and after the last one
    assert before.per_image("clip").keys() == after.per_image("clip").keys()
    assert _mean(after, "clip") < _mean(before, "clip") - 0.05
    assert len(result.history.steps) == 4 * len(M.training_steps(STEPS, T_EDIT, T0))
    assert result.ft is ft and not ft.training

    untrained = tiny_ft(model)
    untrained.load_state_dict(initial)
    schedule = M.EditSchedule(n_steps=STEPS, t0=T0, t_edit=T_EDIT)
    edited = M.generate(model, inv.x_T, [(ft, 1.0)], schedule).images
    edited_before = M.generate(model, inv.x_T, [(untrained, 1.0)], schedule).images
    assert (edited - edited_before).abs().mean() > 1e-2


def test_batch_of_four_gives_the_per_image_losses_of_four_batches_of_one(setup):
    model, loss, images, inv = setup
    ft = tiny_ft(model, seed=3)
    batched = M.evaluate_losses(model, ft, loss, images, inv, _config(), batch_size=4)
    single = M.evaluate_losses(model, ft, loss, images, inv, _config(), batch_size=1)
    a, b = batched.per_image("total"), single.per_image("total")
    assert a.keys() == b.keys() and len(a) == 4 * 6
    assert max(abs(a[k] - b[k]) for k in a) < 1e-4  # losses are O(1); batch-size-dependent CPU rounding only


def test_official_loop_matches_the_cached_reference_at_batch_one(setup):
    model, loss, images, _ = setup
    # The cached reference is rolled at batch size 1, as the official loop rolls its own: CPU kernels round
    # differently at other batch sizes, and the L1 term's sign gradient turns a 1e-7 difference of P_t into a
    # different SGD step wherever P_t^edit ≈ P_t^orig, so only equal numerics can be compared to 1e-5.
    inv = M.invert(model, images, STEPS, t0=T0, reference_steps=STEPS, reference_min_t=T_EDIT, batch_size=1)
    ft_official, ft_cached = tiny_ft(model, seed=4), tiny_ft(model, seed=4)
    official = M.train_ft(model, ft_official, loss, images, inv, _config(official_loop=True), progress=False)
    cached = M.train_ft(model, ft_cached, loss, images, inv, _config(), progress=False)
    for k, v in ft_official.state_dict().items():
        assert torch.allclose(v, ft_cached.state_dict()[k], atol=1e-5), k
    losses = [s.loss for s in official.history.steps], [s.loss for s in cached.history.steps]
    assert np.allclose(*losses, rtol=1e-4)


def test_batched_training_is_seeded_and_records_per_image_history(setup, capsys):
    model, loss, images, inv = setup
    config = _config(batch_size=2, shuffle=True, epochs=2, seed=11)
    runs = [M.train_ft(model, tiny_ft(model, seed=5), loss, images, inv, config, progress=True) for _ in range(2)]
    assert "train f_t" in capsys.readouterr().err  # the progress bar goes to stderr
    a, b = (r.ft.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = runs[0].history
    g = torch.Generator().manual_seed(11)
    expected_order = [torch.randperm(4, generator=g).tolist() for _ in range(2)]
    seen = [[i for s in history.steps if s.epoch == e and s.t == T0 for i in s.image_ids] for e in range(2)]
    assert seen == expected_order
    frame = history.to_pandas()
    assert len(frame) == 2 * 4 * 6
    assert set(frame.columns) >= {"epoch", "t", "image", "clip", "recon", "total", "batch_loss", "lr"}
    row = history.rows()[0]
    lam = loss.text_cosine * 3.0
    assert row["total"] == pytest.approx(1.0 * row["clip"] + lam * row["recon"], rel=1e-5)


def test_bad_inputs_fail_early_with_a_fix(setup):
    model, loss, images, inv = setup
    bare = M.invert(model, images, STEPS, t0=T0)
    with pytest.raises(BenchError, match="reference_steps=10"):
        M.train_ft(model, tiny_ft(model), loss, images, bare, _config(), progress=False)
    other_grid = M.invert(model, images, STEPS, t0=T0, reference_steps=2 * STEPS - 1, reference_min_t=0)
    with pytest.raises(BenchError, match="reference trajectory"):  # same t values, but another grid's path
        M.train_ft(model, tiny_ft(model), loss, images, other_grid, _config(), progress=False)
    with pytest.raises(DataError, match="t0"):
        M.train_ft(model, tiny_ft(model), loss, images, inv, _config(t0=999), progress=False)
    with pytest.raises(DataError, match="same images"):
        M.train_ft(model, tiny_ft(model), loss, images[:3], inv, _config(), progress=False)
    with pytest.raises(pydantic.ValidationError, match="official_loop"):
        _config(official_loop=True, batch_size=4)
