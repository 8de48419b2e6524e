"""The shipped speed table: how fast each kind of variant runs relative to torch fp32, per class of CPU.

``exporter/data/speed_table.json`` has one row per (ISA class, backend, precision, quantisation kind): the
speed as a multiple of torch fp32's throughput on the same CPU (x torch), per length class (``short``,
``mixed``, optionally ``long``), and the source it came from. A source is ``measured`` (the CPU and its
flags, how: ``exporter bench`` through the Encoder or sentence-transformers' backend path, and when),
``simulated`` (measured on a newer CPU with OpenVINO's and torch's kernels limited to the class's ISA by
``ONEDNN_MAX_CPU_ISA`` / ``MKL_ENABLE_INSTRUCTIONS``: OpenVINO rows only) or ``estimated`` (no
measurement). The ISA classes are ``exporter.runtime.host.ISA_CLASSES`` (``HostProfile.isa_class``); the
quantisation kind is ``none`` for float variants, else the int8 method.

``exporter.deploy.choice`` ranks CPU variants by it: an artifact's own bench numbers were measured on its
build host, whose CPU is rarely the deploy host's. The file ships with the package, so a malformed one is
our bug: ``SpeedTableError`` says what is wrong in one line, and a test loads the shipped file.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, PositiveFloat, ValidationError, model_validator

from exporter.constants import METHODS, PRECISION_BACKENDS, Backend, Precision
from exporter.errors import validation_problem
from exporter.runtime.host import ISA_CLASSES

SPEED_TABLE_SCHEMA_VERSION = 1
SPEED_TABLE_RESOURCE = ("data", "speed_table.json")
LengthClass = Literal["short", "mixed", "long"]
QuantizationKind = Literal["none", "dynamic", "static", "weight_only"]
DEFAULT_LENGTH_CLASS: LengthClass = "mixed"
# The length class a row's speed falls back to when it lacks the one asked for.
_LENGTH_FALLBACK: tuple[LengthClass, ...] = ("mixed", "short", "long")


class SpeedTableError(ValueError):
    """A speed table file that is not valid JSON or does not match the schema (one line: file, field, problem)."""


class _Strict(BaseModel):
    # Shipped data: an unknown key is a typo, not a newer version's field.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpeedSource(_Strict):
    """Where rows' numbers come from: one measurement run, or the estimates."""

    # simulated: measured on a newer CPU with the runtimes' kernels limited to an older ISA (ONEDNN_MAX_CPU_ISA)
    status: Literal["measured", "simulated", "estimated"]
    how: Literal["exporter bench", "sentence-transformers", "estimate"]
    cpu: str | None  # e.g. "Intel Xeon Sapphire Rapids, 2 cores"
    flags: str | None  # the CPU flags that decide its class, e.g. "avx512_vnni avx512_bf16 amx_int8 amx_bf16"
    date: str | None  # e.g. "2026-11"; null only where the measurement did not record it
    detail: str

    @model_validator(mode="after")
    def _consistent(self) -> SpeedSource:
        if self.status != "estimated" and (self.how == "estimate" or not self.cpu or not self.flags):
            raise ValueError(f"a {self.status} source needs its cpu, its flags and how it was measured "
                             "(exporter bench or sentence-transformers)")
        if self.status == "estimated" and self.how != "estimate":
            raise ValueError("an estimated source needs how: estimate")
        return self


