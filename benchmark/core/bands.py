"""An acceptance band: the one interval type of manifests (paper values, known-answer checks) and results.

Manifests spell its ends `lower`/`upper`, results files `low`/`high`; both spellings are read, results are
written as `low`/`high` (the results format of every earlier run).
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator


class Band(BaseModel):
    """Inclusive at both ends; a missing end is open."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    low: float | None = Field(None, validation_alias=AliasChoices("low", "lower"))
    high: float | None = Field(None, validation_alias=AliasChoices("high", "upper"))

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"band lower {self.low} > upper {self.high}")
        return self

    @property
    def is_open(self) -> bool:
        """No end at all: the value is shown, nothing is checked."""
        return self.low is None and self.high is None

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"[{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"≥ {self.low:g}"
        if self.high is not None:
            return f"≤ {self.high:g}"
        return "any"

    def interval(self) -> Band:
        """The bare interval (a subclass's extra fields, such as whether it gates, dropped)."""
        return Band(low=self.low, high=self.high)
