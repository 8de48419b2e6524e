"""manifest.json: what an artifact folder holds, typed and checked in one place.

Every stage (build, validate, bench, card, push, fetch, doctor) reads the manifest once with
``read_manifest`` (or ``Manifest.parse`` for JSON from the Hub) and works on these pydantic models; it is
written back only through ``write_manifest``. Deploy jobs read it to choose a variant and verify what they
downloaded, so every file in the folder except manifest.json itself is listed: ``shared_files`` (what every
variant needs: the sentence-transformers configs, tokenizer, module files, the parity reference) or one
variant's ``files``.

Unknown keys (from a newer version of the tool) are kept on every object and written back unchanged; only
the keys that were present are written, so reading and writing a manifest changes nothing else in it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.artifact.integrity import list_files, outside_link, sha256_file, write_text_atomic
from exporter.constants import MANIFEST_NAME
from exporter.errors import ManifestError, validation_problem

SCHEMA_VERSION = 1
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
MAX_FILE_SIZE = 1 << 44  # 16 TiB: a bigger size is a corrupt or hostile manifest, not a model
# Optional sections that are removed, not written as null, when cleared (e.g. a variant not measured any more).
_DROPPED_WHEN_NONE = frozenset({"parity", "bench", "validation"})


def check_relative_path(text: str) -> str:
    """``text`` when it is a relative POSIX path that stays inside the folder; ``ValueError`` otherwise."""
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or "\\" in text or ".." in pure.parts or (len(text) > 1 and text[1] == ":"):
        raise ValueError(f"unsafe path {text!r} in manifest (absolute or outside the folder)")
    return text


class _Record(BaseModel):
    """A manifest object: unknown keys kept, assignments validated."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form: the keys that were read or set, in field order, cleared optional sections left out."""
        data = self.model_dump(mode="json", exclude_unset=True, by_alias=True)
        return _drop_cleared(data)


def _drop_cleared(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_cleared(item) for key, item in value.items()
                if not (key in _DROPPED_WHEN_NONE and item is None)}
    if isinstance(value, list):
        return [_drop_cleared(item) for item in value]
    return value


class FileEntry(_Record):
    """One file of the folder: relative POSIX path, sha256 and size in bytes."""

    path: str
    sha256: str
    size: int = Field(ge=0, le=MAX_FILE_SIZE)

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_relative_path(value)

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        if not SHA256_PATTERN.match(value):
            raise ValueError(f"sha256 {value!r} is not a sha256")
        return value


class Tool(_Record):
    name: str = "embedding-exporter"
    version: str | None = None


class RecipeRecord(_Record):
    """The recipe the folder was built from, verbatim."""

    name: str
    file: str | None = None
    sha256: str | None = None
    text: str | None = None


class SourceRecord(_Record):
    """The source model: where it was read from, and what is known about it."""

    id: str | None = None
    revision: str | None = None
    location: str | None = None  # package:..., a path (relative to the recipe), or hub:<id>
    max_seq_length: int | None = None
    dimension: int | None = None
    trust_remote_code: bool = False
    kind: str = "sentence"  # constants.MODEL_KINDS; manifests written before kinds existed are sentence models
    weights_file: str | None = None
    weights_sha256: str | None = None
    license: str | None = None


class CalibrationRecord(_Record):
    corpus: str | None = None
    corpus_sha256: str | None = None
    corpus_size: int | None = None
    samples: int | None = None
    seed: int | None = None


class ExclusionSearchRecord(_Record):
    """What ``exclude: auto`` found, or the int8 rule (``exclude: sensitive``, the default) decided: the MatMuls
    kept in float and why (the metrics on held-out texts against the target it had to meet, from the variant's
    thresholds; the rule's attempts and its one-line outcome)."""

    method: str
    kept_float: list[str] = Field(default_factory=list)
    reason: str | None = None
    target: dict[str, float] = Field(default_factory=dict)  # the thresholds, tightened, on the search texts
    measured: dict[str, float | None] = Field(default_factory=dict)  # the chosen graph's metrics there
    met: bool | None = None
    trials: int | None = None
    texts: int | None = None
    seconds: float | None = None
    attempts: list[dict[str, Any]] | None = None  # the int8 rule: per attempt, MatMuls in float and the verdict
    outcome: str | None = None  # the int8 rule: "tried N configuration(s) (...), best reached ..."


