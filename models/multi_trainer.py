"""Attribute-batched training: K attributes' f_t trained in one pass over the training images.

At each (image batch, timestep) the K attributes' own trajectories x_t^k go through the frozen UNet and the CLIP
image encoder as one batch of K·B rows (attribute-major); each f_t is applied to its own rows (`BatchedFt`), each
attribute's loss is its own (its prompts' ΔT, λ_clip, λ_recon × its text cosine), and the step backpropagates the
*sum* of the K losses. The f_t parameters are disjoint and every frozen layer treats rows independently (eval
mode), so ∂(Σ_k L_k)/∂θ_k = ∂L_k/∂θ_k: each f_t gets exactly the gradient of its own run, then its own optimiser
step (its own SGD/Adam state and StepLR). At batch size 1 each attribute's training is the authors' batch-1 run,
not a larger batch; results differ from K separate runs only by batch-size-dependent rounding.

Attributes may differ in t_edit: at a training timestep t only those with t on their own training grid (t ≥
t_edit) are in the batch, so the batch shrinks as t falls. The plain-DDIM reference P_t^orig is the same for every
attribute of an image; `reference="on-the-fly"` rolls it once per image alongside, as extra rows of the same UNet
batch (no cache of all training images' trajectories), `reference="cached"` reads `inversions.reference`.

What is shared, exactly: at the first step (t0) every attribute starts from the same x_T, so x_T is encoded once,
its plain ε serves every attribute and the reference, and only the edited decodes run K times. After that the K
trajectories differ and each row is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.core.errors import BenchError
from benchmark.core.registry import require_choice
from models.clip_loss import DirectionalClipLoss, directional_cosine_of_features, directional_loss_of_cosine
from models.ddim import ddim_step
from models.diffusion_model import DiffusionModel
from models.fast_path import FastPath, activated, mark_step
from models.ft_batch import BatchedFt
from models.hspace import HSpace
from models.sampling import Inversion
from models.schedule import training_timesteps
from models.trainer import (
    LossHistory,
    StepRecord,
    TrainConfig,
    TrainResult,
    _batches,
    _floats,
    _optimizer,
    _prepare,
    recon_weight,
)

REFERENCE_MODES = ("on-the-fly", "cached")
# Settings every attribute of one pass must share: they fix the data order and the step grid.
SHARED_FIELDS = ("n_train_steps", "t0", "epochs", "batch_size", "shuffle", "seed")


@dataclass(frozen=True)
class AttributeRun:
    """One attribute's training: its f_t (trained in place), its CLIP loss (prompts) and its config."""

    ft: nn.Module
    clip_loss: DirectionalClipLoss
    config: TrainConfig


