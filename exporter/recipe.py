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
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from exporter.artifact.layout import FileNameConflict, VariantFiles, assign_file_names, file_name_problem
from exporter.constants import (
    BACKENDS,
    METHODS,
    PRECISION_BACKENDS,
    Backend,
    Graph,
    Isa,
    Method,
    ModelKind,
    Optimize,
    Precision,
)
from exporter.errors import RecipeError
from exporter.validators.thresholds import Thresholds

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# A Hub model id: NAME or ORG/NAME (letters, digits, '.', '_', '-'; as huggingface_hub's validate_repo_id).
HUB_MODEL_ID_PATTERN = r"^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"

IsaOrAuto = Literal["auto", Isa]
# Bounds on what a recipe file may be: a real one is a few KiB and a few hundred values.
MAX_RECIPE_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 100_000


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
    kind: Literal["auto", ModelKind] = Field(
        "auto",
        description="What the model computes: `sentence` (embeddings), `cross` (a CrossEncoder reranker's pair "
        "scores) or `sparse` (a SPLADE SparseEncoder's vocabulary-sized vectors). `auto` (default) reads it from the "
        "model folder; a declared kind the folder is not is refused.",
    )
    truncate_dim: StrictInt | None = Field(
        None, gt=0,
        description="Matryoshka truncation of every variant's embeddings to their first N dimensions (renormalised "
        "when the model has a Normalize module). Default: the source model's own truncate_dim "
        "(config_sentence_transformers.json), else none.",
    )

    @field_validator("id")
    @classmethod
    def _hub_id(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 96 or not re.match(HUB_MODEL_ID_PATTERN, value)):
            raise ValueError(f"{value!r} is not a Hub model id (NAME or ORG/NAME: letters, digits, '.', '_', '-')")
        return value

    @model_validator(mode="after")
    def _id_or_path(self) -> ModelSource:
        if not self.id and not self.path:
            raise ValueError("model needs `id` (a Hub id) or `path` (a local directory or package:...)")
        return self


class Calibration(_Strict):
    """Texts that static quantisation measures activation ranges on."""

    corpus: str = Field(
        "builtin",
        description="builtin (1,500+ varied hand-written texts shipped with the tool) or a local .txt (one text "
        "per line), .jsonl or .csv file, relative to the recipe.",
    )
    column: str = Field("text", description="Field (.jsonl) or column (.csv) holding the text.")
    samples: int = Field(300, ge=1, description="Number of texts sampled from the corpus.")
    seed: int = Field(0, description="Seed of the sample.")


class Quantization(_Strict):
    """How an int8 variant is quantised."""

    method: Method | None = Field(
        None,
        description="onnx: static (default; dynamic when isa is given or optimize is O2/O3) | dynamic; openvino: "
        "static (default) | weight_only.",
    )
    isa: IsaOrAuto | None = Field(
        None,
        description="onnx dynamic only: instruction set the int8 kernels target; auto (default) picks this host's "
        "and the manifest records the choice.",
    )
    per_channel: bool | None = Field(None, description="onnx only: per-channel weight scales (default true).")
    calibration: Calibration | None = Field(None, description="Static methods only (default: builtin, 300 texts).")
    exclude: list[str] | Literal["auto", "sensitive"] | None = Field(
        None,
        description="Regular expressions of graph node names kept in float (sensitive layers), e.g. "
        "'.*/output/dense/MatMul' ([] quantises every MatMul); sensitive (the default for static and dynamic): "
        "the int8 rule keeps in float the MatMuls measured most sensitive, trying at most 3 configurations "
        "(docs/int8.md); or auto: search for the fewest MatMuls in float that meet the variant's thresholds (up "
        "to ~40 quantisations). The manifest records what was kept and why; the log prints it as a list to pin.",
    )
    smooth_quant: bool | None = Field(None, description="openvino static only: NNCF SmoothQuant (default true).")
    float_precision: Literal["f32", "bf16"] | None = Field(
        None,
        description="openvino only: what the ops left in float (the excluded layers, softmax, normalisation) "
        "compute in: f32 (default) or bf16, faster on CPUs with AVX512_BF16 or AMX. Validated and run with "
        "INFERENCE_PRECISION_HINT bf16 (f32 or emulated on other CPUs; the manifest says which ran).",
    )

    def default_method(self, backend: str, optimize: str = "none") -> str:
        """The method when none is given: static, except ONNX's dynamic where a setting only dynamic takes asks
        for it (``isa``; ``optimize`` O2/O3 fuse the MatMuls static quantises)."""
        if backend == "onnx" and (self.isa is not None or optimize in ("O2", "O3")):
            return "dynamic"
        return "static"

    def resolved(self, backend: str, optimize: str = "none") -> Quantization:
        """A copy with every default for ``backend`` filled in."""
        method = self.method or self.default_method(backend, optimize)
        static = method == "static"
        exclude = self.exclude
        if exclude is None:
            exclude = "sensitive" if method in ("static", "dynamic") else []
        return Quantization(
            method=method,
            isa=(self.isa or "auto") if backend == "onnx" and method == "dynamic" else None,
            per_channel=(True if self.per_channel is None else self.per_channel) if backend == "onnx" else None,
            calibration=(self.calibration or Calibration()) if static else None,
            exclude=exclude if isinstance(exclude, str) else list(exclude),
            smooth_quant=(True if self.smooth_quant is None else self.smooth_quant)
            if backend == "openvino" and static else None,
            float_precision=(self.float_precision or "f32") if backend == "openvino" else None,
        )