class QuantizationRecord(_Record):
    """How an int8 variant was quantised (the recipe's settings with ``isa: auto`` and ``exclude: auto``
    resolved: ``exclude`` is then the exact names the search kept in float, ``search`` how it found them)."""

    method: str | None = None
    isa: str | None = None
    isa_requested: str | None = None
    per_channel: bool | None = None
    exclude: list[str] = Field(default_factory=list)
    exclude_requested: str | None = None
    search: ExclusionSearchRecord | None = None
    smooth_quant: bool | None = None
    float_precision: str | None = None  # openvino: what the ops left in float compute in (f32 | bf16)


class Parity(_Record):
    """The validator's verdict on one variant, with its headline numbers."""

    passed: bool
    cosine_min: float | None = None
    cosine_mean: float | None = None
    neighbour_overlap: float | None = None
    spearman: float | None = None
    # What the runtime computed in on the validating host (OpenVINO's compiled INFERENCE_PRECISION_HINT), and that
    # host's CPU: a bf16 variant runs as validated only where the CPU has AVX512_BF16 or AMX-BF16.
    inference_precision: str | None = None
    validated_on: str | None = None
    # cosine_min per prompt the model declares (its texts encoded with that prompt, against torch with it).
    prompts: dict[str, float | None] | None = None


class BenchSummary(_Record):
    """``exporter bench``'s numbers for one variant, measured on the build host."""

    throughput: float | None = None
    ratio_to_torch: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    rss_delta_mb: float | None = None
    measured_on: str | None = None  # the bench host's ``HostProfile.cpu_line()`` (fetch compares its ISA class)


class Variant(_Record):
    """One exported variant: how it was made, its files, and what validation and bench found."""

    name: str
    backend: str
    precision: str
    graph: str = "transformer"
    file_name: str
    inputs: list[str] = Field(default_factory=list)
    output: str | None = None
    optimize: str = "none"
    quantization: QuantizationRecord | None = None
    calibration: CalibrationRecord | None = None
    # Settings that change numerics (e.g. OpenVINO INFERENCE_PRECISION_HINT): every stage runs the variant
    # with exactly these.
    runtime_options: dict[str, str] = Field(default_factory=dict)
    validation_thresholds: dict[str, float | None] | None = None
    # Matryoshka: the embeddings are the first N dimensions (renormalised when the model normalises). A sentence
    # graph outputs them; every other loader applies it (recorded only when set).
    truncate_dim: int | None = Field(None, gt=0)
    files: list[FileEntry]
    parity: Parity | None = None
    bench: BenchSummary | None = None

    @field_validator("file_name")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_relative_path(value)

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)

    @property
    def validated(self) -> bool:
        return self.parity is not None and self.parity.passed

    def dimension(self, full: int | None) -> int | None:
        """The width of this variant's embeddings, given the model's ``full`` dimension."""
        return self.truncate_dim if self.truncate_dim is not None else full


class ValidationRecord(_Record):
    passed: bool
    reference: str | None = None
    report: str | None = None