def train_attributes(model: DiffusionModel, runs: Sequence[AttributeRun], images: torch.Tensor,
                     inversions: Inversion, *, reference: str = "on-the-fly", ft_batching: str = "auto",
                     fast_path: FastPath | None = None, progress: bool = True) -> list[TrainResult]:
    """Train every run's f_t in one pass; one `TrainResult` per run, in order, with `train_ft`'s history format.

    `images` and `inversions` as for `train_ft`; `inversions` needs a reference trajectory only when
    `reference="cached"`. A single run with `reference="on-the-fly"` is the authors' loop without a cache.
    """
    runs = list(runs)
    reference = require_choice("reference", reference, list(REFERENCE_MODES))
    grid = _check_runs(model, runs, images, inversions, reference)
    first = runs[0].config
    fts = BatchedFt([r.ft.to(model.device).train() for r in runs], ft_batching, device=model.device)
    optimizers = [_optimizer(r.ft, r.config) for r in runs]
    schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=r.config.lr_step_size, gamma=r.config.lr_gamma)
                  for o, r in zip(optimizers, runs, strict=True)]
    histories = [LossHistory() for _ in runs]
    order = torch.Generator().manual_seed(first.seed)
    n_batches = -(-len(images) // first.batch_size)
    bar = tqdm(total=first.epochs * n_batches * len(grid.steps), desc=f"train {len(runs)} f_t", unit="step",
               disable=not progress, leave=False)
    with activated(model, fast_path) as fast:
        for epoch in range(first.epochs):
            for b, index in enumerate(_batches(len(images), first.batch_size, order if first.shuffle else None)):
                rollout = _Rollout(model, runs, fts, optimizers, images, inversions, index, reference, fast)
                for t, t_next in grid.steps:
                    active = [k for k, timesteps in enumerate(grid.per_run) if t in timesteps]
                    for k, record in rollout.step(t, t_next, active, epoch, b):
                        histories[k].steps.append(record)
                    bar.update(1)
            for s in schedulers:
                s.step()
    bar.close()
    return [TrainResult(r.ft.eval(), h, r.config) for r, h in zip(runs, histories, strict=True)]


@dataclass(frozen=True)
class _Grid:
    steps: list[tuple[int, int]]  # the union rollout: t0 down to the lowest t_edit's last training step
    per_run: list[set[int]]  # each run's own training timesteps


def _check_runs(model, runs: list[AttributeRun], images, inversions, reference: str) -> _Grid:
    if not runs:
        raise BenchError("train_attributes got no attribute runs", fix="pass at least one AttributeRun")
    first = runs[0]
    for r in runs[1:]:
        differing = [f for f in SHARED_FIELDS if getattr(r.config, f) != getattr(first.config, f)]
        if differing:
            raise BenchError(f"attributes trained in one pass must share {', '.join(differing)}",
                             fix="train attributes with different data order or step grid in separate passes")
        if not first.clip_loss.same_image_encoder(r.clip_loss):
            raise BenchError("attributes trained in one pass must use one CLIP model and preprocessing",
                             fix="build every attribute's DirectionalClipLoss from the same CLIP model object")
    if len({id(r.ft) for r in runs}) != len(runs):
        raise BenchError("the same f_t module appears in two attribute runs", fix="build one f_t per attribute")
    if reference == "cached" and any(r.config.official_loop for r in runs):
        raise BenchError("official_loop recomputes the reference, but reference='cached' was asked for",
                         fix="use reference='on-the-fly' (the official loop's reference, shared per image)")
    steps = [_prepare(model, images, inversions, r.config, need_reference=reference == "cached") for r in runs]
    longest = max(range(len(runs)), key=lambda k: len(steps[k]))
    c = first.config
    return _Grid(steps[longest], [set(training_timesteps(c.n_train_steps, r.config.t_edit, c.t0)) for r in runs])


class _Rollout:
    """One image batch's rollout over the union grid; `step` runs one optimiser step for every active attribute.

    A run's last training step goes to ᾱ = 1 in its own rollout but here to the next grid point when a run with a
    lower t_edit continues; only x_{t_next} differs, and that x is never used again (P_t depends on ᾱ_t only).
    """

    def __init__(self, model, runs, fts, optimizers, images, inversions, index, reference, fast):
        self.model, self.runs, self.fts, self.optimizers = model, runs, fts, optimizers
        self.inversions, self.index, self.reference, self.fast = inversions, index, reference, fast
        device = model.device
        self.ids = tuple(int(i) for i in index)
        self.x_T = inversions.x_T[index].to(device, torch.float32)
        self.x: torch.Tensor | None = None  # attribute-major rows of `self.active`; None while all are at x_T
        self.x_ref = self.x_T
        self.active: list[int] = []
        with torch.no_grad(), fast.autocast(device):
            self.source = runs[0].clip_loss.encode_images(images[index].to(device, torch.float32)).float()

    def step(self, t: int, t_next: int, active: list[int], epoch: int, batch: int):
        """One optimiser step for every attribute in `active`; yields (attribute index, StepRecord)."""
        clip, recon, totals, losses = self.run_step(t, t_next, active)
        for i, k in enumerate(active):
            rows = slice(i * len(self.ids), (i + 1) * len(self.ids))
            lr = float(self.optimizers[k].param_groups[0]["lr"])
            yield k, StepRecord(epoch, batch, t, self.ids, _floats(clip[rows]), _floats(recon[rows]),
                                _floats(totals[i]), float(losses[i].detach()), lr)

    def run_step(self, t: int, t_next: int, active: list[int]):
        """The step itself: returns the per-row CLIP and L1 terms and each attribute's totals and loss."""
        mark_step(self.fast)
        self._keep(active)
        for k in active:
            self.optimizers[k].zero_grad(set_to_none=True)
        shared = self.x is None
        x_in, eps, enc, eps_ref = self._plain(t, len(active))
        with self.fast.autocast(self.model.device):
            h_edit = self.fts.shifted(enc.h, enc.temb, active, shared=shared)
            eps_edit = self.model.unet.decode(h_edit, enc.skips, enc.temb)
        a_t, a_next = self.model.alpha(t), self.model.alpha(t_next)
        x_next, p_edit = ddim_step(x_in, eps_edit, eps, a_t, a_next)
        p_ref = self._reference(t, a_t, a_next, eps_ref)
        clip, recon, totals, losses = self._losses(p_edit, p_ref, active)
        torch.stack(losses).sum().backward()
        for k in active:
            self.optimizers[k].step()
        self.x, self.active = x_next.detach(), active
        return clip, recon, totals, losses

    def _keep(self, active: list[int]) -> None:
        """Drop the rows of attributes whose training ended (their t_edit is above t)."""
        if self.x is None or active == self.active:
            return
        chunks = self.x.chunk(len(self.active))
        self.x = torch.cat([chunks[self.active.index(k)] for k in active])

    def _plain(self, t: int, k: int):
        """The no-grad part: encode (x_T once while every attribute is there) and plain ε; the reference path's
        rows ride along in the same batch when it is rolled on the fly."""
        unet, b = self.model.unet, len(self.ids)
        shared = self.x is None
        on_the_fly = self.reference == "on-the-fly"
        rows = self.x_T if shared else self.x
        if on_the_fly and not shared:
            rows = torch.cat([rows, self.x_ref])
        with torch.no_grad(), self.fast.autocast(self.model.device):
            enc = unet.encode(rows, t)
            eps_all = unet.decode(enc.h, enc.skips, enc.temb)
        if shared:  # one encode of x_T serves all; decode repeats its skips for the K·B edited rows
            repeat = (k, 1, 1, 1)
            return self.x_T.repeat(repeat), eps_all.repeat(repeat), enc, eps_all if on_the_fly else None
        n = k * b
        edit_rows = HSpace(enc.h[:n], tuple(s[:n] for s in enc.skips), enc.temb[:n])
        return self.x, eps_all[:n], edit_rows, eps_all[n:] if on_the_fly else None

    def _reference(self, t: int, a_t: float, a_next: float, eps_ref) -> torch.Tensor:
        if self.reference == "cached":
            return self.inversions.reference.get(t, self.index, device=self.model.device)
        self.x_ref, p_ref = ddim_step(self.x_ref, eps_ref, eps_ref, a_t, a_next)
        return p_ref

    def _losses(self, p_edit: torch.Tensor, p_ref: torch.Tensor, active: list[int]):
        k, b = len(active), len(self.ids)
        loss0 = self.runs[0].clip_loss
        with self.fast.autocast(self.model.device):
            features = loss0.encode_images(self.model.codec.decode(p_edit)).float()
        targets = torch.cat([self.runs[a].clip_loss.target_direction.expand(b, -1) for a in active])
        cosine = directional_cosine_of_features(features, self.source.repeat(k, 1), targets)
        clip = directional_loss_of_cosine(cosine)
        recon = (p_edit - p_ref.repeat(k, 1, 1, 1)).abs().flatten(1).mean(dim=1)
        totals, losses = [], []
        for i, a in enumerate(active):
            config, rows = self.runs[a].config, slice(i * b, (i + 1) * b)
            total = config.lambda_clip * clip[rows] + recon_weight(config, self.runs[a].clip_loss) * recon[rows]
            totals.append(total)
            losses.append(total.mean())
        return clip, recon, totals, losses
