"""`demo`: the whole pipeline in under a minute on a CPU, offline, with nothing to download.

A one-minute look at the pipeline (`run --suite demo`); the default is `synthetic`. Every stage is the real one
(DDIM inversion, the Asyrp trainer, the asymmetric reverse process, the registered metrics), but the models are
tiny and **randomly initialised** and the images are generated smooth colour fields, so **its numbers mean nothing**:
it shows that the machinery works and what a run produces. The output says so, in the results and the report.
"""

from __future__ import annotations

from benchmark.core.errors import BenchError
from benchmark.inputs.selection import apply_limit, effective_limit, select_attributes
from benchmark.plan.request import RunRequest, fast_path_for, require_packages

DEMO_NOTE = ("DEMO: tiny randomly initialised models on generated images; every number below is meaningless. "
             "It only shows the pipeline at work. The default suite is `synthetic` (`python run_all.py`); "
             "for the paper's table see `python run_all.py run --suite paper-table --help`.")

N_TEST, N_TRAIN, SIZE = 6, 4, 32
STEPS = {"n_inv": 6, "n_train": 6, "n_test": 6}
ATTRIBUTES = [  # prompts and settings of the paper's suite (smiling in-domain, pixar unseen), t_* for 6 steps
    ("smiling", "in-domain", "face", "smiling face", {"t_edit": 500, "t_boost": 167, "lambda_clip": 0.8,
                                                       "lambda_recon": 3.0}),
    ("pixar", "unseen", "human", "3d render in the style of pixar", {"t_edit": 400, "t_boost": 167,
                                                                     "lambda_clip": 0.8, "lambda_recon": 3.0}),
]
# Metric back-ends that need no download: a random CLIP and face parser, a random Inception.
METRICS = [("sdir", "sdir@1", {"backend": "tiny-clip-random", "reference": "original"}),
           ("sc", "sc@1", {"backend": "tiny-faceparser-random", "reference": "reconstruction"}),
           ("kid", "kid@1", {"backend": "tiny-inception-random", "reference": "original"})]


def demo_images(n: int, seed: int):
    """Smooth random colour fields: low-resolution noise, bicubic-upsampled (deterministic)."""
    import torch

    from benchmark.core.hashing import tensor_digest
    from benchmark.run.suite_plan import ImageItem

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    fine = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    pixels = (fine.clamp(0, 1) * 255).round().to(torch.uint8)
    return [ImageItem(f"demo{seed}-{i:02d}", pixels[i], tensor_digest(pixels[i])) for i in range(n)]


def build_demo(request: RunRequest):
    if request.profile or request.data or request.train_data:
        raise BenchError("the demo suite has no profiles and generates its own images",
                         fix="drop --profile/--data/--train-data, or pick a manifest suite (`python run_all.py ls`)")
    require_packages("models", "metrics")
    import metrics
    import models
    from benchmark.core.hashing import json_digest
    from benchmark.core.runtime import resolve_device
    from benchmark.inputs.manifests import Steps
    from benchmark.run.stages.asyrp import AsyrpEngine, TrainSettings
    from benchmark.run.suite_plan import AttributePlan, MetricPlan, SuitePlan

    device = resolve_device(request.device)
    model = models.random_diffusion_model(seed=0, name="demo-random-unet").to(device)
    clip_model, tokenizer = models.random_open_clip(seed=0)
    clip_model = clip_model.to(device)

    def clip_loss(source: str, target: str):
        return models.DirectionalClipLoss(clip_model, tokenizer, source, target, model_name="demo-random-clip")

    attributes = select_attributes(
        [AttributePlan(name, f"{name}@demo", domain, src, trg, settings) for name, domain, src, trg, settings
         in ATTRIBUTES], request.attributes)
    seeds = {"train": 1234, "boost_noise": 0, "bootstrap": 0, "images": 0}
    engine = AsyrpEngine(model=model, steps=Steps(**STEPS), digests={"base_model": "random-seed0",
                                                                     "clip_loss_model": "random-seed0"},
                         train_settings=TrainSettings(epochs=1, batch_size=N_TRAIN, lr=0.5), clip_loss=clip_loss,
                         ft_options={"norm_groups": 8}, seeds=seeds,
                         reference_min_t=min(a.settings["t_edit"] for a in attributes),
                         attribute_batching=request.attribute_batching is not False,
                         fast_path=fast_path_for(request, device), batch_size=request.batch_size)
    metric_plans = [MetricPlan(key, metrics.get_metric(name, device=device, bootstrap_seed=0, **fields))
                    for key, name, fields in METRICS]
    return SuitePlan(suite="demo@1", images=apply_limit(demo_images(N_TEST, 0), request.limit),
                     train_images=demo_images(N_TRAIN, 1), attributes=attributes, metrics=metric_plans,
                     engine=engine, make_edit_set=metrics.EditSet, batch_size=N_TEST, seeds=seeds,
                     manifest_digests={"code:demo@1": json_digest({"steps": STEPS, "attributes": ATTRIBUTES,
                                                                   "metrics": METRICS, "sizes": [N_TEST, N_TRAIN, SIZE],
                                                                   "seeds": seeds})},
                     device=str(device), limit=effective_limit(request.limit, N_TEST), notes=[DEMO_NOTE], grid_count=4)

