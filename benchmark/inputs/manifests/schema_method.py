"""Suite settings of the method beyond the paper table: where an edit starts (seeded noise instead of
inversions), where an f_t starts (another attribute's weights), and which layer is h-space.

- `NoiseSourceSpec`: the authors' `--load_random_noise`: x_T drawn from N(0, I) with a seed, the metrics measured
  against the plain DDIM sample from the same x_T (`models.noise_source`). For training, `clip_source` picks the
  CLIP source image: `zeros` (the authors' quirk without `--saved_random_noise`, the default for fidelity) or
  `sample` (the unedited DDIM sample: the right source when there is no real image).
- `InitFrom`: transfer learning, as the reproduction study's `transfer_pixar_*` jobs: an f_t starts from a released
  f_t (`ft`, a model manifest, digest-checked), from an f_t a finished run saved (`run` + `attribute`), or from an
  f_t this run trains first (`attribute` [+ `arm`]).
- `HSpaceSpec`: the mid block (the authors' choice, paper appendix D.3) or the output of up block k (`up{k}`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from benchmark.inputs.manifests.schema_common import Ref, _Strict

LayerName = Annotated[str, StringConstraints(pattern=r"^(mid|up[0-9]+)$")]
ClipSource = Literal["zeros", "sample"]


class NoiseSourceSpec(_Strict):
    """`n` items of seeded noise (item i from its own generator, so the first k items do not depend on n)."""

    kind: Literal["noise"]
    n: int = Field(ge=1)
    seed: int = Field(0, ge=0, lt=2 ** 43)
    clip_source: ClipSource = "zeros"

    def spec(self) -> dict:
        return {"kind": self.kind, "n": self.n, "seed": self.seed, "clip_source": self.clip_source}


class InitFrom(_Strict):
    """Start an f_t from existing weights instead of the f_t's own initialisation (one of three forms)."""

    ft: Ref | None = None  # a released f_t's model manifest (loader asyrp-deltablock)
    run: str | None = Field(default=None, min_length=1)  # a run folder written by this harness (its ft/ weights)
    attribute: str | None = Field(default=None, min_length=1)  # with `run`: its results key; else this run's
    arm: str | None = Field(default=None, min_length=1)  # this run's arm of `attribute` (an ablation suite)

    @model_validator(mode="after")
    def _one_form(self) -> InitFrom:
        if self.ft is not None:
            if self.run or self.attribute or self.arm:
                raise ValueError("init_from: `ft` names a released f_t on its own (no run, attribute or arm)")
        elif self.run is not None:
            if not self.attribute or self.arm:
                raise ValueError("init_from: `run` needs `attribute` (the results key in that run, e.g. "
                                 "smiling[conv]) and no `arm`")
        elif self.attribute is None:
            raise ValueError("init_from needs `ft` (a released f_t), `run` + `attribute`, or `attribute` [+ `arm`] "
                             "(an f_t trained earlier in this run)")
        return self

    @property
    def kind(self) -> str:
        return "released" if self.ft else "run" if self.run else "this-run"

    def label(self) -> str:
        if self.ft:
            return self.ft
        if self.run:
            return f"{self.run}:{self.attribute}"
        return self.attribute + (f"[{self.arm}]" if self.arm else "")


class HSpaceSpec(_Strict):
    """Where h is taken: `mid` (the default, the authors' choice) or `up{k}`, the output of up block k."""

    layer: LayerName = "mid"