class VariantValidation(_Strict):
    """Per-variant parity thresholds (override the recipe's and the defaults, key by key)."""

    thresholds: Thresholds | None = None


class Validation(_Strict):
    """Parity validation settings for the whole recipe."""

    texts: str | None = Field(
        None, description="Extra validation texts: a local .txt (one per line) or .jsonl file, relative to the recipe."
    )
    thresholds: Thresholds | None = Field(None, description="Overrides of the default thresholds for every variant.")
    pairs: str | None = Field(
        None, description="Rerankers (model.kind cross): query groups to validate on instead of the built-in ones, a "
        'local JSONL file relative to the recipe, one {"query": str, "passages": [str, ...]} per line.')


class Publish(_Strict):
    """Defaults for `exporter push` (and `exporter run --push`)."""

    repo_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
                                description="Hub repository, ORG/NAME.")
    private: bool = Field(False, description="Create the repository private.")
    create_pr: bool = Field(False, description="Open a pull request instead of committing to the branch.")
    tag: str | None = Field(None, description="Tag to create on the new commit.")
    revision: str | None = Field(None, description="Branch to push to (default main).")
    commit_message: str | None = Field(None, description="Commit message.")


class Variant(_Strict):
    """One artifact to build from the source model."""

    backend: Backend = Field(description="Runtime the artifact is for: onnx (ONNX Runtime), openvino, or torch "
                                         "(the Transformer module's weights as model.<precision>.safetensors, "
                                         "loaded by sentence-transformers with model_kwargs variant and dtype).")
    precision: Precision = Field("fp32", description="Weight precision of the artifact.")
    truncate_dim: StrictInt | None = Field(
        None, gt=0,
        description="Matryoshka truncation for this variant (overrides model.truncate_dim): graph: sentence "
        "variants slice inside the graph and output [batch, N]; the others record it and their loaders apply it.",
    )
    graph: Graph = Field(
        "transformer",
        description="transformer: token embeddings, loaded through sentence-transformers (which pools). "
        "sentence: the whole pipeline (transformer, pooling, dense, normalize) in one graph that outputs "
        "the sentence embedding [batch, dim], for plain onnxruntime / OpenVINO. Rerankers (model.kind cross): "
        "transformer is the sequence-classification graph (logits) CrossEncoder(..., backend=...) loads; scores has "
        "the model's activation inside (sigmoid for one label).",
    )
    name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Unique name; derived from backend, precision, graph and options when absent.",
    )
    optimize: Optimize = Field(
        "none",
        description="onnx only: ONNX Runtime graph optimisation. O1 basic rewrites; O2 adds transformer fusions; "
        "O3 adds the GELU approximation.",
    )
    quantization: Quantization | None = Field(None, description="int8 only: method, ISA, calibration, exclusions.")
    validation: VariantValidation | None = Field(None, description="Parity thresholds for this variant.")
    file_name: str | None = Field(
        None,
        description="The model file, relative to the artifact folder: onnx/<name>.onnx or "
        "openvino/openvino<name>.xml. "
        "Default: a client-default name (onnx/model.onnx, onnx/model_quantized.onnx, onnx/model_fp16.onnx, "
        "openvino/openvino_model.xml) for the first graph: transformer variant of its kind in recipe order, "
        "else model_<variant name>.onnx / openvino_model_<variant name>.xml.",
    )

    @model_validator(mode="after")
    def _valid_combination(self) -> Variant:
        if self.optimize != "none" and self.backend != "onnx":
            raise _LocatedError(("optimize",), "only for backend onnx (OpenVINO optimises at load time)")
        if self.backend == "torch":
            if self.graph != "transformer":
                raise _LocatedError(("graph",), "torch variants are the Transformer module's weights: graph: "
                                                "transformer only")
            if self.optimize != "none":
                raise _LocatedError(("optimize",), "only for backend onnx")
        backends = PRECISION_BACKENDS.get(self.precision, BACKENDS)
        if self.backend not in backends:
            raise _LocatedError(("precision",), f"{self.precision} is built only for backend "
                                                f"{' | '.join(backends)}, not {self.backend}")
        problem = file_name_problem(self)
        if problem is not None:
            raise _LocatedError(("file_name",), problem)
        if self.quantization is None:
            return self
        if self.precision != "int8":
            raise _LocatedError(("quantization",), f"only for precision int8, not {self.precision}")
        q = self.quantization
        method = q.method or q.default_method(self.backend, self.optimize)
        if method not in METHODS[self.backend]:
            allowed = " | ".join(METHODS[self.backend])
            raise _LocatedError(("quantization", "method"),
                                f"{method!r} is not a {self.backend} method (expected {allowed})")
        if q.isa is not None and not (self.backend == "onnx" and method == "dynamic"):
            raise _LocatedError(("quantization", "isa"), "only for backend onnx with method dynamic")
        if q.calibration is not None and method != "static":
            raise _LocatedError(("quantization", "calibration"), f"only for method static, not {method}")
        if q.per_channel is not None and self.backend != "onnx":
            raise _LocatedError(("quantization", "per_channel"), "only for backend onnx")
        if q.smooth_quant is not None and not (self.backend == "openvino" and method == "static"):
            raise _LocatedError(("quantization", "smooth_quant"), "only for backend openvino with method static")
        if self.backend == "onnx" and method == "static" and self.optimize in ("O2", "O3"):
            raise _LocatedError(("optimize",), f"{self.optimize} fuses the MatMuls static int8 quantises (it would "
                                               "leave float compute with int8 weights): use none or O1")
        if q.float_precision is not None and self.backend != "openvino":
            raise _LocatedError(("quantization", "float_precision"), "only for backend openvino (ONNX Runtime "
                                                                    "has no bf16 CPU kernels)")
        if isinstance(q.exclude, str) and method == "weight_only":
            raise _LocatedError(("quantization", "exclude"), f"{q.exclude} is for static and dynamic int8, not "
                                                             "weight_only (its activations stay float)")
        for index, pattern in enumerate(q.exclude if isinstance(q.exclude, list) else []):
            try:
                re.compile(pattern)
            except re.error as error:
                raise _LocatedError(("quantization", "exclude", index),
                                    f"invalid regular expression: {error}") from None
        return self

    @property
    def resolved_quantization(self) -> Quantization | None:
        if self.precision != "int8":
            return None
        return (self.quantization or Quantization()).resolved(self.backend, self.optimize)

    @property
    def resolved_name(self) -> str:
        """The explicit name, or one derived from what the variant builds."""
        if self.name:
            return self.name
        parts = [self.backend, self.precision]
        if self.optimize != "none":
            parts.append(self.optimize)
        quantization = self.resolved_quantization
        if quantization:
            parts.append(quantization.method.replace("_", "-"))
            if quantization.isa and quantization.isa != "auto":
                parts.append(quantization.isa.replace("_", "-"))
            if quantization.float_precision == "bf16":
                parts.append("bf16")
        if self.graph in ("sentence", "scores"):
            parts.append(self.graph)
        if self.truncate_dim is not None:
            parts.append(f"dim{self.truncate_dim}")
        return "-".join(parts)

    def build_key(self) -> tuple[Any, ...]:
        """What this variant builds: two variants with the same key would be identical files."""
        quantization = self.resolved_quantization
        return (self.backend, self.precision, self.graph, self.optimize,
                quantization.model_dump_json() if quantization else None, self.truncate_dim)


