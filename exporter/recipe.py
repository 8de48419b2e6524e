"""Recipe schema and loading.

A recipe is a YAML file that declares, for one model, the variants to build. The schema is a set of
pydantic models (``extra="forbid"`` everywhere, so a misspelt key is an error, not silently ignored).
``load_recipe`` turns every YAML or schema problem into one ``RecipeError`` line that names the file,
the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exporter.errors import RecipeError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

Backend = Literal["onnx", "openvino"]
Precision = Literal["fp32"]
Graph = Literal["transformer", "sentence"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSource(_Strict):
    """Where the source sentence-transformers model comes from."""

    id: str | None = Field(
        None,
        description="Hub id (e.g. sentence-transformers/all-MiniLM-L6-v2). Recorded as the base model; "
        "resolved through huggingface_hub when `path` is absent.",
    )
    path: str | None = Field(
        None,
        description="Optional local source: a directory (relative to the recipe file) or "
        "`package:<module>/<resource>` for a directory shipped inside an installed Python package.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) when resolving `id`.")
    max_seq_length: int | None = Field(
        None, gt=0, description="Override of the model's max_seq_length (tokens); recorded in the artifacts."
    )
    trust_remote_code: bool = Field(False, description="Allow custom model code from the source. Explicit opt-in only.")

    @model_validator(mode="after")
    def _id_or_path(self) -> "ModelSource":
        if not self.id and not self.path:
            raise ValueError("model needs `id` (a Hub id) or `path` (a local directory or package:...)")
        return self


class Variant(_Strict):
    """One artifact to build from the source model."""

    backend: Backend = Field(description="Runtime the artifact is for: onnx (ONNX Runtime) or openvino.")
    precision: Precision = Field("fp32", description="Weight precision of the artifact.")
    graph: Graph = Field(
        "transformer",
        description="transformer: token embeddings, loaded through sentence-transformers (which pools). "
        "sentence: the whole pipeline (transformer, pooling, dense, normalize) in one graph that outputs "
        "the sentence embedding [batch, dim], for plain onnxruntime / OpenVINO.",
    )
    name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Unique name; derived from backend, precision, graph and options when absent.",
    )

    @property
    def resolved_name(self) -> str:
        """The explicit name, or one derived from what the variant builds."""
        if self.name:
            return self.name
        parts = [self.backend, self.precision]
        if self.graph == "sentence":
            parts.append("sentence")
        return "-".join(parts)

    def build_key(self) -> tuple[Any, ...]:
        """What this variant builds: two variants with the same key would be identical files."""
        return (self.backend, self.precision, self.graph)


class Recipe(_Strict):
    """A recipe: one source model, the variants to build from it, and where they go."""

    name: str = Field(pattern=NAME_PATTERN, description="Recipe name; artifacts go to artifacts/<name>/.")
    model: ModelSource
    output: str | None = Field(
        None, description="Artifact folder, relative to the working directory. Default: artifacts/<name>."
    )
    variants: list[Variant] = Field(min_length=1, description="The variants to build.")

    @model_validator(mode="after")
    def _unique_variants(self) -> "Recipe":
        names: dict[str, int] = {}
        builds: dict[tuple[Any, ...], int] = {}
        for index, variant in enumerate(self.variants):
            name = variant.resolved_name
            if name in names:
                raise _VariantError(index, f"duplicate variant name {name!r} (also variant {names[name]})")
            names[name] = index
            key = variant.build_key()
            if key in builds:
                raise _VariantError(
                    index, f"builds the same artifact as variant {builds[key]} ({', '.join(map(str, key))})"
                )
            builds[key] = index
        return self

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.resolved_name == name:
                return variant
        known = ", ".join(v.resolved_name for v in self.variants)
        raise RecipeError(f"recipe {self.name!r} has no variant {name!r} (variants: {known})")


class _VariantError(ValueError):
    """A recipe-level check that blames one variant, so the error can point at its line."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class LoadedRecipe(BaseModel):
    """A validated recipe plus where it was read from (recipe paths are relative to it)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    recipe: Recipe
    path: Path
    text: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def recipe_json_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "exporter recipe"
    return schema


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Read and validate a recipe file. Raises ``RecipeError`` with a one-line ``file:line: field: ...``."""
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path}: recipe file not found")
    if path.is_dir():
        raise RecipeError(f"{path}: is a directory, expected a recipe YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: cannot read recipe: {error}") from None
    data, lines = _parse_yaml(path, text)
    if not isinstance(data, dict):
        raise RecipeError(f"{path}:1: expected a mapping with keys name, model, variants; got {_kind(data)}")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        raise RecipeError(_format_validation_error(path, error, lines)) from None
    return LoadedRecipe(recipe=recipe, path=path.resolve(), text=text)


def _kind(value: Any) -> str:
    return "an empty file" if value is None else type(value).__name__


def _parse_yaml(path: Path, text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML, returning the data and the line of every key/item (by its location tuple)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = error.problem or error.context or "invalid YAML"
        raise RecipeError(f"{path}{line}: malformed YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: malformed YAML: {error}") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return data, lines


def _record_lines(node: yaml.Node, location: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines[location] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[location + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, location + (key,), lines)
            lines[location + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, location + (index,), lines)


def _line_for(location: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return 1


def _format_location(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _format_validation_error(path: Path, error: ValidationError, lines: dict[tuple[Any, ...], int]) -> str:
    """One line for the first problem, with a count of the others."""
    problems = error.errors(include_url=False)
    first = problems[0]
    location = tuple(part for part in first["loc"] if not _is_tag(part))
    message = first["msg"]
    context_error = (first.get("ctx") or {}).get("error")
    if isinstance(context_error, _VariantError):
        location = ("variants", context_error.index)
        message = str(context_error)
    message = _explain(first, message)
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"{path}:{_line_for(location, lines)}: {_format_location(location)}: {message}{more}"


def _is_tag(part: Any) -> bool:
    # pydantic inserts union/function tags such as "function-after[...]" into locations.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _explain(problem: dict[str, Any], message: str) -> str:
    kind = problem["type"]
    if kind == "extra_forbidden":
        return "unknown key (see `exporter recipe schema` for the keys a recipe may have)"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = (problem.get("ctx") or {}).get("expected", "")
        return f"expected one of {expected}, got {problem.get('input')!r}"
    if kind == "string_pattern_mismatch":
        return f"expected letters, digits, '.', '_' or '-' (starting with a letter or digit), got {problem.get('input')!r}"
    return re.sub(r"^Value error, ", "", message)
