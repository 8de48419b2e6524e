"""Parity thresholds: what each gating check must reach, per precision, and how a recipe overrides them.

The defaults encode how far each precision may honestly drift from the torch model. A recipe may set any
threshold explicitly, tighter or looser, globally (``validation.thresholds``) or per variant (a variant's
``validation.thresholds``); explicit values replace defaults key by key, a variant's over the global ones.
The code itself never loosens a threshold. A threshold looser than its precision's default is allowed but
always reported by name (``loosened``: "cosine_min 0.9 < default 0.95"); one below ``SANITY_FLOOR`` is not a
gate at all (any variant that runs would pass) and is refused wherever it is written: a recipe, a
thresholds file, a manifest.

This module imports nothing from the rest of the package: ``exporter.recipe`` imports ``Thresholds`` from
here, so it must stay free of import cycles and cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Precision = Literal["fp32", "fp16", "bf16", "int8"]
THRESHOLD_KEYS = ("cosine_min", "cosine_mean", "neighbour_overlap", "spearman")
# No threshold may be lower: below it a gate passes any variant that runs (cosine_min -1 accepts anything).
SANITY_FLOOR = 0.5
_FLOOR = {"minimum": SANITY_FLOOR}


class Thresholds(BaseModel):
    """Minimum values of the gating parity checks. ``None`` means "not set here" (a default applies)."""

    model_config = ConfigDict(extra="forbid")

    cosine_min: float | None = Field(
        None, le=1.0, json_schema_extra=_FLOOR,
        description="Lowest per-text cosine similarity between the variant's and the torch model's embeddings.",
    )
    cosine_mean: float | None = Field(
        None, le=1.0, json_schema_extra=_FLOOR,
        description="Mean per-text cosine similarity to the torch model's embeddings.",
    )
    neighbour_overlap: float | None = Field(
        None, le=1.0, json_schema_extra=_FLOOR,
        description="Mean over texts of |top-10 neighbours (variant) ∩ top-10 neighbours (torch)| / 10, self excluded.",
    )
    spearman: float | None = Field(
        None, le=1.0, json_schema_extra=_FLOOR,
        description="Spearman correlation of the pairwise cosine-similarity matrices (upper triangles).",
    )

    @field_validator(*THRESHOLD_KEYS)
    @classmethod
    def _above_floor(cls, value: float | None) -> float | None:
        if value is not None and value < SANITY_FLOOR:
            raise ValueError(f"{value:g} is below the sanity floor {SANITY_FLOOR:g} (a gate that low passes any "
                             "variant that runs)")
        return value


# Floors shared by every precision for the checks the per-precision defaults do not name. For fp32 and
# fp16 they are implied in practice by cosine_min (0.9999 / 0.999 per text), so they never fail a variant
# that passes cosine_min; they keep ranking quality gated when a recipe loosens cosine_min alone.
_SHARED_FLOORS = {"cosine_mean": 0.99, "neighbour_overlap": 0.90, "spearman": 0.98}

_DEFAULTS: dict[str, dict[str, float]] = {
    "fp32": {**_SHARED_FLOORS, "cosine_min": 0.9999},
    "fp16": {**_SHARED_FLOORS, "cosine_min": 0.999},
    "bf16": {**_SHARED_FLOORS, "cosine_min": 0.999},  # reduced-precision float compute: as fp16
    "int8": {**_SHARED_FLOORS, "cosine_min": 0.95},
}


def default_thresholds(precision: str) -> Thresholds:
    """The default thresholds of a precision ("fp32", "fp16", "bf16" or "int8"). Raises ``ValueError`` otherwise."""
    try:
        return Thresholds(**_DEFAULTS[precision])
    except KeyError:
        known = ", ".join(_DEFAULTS)
        raise ValueError(f"no default parity thresholds for precision {precision!r} (known: {known})") from None


def effective_thresholds(
    precision: str, recipe_global: Thresholds | None = None, variant: Thresholds | None = None
) -> Thresholds:
    """The thresholds a variant is held to: defaults for its precision, then the recipe's global values,
    then the variant's own, each replacing only the keys it sets explicitly."""
    merged = default_thresholds(precision).model_dump()
    for layer in (recipe_global, variant):
        if layer is not None:
            merged.update(layer.model_dump(exclude_none=True))
    return Thresholds(**merged)


def stricter(first: Thresholds, second: Thresholds) -> Thresholds:
    """Key by key, the higher of the two (a key set in only one of them keeps that value)."""
    a, b = first.model_dump(), second.model_dump()
    return Thresholds(**{key: max((v for v in (a[key], b[key]) if v is not None), default=None)
                         for key in THRESHOLD_KEYS})


@dataclass(frozen=True)
class Loosened:
    """A threshold below its precision's default: ``check``, the ``required`` value and the ``default``."""

    check: str
    required: float
    default: float

    def __str__(self) -> str:
        return f"{self.check} {self.required:.10g} < default {self.default:.10g}"

    def to_dict(self) -> dict[str, float | str]:
        return {"check": self.check, "required": self.required, "default": self.default}


def loosened(thresholds: Thresholds, precision: str) -> list[Loosened]:
    """The thresholds of ``thresholds`` that are looser than ``precision``'s defaults, in check order.
    Raises ``ValueError`` for an unknown precision."""
    defaults = default_thresholds(precision).model_dump()
    values = thresholds.model_dump()
    return [Loosened(key, values[key], defaults[key]) for key in THRESHOLD_KEYS
            if values[key] is not None and defaults[key] is not None and values[key] < defaults[key]]