class SpeedRow(_Strict):
    """One kind of variant on one class of CPU: its speed (x torch fp32) per length class."""

    isa_class: str
    backend: Backend
    precision: Precision
    quantization: QuantizationKind
    # what the ops left in float compute in: bf16 for int8 variants with quantization.float_precision bf16
    float_precision: Literal["f32", "bf16"] = "f32"
    speed: dict[LengthClass, PositiveFloat]
    source: str  # a key of the table's sources
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SpeedRow:
        if self.isa_class not in ISA_CLASSES:
            raise ValueError(f"isa_class {self.isa_class!r}: expected one of {', '.join(ISA_CLASSES)}")
        if self.precision in PRECISION_BACKENDS and self.backend not in PRECISION_BACKENDS[self.precision]:
            raise ValueError(f"{self.precision} is built for {', '.join(PRECISION_BACKENDS[self.precision])} only")
        if self.precision == "int8" and self.quantization not in METHODS[self.backend]:
            raise ValueError(f"int8 {self.backend} quantization {self.quantization!r}: expected one of "
                             f"{', '.join(METHODS[self.backend])}")
        if self.precision != "int8" and self.quantization != "none":
            raise ValueError(f"a {self.precision} row needs quantization: none, not {self.quantization!r}")
        if self.float_precision == "bf16" and (self.backend != "openvino" or self.precision != "int8"):
            raise ValueError("float_precision bf16 is for openvino int8 rows (bf16 rows are precision bf16)")
        if not self.speed.keys() & {"short", "mixed"}:
            raise ValueError("speed needs a short or a mixed value")
        return self

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.isa_class, self.backend, self.precision, self.quantization, self.float_precision)

    @property
    def label(self) -> str:
        """The row as messages name it: ``amx openvino int8 static`` (+ ``bf16-float`` for bf16 float ops)."""
        parts = [self.isa_class, self.backend, self.precision, self.quantization]
        return " ".join(parts + (["bf16-float"] if self.float_precision == "bf16" else []))

    def speed_for(self, length: LengthClass = DEFAULT_LENGTH_CLASS) -> tuple[LengthClass, float]:
        """(the length class used, its speed): ``length``'s, else the first of mixed, short, long measured."""
        used = length if length in self.speed else next(name for name in _LENGTH_FALLBACK if name in self.speed)
        return used, self.speed[used]


class SpeedTable(_Strict):
    """The whole table: named sources and the rows that cite them."""

    schema_version: Literal[1]
    table_version: str
    description: str | None = None
    sources: dict[str, SpeedSource]
    rows: list[SpeedRow]

    @model_validator(mode="after")
    def _consistent(self) -> SpeedTable:
        seen = set()
        for row in self.rows:
            if row.source not in self.sources:
                raise ValueError(f"row {row.label}: source {row.source!r} is not among the sources")
            if row.key in seen:
                raise ValueError(f"row {row.label} is listed twice")
            seen.add(row.key)
        return self

    def lookup(self, isa_class: str, backend: str, precision: str, quantization: str,
               float_precision: str = "f32") -> SpeedRow | None:
        """The row for this kind of variant on this class of CPU; ``None`` when the table has none."""
        key = (isa_class, backend, precision, quantization, float_precision)
        return next((row for row in self.rows if row.key == key), None)

    def source_of(self, row: SpeedRow) -> SpeedSource:
        return self.sources[row.source]


def parse_speed_table(text: str, where: str) -> SpeedTable:
    """Check and type a speed table's JSON text. ``SpeedTableError`` names ``where`` and the field."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise SpeedTableError(f"{where}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise SpeedTableError(f"{where}: expected a JSON object")
    if data.get("schema_version") != SPEED_TABLE_SCHEMA_VERSION:
        raise SpeedTableError(f"{where}: schema_version {data.get('schema_version')!r} is not supported "
                              f"(expected {SPEED_TABLE_SCHEMA_VERSION})")
    try:
        return SpeedTable.model_validate(data)
    except ValidationError as error:
        raise SpeedTableError(f"{where}: {validation_problem(error)}") from None


def read_speed_table(path: str | Path) -> SpeedTable:
    """A speed table file (e.g. a refreshed one, before it replaces the shipped table)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpeedTableError(f"{path}: cannot be read: {error}") from None
    return parse_speed_table(text, str(path))


@functools.cache
def shipped_speed_table() -> SpeedTable:
    """The table shipped in the ``exporter`` package (read once per process)."""
    resource = resources.files("exporter").joinpath(*SPEED_TABLE_RESOURCE)
    return parse_speed_table(resource.read_text(encoding="utf-8"), "exporter/" + "/".join(SPEED_TABLE_RESOURCE))


__all__ = ["DEFAULT_LENGTH_CLASS", "LengthClass", "QuantizationKind", "SPEED_TABLE_SCHEMA_VERSION", "SpeedRow",
           "SpeedSource", "SpeedTable", "SpeedTableError", "parse_speed_table", "read_speed_table",
           "shipped_speed_table"]
