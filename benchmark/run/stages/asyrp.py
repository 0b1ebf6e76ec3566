"""The real engine: the stages' `Engine` seam, implemented with the Asyrp core in `models/`.

Everything here is a thin translation between the harness's settings (manifests) and `models`' API:
`models.invert` (DDIM inversion, with the reference trajectory when training reads it from a cache),
`models.train_attributes` (the authors' loss; several attributes in one pass), `models.load_official_ft` (the
released DeltaBlocks) and `models.generate_batched` (the asymmetric reverse process with t_edit, t_boost and the
Δh scalings; several edits in one batch). No method logic lives in the harness.

Two ways to train and edit, chosen by `attribute_batching` and part of every train and edit key:

- attribute-batched (the default): the attributes that share the training settings train in one
  `train_attributes` pass (each an exact batch-1 run of its own; the reference P_t^orig rolled on the fly, so the
  training inversions carry no reference trajectory), and all edits (attributes × Δh scales) of a chunk of test
  images run as one batch per step;
- sequential: one attribute at a time with the reference trajectory cached at inversion (`train_attributes` with
  one run and `reference="cached"` is `train_ft` bit for bit), one edit setting at a time.

The two differ by float rounding only (docs/speed.md). `fast_path` (`models.FastPath`, strict fp32 by default) is
applied to inversion, training and editing and is part of every key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.core.hashing import sha256_bytes
from benchmark.core.runtime import generator
from benchmark.inputs.manifests import Steps
from benchmark.run.suite_plan import AttributePlan, FtChoice


@dataclass(frozen=True)
class TrainSettings:
    """The suite's training settings; the attribute supplies t_edit and the loss weights."""

    epochs: int = 1
    batch_size: int = 1
    optimizer: str = "sgd"
    lr: float = 0.5
    official_loop: bool = False


def _optimizer_and_lr(settings: TrainSettings, arm: FtChoice | None) -> tuple[str, float]:
    """An ablation arm may set its own optimiser and lr; an arm that switches optimiser without an lr gets that
    optimiser's default (`models.trainer.DEFAULT_LR`), never the other optimiser's lr."""
    from models.trainer import DEFAULT_LR

    if arm is None:
        return settings.optimizer, settings.lr
    optimizer = arm.optimizer or settings.optimizer
    if arm.lr is not None:
        return optimizer, arm.lr
    return optimizer, settings.lr if optimizer == settings.optimizer else DEFAULT_LR[optimizer]


