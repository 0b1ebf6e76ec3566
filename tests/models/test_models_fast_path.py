"""Speed options (`models.FastPath`): defaults, refusals on the CPU, restoring state, and what each option does
to the numbers on tiny models (the measured differences are in docs/speed.md)."""

import pydantic
import pytest
import torch
from models_helpers import (  # noqa: F401
    MICRO_UNET_CONFIG,
    micro_model,
    one_thread,
    smiling_training_setup,
    smooth_images,
    tiny_ft,
)

import models as M
from benchmark.core.errors import BenchError
from benchmark.core.runtime import generator
from models.fast_path import UNTOUCHED, activated

T0, T_EDIT, STEPS = 299, 100, 10


@pytest.fixture(scope="module")
def setup():
    return smiling_training_setup(micro_model(), 2, 16, steps=STEPS, t0=T0, t_edit=T_EDIT)


def _train(setup, fast, lambda_recon: float = 3.0):
    model, loss, images, inv = setup
    ft = tiny_ft(model, seed=4)
    config = M.TrainConfig(t_edit=T_EDIT, n_train_steps=STEPS, t0=T0, lambda_recon=lambda_recon)
    (result,) = M.train_attributes(model, [M.AttributeRun(ft, loss, config)], images, inv, fast_path=fast,
                                   progress=False)
    return result


def _edit(setup, ft, fast):
    model, _, _, inv = setup
    schedule = M.EditSchedule(n_steps=STEPS, t0=T0, t_edit=T_EDIT, t_boost=66)
    job = M.EditJob([(ft, 1.0)], schedule, [generator(i) for i in range(len(inv))])
    return M.generate_batched(model, inv.x_T, [job], fast_path=fast).generations[0].images