class Manifest(_Record):
    """The whole manifest.json."""

    schema_version: Literal[1] = SCHEMA_VERSION
    tool: Tool = Field(default_factory=Tool)
    created_at: str | None = None
    recipe: RecipeRecord | None = None
    source: SourceRecord = Field(default_factory=SourceRecord)
    publish: dict[str, Any] = Field(default_factory=dict)
    shared_files: list[FileEntry] = Field(default_factory=list)
    variants: list[Variant]
    runtime_requirements: dict[str, str] | None = None
    environment: dict[str, Any] | None = None
    validation: ValidationRecord | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [variant.name for variant in self.variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"variant names listed twice: {', '.join(duplicates)}")
        return self

    # -- lookups ------------------------------------------------------------------------------------

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; ``ManifestError`` listing the known names otherwise."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ManifestError(f"no variant {name!r} in the manifest (variants: {', '.join(self.variant_names)})")

    @property
    def variant_names(self) -> list[str]:
        return [variant.name for variant in self.variants]

    @property
    def backends(self) -> set[str]:
        return {variant.backend for variant in self.variants}

    @property
    def recipe_name(self) -> str:
        return self.recipe.name if self.recipe is not None else "artifact"

    def entries(self) -> dict[str, FileEntry]:
        """Every listed file by path (shared files, then each variant's)."""
        listed: dict[str, FileEntry] = {}
        for entry in [*self.shared_files, *(entry for variant in self.variants for entry in variant.files)]:
            listed.setdefault(entry.path, entry)
        return listed

    def needed_entries(self, variant: Variant, skip: frozenset[str] = frozenset()) -> tuple[list[FileEntry], list[str]]:
        """(the files one variant needs: the shared files except ``skip``, then its own; the skipped paths).

        ``ManifestError`` when a path is listed twice with different checksums, or when the variant's
        ``file_name`` is not among its files."""
        entries: dict[str, FileEntry] = {}
        skipped = []
        for entry in self.shared_files:
            if entry.path in skip:
                skipped.append(entry.path)
            else:
                entries[entry.path] = entry
        for entry in variant.files:
            known = entries.get(entry.path)
            if known is not None and (known.sha256, known.size) != (entry.sha256, entry.size):
                raise ManifestError(f"{MANIFEST_NAME} lists {entry.path} twice with different checksums")
            entries[entry.path] = entry
        if variant.file_name not in {entry.path for entry in variant.files}:
            raise ManifestError(f"{MANIFEST_NAME}: variant {variant.name}: file_name {variant.file_name!r} is not "
                                "among its files")
        return list(entries.values()), sorted(skipped)

    def set_shared_file(self, entry: FileEntry) -> None:
        """Add or replace one shared file, keeping the list sorted by path."""
        kept = [known for known in self.shared_files if known.path != entry.path]
        self.shared_files = sorted([*kept, entry], key=lambda known: known.path)

    # -- JSON ---------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Any, where: str) -> Manifest:
        """Check and type manifest data (parsed JSON). ``ManifestError`` names ``where`` and the field."""
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: malformed manifest: expected a JSON object")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ManifestError(f"{where}: schema_version {data.get('schema_version')!r} is not supported "
                                f"(expected {SCHEMA_VERSION})")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ManifestError(f"{where}: {_describe(error)}") from None

    @classmethod
    def parse_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise ManifestError(f"{where}: malformed manifest: {error}") from None
        return cls.parse(data, where)

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2, sort_keys=False) + "\n"


def _describe(error: ValidationError) -> str:
    message = error.errors()[0]["msg"].removeprefix("Value error, ")
    if message.startswith("unsafe path"):
        return message
    return f"malformed manifest: {validation_problem(error)}"


def read_manifest(root: str | Path) -> Manifest:
    """Read and check ``root``'s manifest.json. ``ManifestError`` for a missing, malformed or unsafe one."""
    root = Path(root)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{root}: not an artifact folder (no {MANIFEST_NAME})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: malformed manifest: {error}") from None
    manifest = Manifest.parse_json(text, str(path))
    for relative in manifest.entries():
        target = outside_link(root, relative)
        if target is not None:
            raise ManifestError(f"{path}: {relative} resolves outside the folder (to {target}); refusing it")
    return manifest


def write_manifest(root: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest`` as ``root``/manifest.json (to a temporary name first, then renamed into place)."""
    path = Path(root) / MANIFEST_NAME
    write_text_atomic(path, manifest.to_json())
    return path


def file_entry(root: Path, relative: str) -> FileEntry:
    """The manifest entry of ``root``/``relative``: its path, sha256 and size."""
    path = Path(root) / relative
    return FileEntry(path=relative, sha256=sha256_file(path), size=path.stat().st_size)


def describe_files(
    root: Path, variant_files: dict[str, list[str]]
) -> tuple[list[FileEntry], dict[str, list[FileEntry]]]:
    """Split the folder's files into shared files and each variant's own files, with checksums."""
    owned = {relative for files in variant_files.values() for relative in files}
    shared = [file_entry(root, relative) for relative in list_files(root) if relative not in owned]
    per_variant = {name: [file_entry(root, relative) for relative in sorted(files)]
                   for name, files in variant_files.items()}
    return shared, per_variant


__all__ = ["BenchSummary", "CalibrationRecord", "FileEntry", "MANIFEST_NAME", "Manifest", "Parity",
           "QuantizationRecord", "RecipeRecord", "SCHEMA_VERSION", "SourceRecord", "Tool", "ValidationRecord",
           "Variant", "check_relative_path", "describe_files", "file_entry", "read_manifest", "write_manifest"]