@dataclass
class AsyrpEngine:
    """`model` is a `models.DiffusionModel`; `clip_loss(source_text, target_text)` builds a
    `models.DirectionalClipLoss`; `official(attribute_name)` gives (path, sha256) of a released f_t."""

    model: Any
    steps: Steps
    digests: Mapping[str, str]
    ft_name: str = "conv"
    ft_options: Mapping[str, Any] = field(default_factory=dict)
    train_settings: TrainSettings | None = None
    clip_loss: Callable[[str, str], Any] | None = None
    seeds: Mapping[str, int] = field(default_factory=dict)
    reference_min_t: int = 0  # keep P_t^orig only for t ≥ this (the lowest t_edit of the suite): memory
    progress: bool = False
    attribute_batching: bool = True  # train (and edit) the attributes that share settings in one batched pass
    fast_path: Any = None  # models.FastPath; None is strict fp32 (FastPath()), never "whatever torch does"
    batch_size: int | None = None  # UNet rows per batch for inversion and editing; None: from free memory

    # -- execution -----------------------------------------------------------------------------------------------
    @property
    def fast(self):
        import models

        return self.fast_path or models.FastPath()

    @property
    def needs_reference(self) -> bool:
        """Whether training reads P_t^orig cached at inversion (sequential) or rolls it on the fly (batched)."""
        return not self.attribute_batching and not (self.train_settings or TrainSettings()).official_loop

    def training_mode(self) -> dict[str, str]:
        mode = "attribute-batched" if self.attribute_batching else "sequential"
        return {"mode": mode, "reference": "cached" if self.needs_reference else "on-the-fly"}

    def editing_mode(self) -> str:
        return "batched" if self.attribute_batching else "sequential"

    def execution(self) -> dict[str, Any]:
        """What the results record about how this engine computed (not what: that is in the keys)."""
        return {"fast_path": self.fast.record(), "attribute_batching": self.attribute_batching,
                "training": self.training_mode(), "editing": self.editing_mode(),
                "batch_size": self.batch_size if self.batch_size is not None else "auto"}

    def unet_batch(self, *, cpu_default: int | None) -> int | None:
        """UNet rows per batch: `batch_size` if given; on CUDA from the free memory; else `cpu_default` (None:
        no limit; host memory is not what limits a CPU run)."""
        import models

        if self.batch_size is not None:
            return self.batch_size
        if self.model.device.type != "cuda":
            return cpu_default
        return models.unet_forward_batch_size(self.model)

    def batch_group(self, attribute: AttributePlan) -> tuple:
        """Attributes with equal groups may train in one pass: the settings that fix the data order and grid,
        and the h-space layer (one pass runs one model)."""
        from models.multi_trainer import SHARED_FIELDS

        config = self.train_config(attribute)
        return (*(getattr(config, f) for f in SHARED_FIELDS), self.model_for(attribute).unet.layer)

    _layer_models: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def model_for(self, attribute: AttributePlan | None = None):
        """The base model with h at the attribute's arm's layer (shared weights), else the suite's model. DDIM
        inversion does not depend on where h is taken, so inversions stay keyed on the suite's model."""
        layer = attribute.ft.hspace_layer if attribute is not None and attribute.ft is not None else None
        if layer is None or layer == self.model.unet.layer:
            return self.model
        if layer not in self._layer_models:
            self._layer_models[layer] = self.model.with_hspace_layer(layer)
        return self._layer_models[layer]

    # -- keys ----------------------------------------------------------------------------------------------------
    def spec_for(self, stage: str, attribute: AttributePlan | None = None) -> dict[str, Any]:
        from benchmark.run.cache import code_digest

        model = {"model": self.model_for(attribute).spec(), "code": code_digest("models"),
                 "fast_path": self.fast.model_dump()}
        if stage == "invert":
            return {**model, "n_inv": self.steps.n_inv, "t0": self.steps.t0, "reference_steps": self.steps.n_train,
                    "reference_min_t": self.reference_min_t}
        if stage == "noise":  # seeded x_T and its plain DDIM sample on the generation grid
            return {**model, "n_test": self.steps.n_test, "t0": self.steps.t0, "reference_steps": self.steps.n_train,
                    "reference_min_t": self.reference_min_t}
        if stage == "train":
            name, options = self._ft_for(attribute)
            spec = {**model, "ft": name, "ft_options": options, "config": self.train_config(attribute).model_dump(),
                    "training": self.training_mode()}
            if attribute is not None and attribute.init is not None:
                spec["init_from"] = attribute.init.spec()
            return spec
        if stage == "load":
            return {"ft": self.ft_name}
        if stage == "edit":
            name, options = self._ft_for(attribute)
            return {**model, "n_test": self.steps.n_test, "n_train": self.steps.n_train, "t0": self.steps.t0,
                    "ft": name, "ft_options": options,
                    "noise_seed": self.seeds.get("boost_noise", 0), "editing": self.editing_mode()}
        raise ValueError(f"no spec for stage {stage!r}")

    # -- invert --------------------------------------------------------------------------------------------------
    def _inversion_meta(self, with_reference: bool) -> dict[str, str]:
        meta = {"n_steps": str(self.steps.n_inv), "t0": str(self.steps.t0)}
        if with_reference:
            meta.update(reference_n_steps=str(self.steps.n_train), reference_min_t=str(self.reference_min_t))
        return meta

    def invert(self, x0: torch.Tensor, *, with_reference: bool, reconstruct: bool = True) -> dict[str, torch.Tensor]:
        import models

        inversion = models.invert(self.model, x0, self.steps.n_inv, t0=self.steps.t0,
                                  reference_steps=self.steps.n_train if with_reference else None,
                                  reference_min_t=self.reference_min_t, reconstruct=reconstruct,
                                  progress=self.progress, fast_path=self.fast)
        tensors, _ = inversion.to_tensors()
        return tensors

    def noise(self, n: int, *, seed: int, start: int, with_reference: bool) -> dict[str, torch.Tensor]:
        """Items `start` .. `start + n − 1` of seeded noise: `x_T`, `reconstruction` (the plain DDIM sample on the
        generation grid, what edits are measured against) and, for training, the reference trajectory and the
        float `sample` the CLIP source is made from (`models.noise_source`)."""
        import models

        src = models.noise_source(self.model, n, seed=seed, start=start, n_steps=self.steps.n_test,
                                  t0=self.steps.t0, reference_steps=self.steps.n_train if with_reference else None,
                                  reference_min_t=self.reference_min_t, clip_source="sample")
        tensors, _ = src.inversion.to_tensors()
        if with_reference:
            tensors["sample"] = src.images.contiguous()
        return tensors

    # -- train ---------------------------------------------------------------------------------------------------
    def train_config(self, attribute: AttributePlan):
        """The attribute's `models.TrainConfig`: its settings, and its f_t arm's optimiser and lr, else the suite's."""
        import models

        s = self.train_settings or TrainSettings()
        optimizer, lr = _optimizer_and_lr(s, attribute.ft)
        a = attribute.settings
        return models.TrainConfig(
            t_edit=int(a["t_edit"]), n_train_steps=self.steps.n_train, t0=self.steps.t0,
            lambda_clip=float(a["lambda_clip"]), lambda_recon=float(a["lambda_recon"]),
            recon_times_text_cosine=bool(a.get("lambda_recon_times_text_cosine", True)),
            optimizer=optimizer, lr=lr, epochs=s.epochs, batch_size=s.batch_size,
            seed=int(self.seeds.get("train", 1234)), official_loop=s.official_loop)

    def _ft_for(self, attribute: AttributePlan | None) -> tuple[str, dict[str, Any]]:
        """The f_t (name, options) of an attribute: its ablation arm's, else the engine's."""
        if attribute is not None and attribute.ft is not None:
            return attribute.ft.name, dict(attribute.ft.options)
        return self.ft_name, dict(self.ft_options)

    def new_ft(self, attribute: AttributePlan | None = None) -> torch.nn.Module:
        """A freshly initialised f_t (the attribute's arm's, else the engine's), seeded with the train seed."""
        import models

        unet = self.model_for(attribute).unet
        name, options = self._ft_for(attribute)
        return models.build_ft(name, h_channels=unet.h_channels, temb_dim=unet.temb_dim, h_size=unet.h_size,
                               seed=int(self.seeds.get("train", 1234)), **options)

    def train(self, attribute: AttributePlan, x0: torch.Tensor, inversions: Mapping[str, torch.Tensor],
              init_state: Mapping[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Train f_t for `attribute`; with `init_state`, the f_t starts from those weights (loaded strictly)."""
        return self.train_many([attribute], x0, inversions, init_states=[init_state])[0]

    def train_many(self, attributes: Sequence[AttributePlan], x0: torch.Tensor, inversions: Mapping[str, torch.Tensor],
                   init_states: Sequence[Mapping[str, torch.Tensor] | None] | None = None,
                   ) -> list[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
        """Train the attributes' f_t in one pass (attribute-batched; they share `batch_group`) or one after another
        (sequential); one (state dict, info) per attribute, in order."""
        import models

        if self.clip_loss is None:
            raise RuntimeError("this engine has no CLIP loss; it can only load released f_t")
        with_reference = any(k.startswith("reference.") for k in inversions)
        inversion = models.Inversion.from_tensors(inversions, self._inversion_meta(with_reference=with_reference))
        inits = list(init_states) if init_states is not None else [None] * len(attributes)
        runs = [models.AttributeRun(self._starting_ft(a, init), self.clip_loss(a.source_prompt, a.target_prompt),
                                    self.train_config(a)) for a, init in zip(attributes, inits, strict=True)]
        mode = self.training_mode()
        passes = [list(range(len(runs)))] if self.attribute_batching else [[i] for i in range(len(runs))]
        results: list[Any] = [None] * len(runs)
        for group in passes:
            trained = models.train_attributes(self.model_for(attributes[group[0]]), [runs[i] for i in group], x0,
                                              inversion, reference=mode["reference"], fast_path=self.fast,
                                              progress=self.progress)
            for i, result in zip(group, trained, strict=True):
                results[i] = result
        names = [a.name for a in attributes]
        return [self._trained(a, run, result, names if self.attribute_batching else [a.name])
                for a, run, result in zip(attributes, runs, results, strict=True)]

    def _starting_ft(self, attribute: AttributePlan, init_state: Mapping[str, torch.Tensor] | None):
        ft = self.new_ft(attribute)
        if init_state is not None:
            ft.load_state_dict(dict(init_state), strict=True)  # a wrong f_t or shape fails here, by key
        return ft

    def _trained(self, attribute: AttributePlan, run, result, pass_names: list[str]):
        steps = result.history.steps
        name, options = self._ft_for(attribute)
        info = {"config": run.config.model_dump(), "clip_loss": run.clip_loss.spec(),
                "ft": {"name": name, "options": options}, "training": {**self.training_mode(), "pass": pass_names},
                "history": {"t": [s.t for s in steps], "loss": [s.loss for s in steps]}}
        if attribute.init is not None:
            info["init_from"] = attribute.init.spec()
        return {k: v.detach().cpu() for k, v in result.ft.state_dict().items()}, info

    def load_init(self, attribute: AttributePlan) -> dict[str, torch.Tensor]:
        """The weights a transfer f_t starts from, when they come from a file: a released f_t (the authors'
        format, `models.load_official_ft`) or a finished run's saved f_t; both digest-checked before loading."""
        import models

        init = attribute.init
        if init.kind == "released":
            block = models.load_official_ft(init.path, sha256=init.sha256)
            return {k: v.detach().cpu() for k, v in block.state_dict().items()}
        from benchmark.inputs.saved_ft import load_ft_file

        return load_ft_file(init.path, sha256=init.sha256)

    def load_official(self, attribute: AttributePlan) -> dict[str, torch.Tensor]:
        import models

        path, sha256 = attribute.official_ft
        block = models.load_official_ft(path, sha256=sha256)
        return {k: v.detach().cpu() for k, v in block.state_dict().items()}

    # -- edit ----------------------------------------------------------------------------------------------------
    def noise_generators(self, ids: list[str]) -> list[torch.Generator]:
        """One generator per image, seeded from the image id, so an image's η = 1 noise does not depend on which
        images share its batch or on `--limit`."""
        base = int(self.seeds.get("boost_noise", 0))
        return [generator(int(sha256_bytes(f"{base}:{i}".encode())[:12], 16), self.model.device) for i in ids]

    def load_ft(self, ft_state: Mapping[str, torch.Tensor], attribute: AttributePlan | None = None,
                ) -> torch.nn.Module:
        """The f_t of this attribute (its ablation arm's, else the engine's) with the given weights, on the model's
        device, in eval mode."""
        ft = self.new_ft(attribute).to(self.model.device)
        ft.load_state_dict({k: v.to(self.model.device) for k, v in ft_state.items()}, strict=True)
        return ft.eval()

    def schedule(self, attribute: AttributePlan, delta_h_scale: float = 1.0):
        """The attribute's test-time schedule (t_edit, t_boost, the n_train/n_test Δh scaling)."""
        import models

        a = attribute.settings
        return models.EditSchedule(n_steps=self.steps.n_test, t0=self.steps.t0, t_edit=int(a["t_edit"]),
                                   t_boost=int(a["t_boost"]), delta_scale=delta_h_scale,
                                   n_train_steps=self.steps.n_train)

    def edit(self, attribute: AttributePlan, ft_state: Mapping[str, torch.Tensor], x_T: torch.Tensor, *,
             delta_h_scale: float = 1.0, ids: list[str] | None = None) -> torch.Tensor:
        return self.edit_many([(attribute, ft_state, delta_h_scale)], x_T, ids=ids)[0]

    def edit_many(self, settings: Sequence[tuple[AttributePlan, Mapping[str, torch.Tensor], float]],
                  x_T: torch.Tensor, *, ids: list[str] | None = None) -> list[torch.Tensor]:
        """The edited images of every (attribute, f_t state, Δh scale) on the same x_T, in order: one batch per
        step over all settings (batched) or one setting at a time (sequential); images in chunks that fit the
        device. Each image's η = 1 noise comes from its own generator, so chunks do not change it."""
        import models

        ids = ids or [str(i) for i in range(x_T.shape[0])]
        jobs = [(self.load_ft(state, a), self.schedule(a, scale)) for a, state, scale in settings]
        passes = self._edit_passes([a for a, _, _ in settings])
        out: list[list[torch.Tensor]] = [[] for _ in jobs]
        rows = self.unet_batch(cpu_default=None)
        for members in passes:
            per_chunk = x_T.shape[0] if rows is None else max(1, rows // len(members))
            for start in range(0, x_T.shape[0], per_chunk):
                chunk = slice(start, start + per_chunk)
                edit_jobs = [models.EditJob([(jobs[j][0], 1.0)], jobs[j][1], self.noise_generators(ids[chunk]))
                             for j in members]
                gens = models.generate_batched(self.model_for(settings[members[0]][0]), x_T[chunk], edit_jobs,
                                               fast_path=self.fast,
                                               progress=self.progress).generations
                for j, g in zip(members, gens, strict=True):
                    out[j].append(g.images)
        return [torch.cat(parts) for parts in out]

    def _edit_passes(self, attributes: Sequence[AttributePlan]) -> list[list[int]]:
        """Indices of the settings edited together: all that share an h-space layer (batched), else one each."""
        if not self.attribute_batching:
            return [[j] for j in range(len(attributes))]
        by_layer: dict[Any, list[int]] = {}
        for j, a in enumerate(attributes):
            by_layer.setdefault(self.model_for(a).unet.layer, []).append(j)
        return list(by_layer.values())
