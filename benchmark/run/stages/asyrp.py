"""The real engine: the stages' `Engine` seam, implemented with the Asyrp core in `models/`.

Everything here is a thin translation between the harness's settings (manifests) and `models`' API:
`models.invert` (DDIM inversion with the cached reference trajectory), `models.train_ft` (the authors' loss,
batched), `models.load_official_ft` (the released DeltaBlocks) and `models.generate` (the asymmetric reverse
process with t_edit, t_boost and the Δh scalings). No method logic lives in the harness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

        model = {"model": self.model_for(attribute).spec(), "code": code_digest("models")}
        if stage == "invert":
            return {**model, "n_inv": self.steps.n_inv, "t0": self.steps.t0, "reference_steps": self.steps.n_train,
                    "reference_min_t": self.reference_min_t}
        if stage == "noise":  # seeded x_T and its plain DDIM sample on the generation grid
            return {**model, "n_test": self.steps.n_test, "t0": self.steps.t0, "reference_steps": self.steps.n_train,
                    "reference_min_t": self.reference_min_t}
        if stage == "train":
            name, options = self._ft_for(attribute)
            spec = {**model, "ft": name, "ft_options": options, "config": self._train_config(attribute).model_dump()}
            if attribute is not None and attribute.init is not None:
                spec["init_from"] = attribute.init.spec()
            return spec
        if stage == "load":
            return {"ft": self.ft_name}
        if stage == "edit":
            name, options = self._ft_for(attribute)
            return {**model, "n_test": self.steps.n_test, "n_train": self.steps.n_train, "t0": self.steps.t0,
                    "ft": name, "ft_options": options,
                    "noise_seed": self.seeds.get("boost_noise", 0)}
        raise ValueError(f"no spec for stage {stage!r}")

    # -- invert --------------------------------------------------------------------------------------------------
    def _inversion_meta(self, with_reference: bool) -> dict[str, str]:
        meta = {"n_steps": str(self.steps.n_inv), "t0": str(self.steps.t0)}
        if with_reference:
            meta.update(reference_n_steps=str(self.steps.n_train), reference_min_t=str(self.reference_min_t))
        return meta

    def invert(self, x0: torch.Tensor, *, with_reference: bool) -> dict[str, torch.Tensor]:
        import models

        inversion = models.invert(self.model, x0, self.steps.n_inv, t0=self.steps.t0,
                                  reference_steps=self.steps.n_train if with_reference else None,
                                  reference_min_t=self.reference_min_t, reconstruct=True, progress=self.progress)
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
    def _train_config(self, attribute: AttributePlan):
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

    def _new_ft(self, attribute: AttributePlan | None = None) -> torch.nn.Module:
        import models

        unet = self.model_for(attribute).unet
        name, options = self._ft_for(attribute)
        return models.build_ft(name, h_channels=unet.h_channels, temb_dim=unet.temb_dim, h_size=unet.h_size,
                               seed=int(self.seeds.get("train", 1234)), **options)

    def train(self, attribute: AttributePlan, x0: torch.Tensor, inversions: Mapping[str, torch.Tensor],
              init_state: Mapping[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Train f_t for `attribute`; with `init_state`, the f_t starts from those weights (loaded strictly)."""
        import models

        if self.clip_loss is None:
            raise RuntimeError("this engine has no CLIP loss; it can only load released f_t")
        inversion = models.Inversion.from_tensors(inversions, self._inversion_meta(with_reference=True))
        config = self._train_config(attribute)
        loss = self.clip_loss(attribute.source_prompt, attribute.target_prompt)
        ft = self._new_ft(attribute)
        if init_state is not None:
            ft.load_state_dict(dict(init_state), strict=True)  # a wrong f_t or shape fails here, by key
        result = models.train_ft(self.model_for(attribute), ft, loss, x0, inversion, config, progress=self.progress)
        steps = result.history.steps
        name, options = self._ft_for(attribute)
        info = {"config": config.model_dump(), "clip_loss": loss.spec(), "ft": {"name": name, "options": options},
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
        ft = self._new_ft(attribute).to(self.model.device)
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
        import models

        ft = self.load_ft(ft_state, attribute)
        schedule = self.schedule(attribute, delta_h_scale)
        ids = ids or [str(i) for i in range(x_T.shape[0])]
        out = models.generate(self.model_for(attribute), x_T, [(ft, 1.0)], schedule, self.noise_generators(ids),
                              progress=self.progress)
        return out.images