class Recipe(_Strict):
    """A recipe: one source model, the variants to build from it, and where they go."""

    name: str = Field(pattern=NAME_PATTERN, description="Recipe name; artifacts go to artifacts/<name>/.")
    model: ModelSource
    output: str | None = Field(
        None, description="Artifact folder, relative to the working directory. Default: artifacts/<name>."
    )
    variants: list[Variant] = Field(min_length=1, description="The variants to build.")
    validation: Validation | None = Field(None, description="Parity validation texts and thresholds.")
    publish: Publish | None = Field(None, description="Defaults for pushing to the Hugging Face Hub.")

    @model_validator(mode="after")
    def _unique_variants(self) -> Recipe:
        names: dict[str, int] = {}
        builds: dict[tuple[Any, ...], int] = {}
        for index, variant in enumerate(self.variants):
            name = variant.resolved_name
            if name in names:
                raise _LocatedError(("variants", index),
                                    f"duplicate variant name {name!r} (also variant {names[name]})")
            names[name] = index
            key = variant.build_key()
            if key in builds:
                raise _LocatedError(
                    ("variants", index), f"builds the same artifact as variant {builds[key]} ({names_of(key)})"
                )
            builds[key] = index
        try:
            assign_file_names(self.variants)
        except FileNameConflict as conflict:
            raise _LocatedError(("variants", conflict.index, "file_name"), str(conflict)) from None
        return self

    def file_names(self) -> dict[str, VariantFiles]:
        """Every variant's model file by variant name, assigned over the whole recipe (so a build of some
        variants names them as a build of all would); see ``exporter.artifact.layout``."""
        return {variant.resolved_name: files
                for variant, files in zip(self.variants, assign_file_names(self.variants), strict=True)}

    def truncate_dim(self, variant: Variant, source_default: int | None = None) -> int | None:
        """What ``variant`` truncates to: its own ``truncate_dim``, else the recipe's ``model.truncate_dim``, else
        ``source_default`` (the source model's config_sentence_transformers.json)."""
        if variant.truncate_dim is not None:
            return variant.truncate_dim
        return self.model.truncate_dim if self.model.truncate_dim is not None else source_default

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.resolved_name == name:
                return variant
        known = ", ".join(v.resolved_name for v in self.variants)
        raise RecipeError(f"recipe {self.name!r} has no variant {name!r} (variants: {known})")