def test_the_default_is_the_authors_fp32_and_is_recorded():
    fast = M.FastPath()
    assert fast.is_default and fast.precision == "fp32" and fast.tf32 == "off"
    record = fast.record()
    assert record["flags"] == {"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False, "cudnn.benchmark": False}
    assert record["torch"] == torch.__version__
    assert UNTOUCHED.record()["flags"] == {"cuda.matmul.allow_tf32": None, "cudnn.allow_tf32": None,
                                           "cudnn.benchmark": None}
    with pytest.raises(pydantic.ValidationError, match="compile=True"):
        M.FastPath(cuda_graphs=True)
    with pytest.raises(pydantic.ValidationError):
        M.FastPath(precision="fp16")


@pytest.mark.parametrize("options", [{"tf32": "on"}, {"cudnn_benchmark": True}, {"compile": True, "cuda_graphs": True}])
def test_gpu_only_options_refuse_on_the_cpu(setup, options):
    fast = M.FastPath(**options)
    with pytest.raises(BenchError, match="only work on a CUDA device") as err:
        fast.check("cpu")
    assert "--device cuda" in err.value.fix
    model, _, images, _ = setup
    with pytest.raises(BenchError, match="CUDA"):
        M.invert(model, images, STEPS, t0=T0, fast_path=fast)
    with pytest.raises(BenchError, match="CUDA"):
        _train(setup, fast)


def test_flags_memory_format_and_encode_are_restored(setup):
    model = setup[0]
    unet = model.unet
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    encode = unet._encode_fn
    try:
        torch.backends.cudnn.allow_tf32 = True
        with activated(model, M.FastPath(channels_last=True)):
            assert torch.backends.cudnn.allow_tf32 is False
            assert unet.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
            assert unet._encode_fn is not encode
        assert torch.backends.cudnn.allow_tf32 is True
        assert unet.unet.conv_in.weight.is_contiguous() and unet._encode_fn is encode
        with activated(model, None):  # no options: nothing touched
            assert torch.backends.cudnn.allow_tf32 is True
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_channels_last_changes_only_rounding(setup):
    # Without the L1 term: its sign gradient turns a rounding difference into a different SGD step wherever
    # P_t^edit and P_t^orig nearly agree, and then the runs differ by far more than rounding whatever the memory
    # format. Measured on an AMD EPYC: with it, channels_last moves the trained weights by 1.2e-3 (a flip at the
    # fourth step), and so does scaling the initial f_t by 1 + 1e-6 without channels_last, to the same digits; by
    # 1 + 1e-7, 6e-7. Another CPU had no flip (1.1e-6). The memory format does not touch the loss.
    base, nhwc = _train(setup, M.FastPath(), 0.0), _train(setup, M.FastPath(channels_last=True), 0.0)
    # measured without the L1 term, on the AMD EPYC: max |Δ weight| 7.6e-7 over the run (2 images); an edit with
    # one f_t 1.3e-5 on |x| ≤ 2.5 (1.8e-5 on the other CPU)
    for k, v in base.ft.state_dict().items():
        torch.testing.assert_close(nhwc.ft.state_dict()[k], v, atol=1e-5, rtol=0)
    a, b = _edit(setup, base.ft, M.FastPath()), _edit(setup, base.ft, M.FastPath(channels_last=True))
    torch.testing.assert_close(b, a, atol=1e-4, rtol=0)


def test_bf16_keeps_an_fp32_master_f_t(setup):
    model = setup[0]
    initial = tiny_ft(model, seed=4).state_dict()
    base, bf16 = _train(setup, M.FastPath()), _train(setup, M.FastPath(precision="bf16"))
    assert all(p.dtype == torch.float32 for p in bf16.ft.parameters())
    update = max(float((base.ft.state_dict()[k] - v).abs().max()) for k, v in initial.items())
    moved = max(float((bf16.ft.state_dict()[k] - v).abs().max()) for k, v in base.ft.state_dict().items())
    # bf16 arithmetic really ran (far above fp32 rounding), and it is still the same training: measured 12.6% of
    # the largest weight update on 4 images (on this random UNet, whose activations are large)
    assert 1e-4 < moved < 0.5 * update
    edit32, edit16 = _edit(setup, base.ft, M.FastPath()), _edit(setup, base.ft, M.FastPath(precision="bf16"))
    assert edit16.dtype == torch.float32 and torch.isfinite(edit16).all()
    assert 1e-4 < float((edit16 - edit32).abs().mean()) < 0.05


@pytest.mark.slow
def test_compile_works_on_the_cpu(setup):
    """torch.compile of encode and decode (inductor, C++ on the CPU; about a minute of compilation here)."""
    model, _, images, _ = setup
    eager = M.invert(model, images, STEPS, t0=T0)
    compiled = M.invert(model, images, STEPS, t0=T0, fast_path=M.FastPath(compile=True))
    # measured on an edit: 2.2e-5 on |x| ≤ 2.5; one ε: 2.9e-6 (fused kernels round differently)
    torch.testing.assert_close(compiled.x_T, eager.x_T, atol=1e-4, rtol=0)
    assert model.unet._encode_fn == model.unet._encode  # restored


@pytest.mark.gpu
def test_gpu_options_run_and_stay_close_to_fp32():
    """On a GPU: TF32, cuDNN benchmark, bf16, channels_last, compile and CUDA graphs on an attribute-batched
    training run and a batched edit, against the strict-fp32 run (only loose closeness is asserted; the
    differences are printed for docs/speed.md)."""
    device = torch.device("cuda")
    # fresh models: the cached CPU ones are shared with the other tests
    model = M.random_diffusion_model(MICRO_UNET_CONFIG, seed=0).to(device)
    clip, tokenizer = M.random_open_clip()
    loss = M.DirectionalClipLoss(clip.to(device), tokenizer, "face", "smiling face")
    images = smooth_images(2, size=16).to(device)
    inv = M.invert(model, images, STEPS, t0=T0)
    config = M.TrainConfig(t_edit=T_EDIT, n_train_steps=STEPS, t0=T0)

    def run(fast):
        fts = [tiny_ft(model, seed=4).to(device), tiny_ft(model, seed=5).to(device)]
        runs = [M.AttributeRun(ft, loss, config) for ft in fts]
        M.train_attributes(model, runs, images, inv, fast_path=fast, progress=False)
        return torch.cat([p.detach().flatten() for ft in fts for p in ft.parameters()])

    base = run(M.FastPath())
    for fast in (M.FastPath(tf32="on", cudnn_benchmark=True), M.FastPath(precision="bf16"),
                 M.FastPath(channels_last=True), M.FastPath(compile=True),
                 M.FastPath(compile=True, cuda_graphs=True)):
        moved = float((run(fast) - base).abs().max())
        print(f"{fast.model_dump()}: max |Δ weight| {moved:.3g}")
        assert moved < 0.05
