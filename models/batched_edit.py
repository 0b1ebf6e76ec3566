"""Batched editing: many edits of the same images (attributes × Δh scales × …) as one UNet batch per step.

Each `EditJob` is one call of `generate` (its f_t combination, its schedule, its noise generators) on the same
x_T; `generate_batched` gives each job the `Generation` that call would give, up to batch-size-dependent
rounding. The jobs' rows go through one encode per step, and rows whose x_t are *bitwise identical* share it:

- at t0 every job of an image starts from the same x_T, so each image is encoded once for all jobs; the jobs then
  decode their own h + Δh (and share the plain ε);
- afterwards a row keeps sharing only while it has taken the same steps as another row of its image: both plain
  (no Δh at that t, e.g. a job without edits, or t < t_edit of both after neither has ever edited) with the same
  η, and, when η = 1, noise that compares equal. A job that applied a Δh at t forms its own group from then on
  (two jobs with the same f_t and scale are not detected as equal: sharing is conservative, never wrong).

The η = 1 noise of a job comes from that job's own generators, drawn exactly as `generate` draws it (one draw per
step below t_boost, per image when given one generator per image), so an image's noise does not depend on the
other jobs or images in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from benchmark.core.errors import BenchError, DataError
from models.ddim import ddim_step
from models.diffusion_model import DiffusionModel
from models.fast_path import FastPath, activated
from models.sampling import (
    EditSchedule,
    FtCallable,
    Generation,
    Generators,
    _check_edits,
    _direction,
    _FixedDelta,
    _noise,
)
from models.schedule import reverse_steps


@dataclass(frozen=True)
class EditJob:
    """One `generate(model, x_T, edits, schedule, generator)` call to batch with others."""

    edits: Sequence[tuple[FtCallable, float]]
    schedule: EditSchedule
    generator: Generators = None


@dataclass
class BatchedGenerations:
    """One `Generation` per job, in order; `encoded_rows[s]` = rows encoded at step s (what sharing saved)."""

    generations: list[Generation]
    encoded_rows: list[int] = field(default_factory=list)


def generate_batched(model: DiffusionModel, x_T: torch.Tensor, jobs: Sequence[EditJob], *,
                     fast_path: FastPath | None = None, progress: bool = False) -> BatchedGenerations:
    """Run every job on the same `x_T` (N images) in one batch per step. Jobs must share the step grid
    (`n_steps`, `t0`); t_edit, t_boost, Δh scale and f_t are per job."""
    jobs = _check_jobs(model, x_T, jobs)
    first = jobs[0].schedule
    state = _Rows(x_T.to(model.device, torch.float32), len(jobs))
    encoded = []
    with activated(model, fast_path) as fast, torch.no_grad():
        for t, t_next in tqdm(reverse_steps(first.n_steps, first.t0), desc="batched Asyrp sampling", unit="step",
                              disable=not progress, leave=False):
            encoded.append(state.n_groups)
            with fast.autocast(model.device):
                eps, eps_edit, edited = _epsilons(model, jobs, state, t)
            state.advance(model, jobs, eps, eps_edit, edited, t, t_next)
        gens = [Generation(latents=x, images=model.codec.decode(x), scale=j.schedule.effective_scale)
                for x, j in zip(state.x.chunk(len(jobs)), jobs, strict=True)]
    return BatchedGenerations(gens, encoded)


def _check_jobs(model: DiffusionModel, x_T: torch.Tensor, jobs: Sequence[EditJob]) -> list[EditJob]:
    jobs = list(jobs)
    if not jobs:
        raise BenchError("generate_batched got no edit jobs", fix="pass at least one EditJob")
    if x_T.ndim != 4 or tuple(x_T.shape[1:]) != model.latent_shape:
        raise DataError(f"x_T has shape {tuple(x_T.shape)}; {model.name} expects N×"
                        + "×".join(map(str, model.latent_shape)))
    grid = (jobs[0].schedule.n_steps, jobs[0].schedule.t0)
    for j in jobs:
        if (j.schedule.n_steps, j.schedule.t0) != grid:
            raise BenchError("batched edit jobs must share the step grid (n_steps, t0)",
                             fix="run jobs with another grid in a separate generate_batched call")
        needs_noise = any(t < j.schedule.t_boost for t, _ in reverse_steps(*grid))
        if needs_noise and j.generator is None:
            raise BenchError(f"t_boost={j.schedule.t_boost} adds noise below it, and a job has no generator",
                             fix="give each job generator=[benchmark.core.runtime.generator(seed) per image]")
    return [EditJob(_check_edits(j.edits), j.schedule, j.generator) for j in jobs]


class _Rows:
    """x_t of every (job, image) row, job-major, and which rows hold bitwise-identical x_t (`group`)."""

    def __init__(self, x_T: torch.Tensor, n_jobs: int):
        self.n = x_T.shape[0]
        self.x = x_T.repeat(n_jobs, 1, 1, 1)
        self.group = torch.arange(self.n).repeat(n_jobs)  # row -> group id; initially one group per image

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1

    def representatives(self) -> torch.Tensor:
        """The first row of each group (group ids are 0..G-1 in order of first appearance)."""
        first: dict[int, int] = {}
        for row, group in enumerate(self.group.tolist()):
            first.setdefault(group, row)
        return torch.tensor([first[g] for g in range(len(first))])

    def advance(self, model, jobs, eps, eps_edit, edited, t, t_next) -> None:
        a_t, a_next = model.alpha(t), model.alpha(t_next)
        out, eta_of = [], []
        for j, job in enumerate(jobs):
            rows = slice(j * self.n, (j + 1) * self.n)
            eta = 1.0 if t < job.schedule.t_boost else 0.0
            noise = _noise(self.x[rows], job.generator) if eta else None
            x_next, _ = ddim_step(self.x[rows], eps_edit[rows], eps[rows], a_t, a_next, eta=eta, noise=noise)
            out.append(x_next)
            eta_of.append(eta)
        self.x = torch.cat(out)
        self._regroup(edited, eta_of)

    def _regroup(self, edited: list[bool], eta_of: list[float]) -> None:
        """Rows stay together when they were together, neither applied a Δh, they took the same η, and (η > 0)
        their new x compares equal (equal seeds give equal noise)."""
        keys: dict[tuple, list[int]] = {}
        new_group = torch.empty_like(self.group)
        next_id = 0
        for row, group in enumerate(self.group.tolist()):
            j = row // self.n
            key = (group, j if edited[j] else -1, eta_of[j])
            candidates = keys.setdefault(key, [])
            match = next((g for g, rep in candidates
                          if eta_of[j] == 0 or torch.equal(self.x[rep], self.x[row])), None)
            if match is None:
                match = next_id
                candidates.append((match, row))
                next_id += 1
            new_group[row] = match
        self.group = new_group


def _epsilons(model, jobs, state: _Rows, t: int):
    """ε for every row from one encode of the distinct x_t, and ε̃ (h + scale·Δh) for the rows that edit at t."""
    reps = state.representatives()
    enc = model.unet.encode(state.x[reps], t)
    eps_groups = model.unet.decode(enc.h, enc.skips, enc.temb)
    eps = eps_groups[state.group]
    eps_edit = eps.clone()
    edited = [bool(job.edits) and t >= job.schedule.t_edit for job in jobs]
    edit_rows = torch.cat([torch.arange(j * state.n, (j + 1) * state.n) for j, e in enumerate(edited) if e]
                          ) if any(edited) else None
    if edit_rows is not None:
        groups = state.group[edit_rows]
        h, temb = enc.h[groups], enc.temb[groups]
        shifted = []
        for i, j in enumerate(j for j, e in enumerate(edited) if e):
            rows = slice(i * state.n, (i + 1) * state.n)
            direction = _direction(jobs[j].edits, _FixedDelta(None), h[rows], temb[rows], t)
            shifted.append(h[rows] + jobs[j].schedule.effective_scale * direction)
        skips = tuple(s[groups] for s in enc.skips)
        eps_edit[edit_rows] = model.unet.decode(torch.cat(shifted), skips, temb)
    return eps, eps_edit, edited