def names_of(key: tuple[Any, ...]) -> str:
    return ", ".join(str(part) for part in key[:4])


class _LocatedError(ValueError):
    """A model-level check that blames one field (``location`` relative to the model checked), so the
    error can name that field and point at its line."""

    def __init__(self, location: tuple[Any, ...], message: str):
        super().__init__(message)
        self.location = location


class LoadedRecipe(BaseModel):
    """A validated recipe plus where it was read from (recipe paths are relative to it)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    recipe: Recipe
    path: Path
    text: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def where(self, location: tuple[Any, ...]) -> str:
        """``file:line: field`` of a recipe location (e.g. ``("variants", 2, "truncate_dim")``), for checks that
        need the model (the schema cannot know its dimension)."""
        _, lines = _parse_yaml(self.path, self.text)
        return f"{self.path}:{_line_for(location, lines)}: {_format_location(location)}"


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
    if len(text.encode("utf-8")) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: {len(text.encode('utf-8'))} bytes; a recipe may have at most {MAX_RECIPE_BYTES}")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_expansion(path, node)
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


def _check_expansion(path: Path, root: yaml.Node) -> None:
    """Refuse recursive aliases and documents whose aliases expand past ``MAX_EXPANDED_NODES`` nodes: a few
    hundred bytes of nested aliases can otherwise expand to billions of values ("billion laughs")."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            mark = node.start_mark
            raise RecipeError(f"{path}:{mark.line + 1}: malformed YAML: a recursive alias (an anchor used inside "
                              "itself)")
        in_progress.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1 + sum(size(child) for child in children)
        in_progress.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise RecipeError(f"{path}: malformed YAML: aliases expand to more than {MAX_EXPANDED_NODES} values")
        sizes[key] = total
        return total

    size(root)


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
    if isinstance(context_error, _LocatedError):
        location = location + context_error.location
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
        return (f"expected letters, digits, '.', '_' or '-' (starting with a letter or digit), "
                f"got {problem.get('input')!r}")
    return re.sub(r"^Value error, ", "", message)
