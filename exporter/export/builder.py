"""``build``: turn a recipe into an artifact folder, atomically.

Steps: load the recipe → check the output path → resolve and load the source model → write the
sentence-transformers files (``tokenizer_files``: the tokenizer files state max_seq_length) → export each
variant under the file name the whole recipe assigns it (``exporter.artifact.layout``) → write manifest.json
→ validate → move the model files of variants that failed off client-default names → move the folder into
place (``exporter.export.staging``: a crash or Ctrl-C leaves the previous folder as it was and no half
folder).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter import __version__
from exporter.artifact.layout import VariantFiles
from exporter.artifact.manifest import (
    SCHEMA_VERSION,
    FileEntry,
    Manifest,
    RecipeRecord,
    SourceRecord,
    Tool,
    describe_files,
    file_entry,
    read_manifest,
    write_manifest,
)
from exporter.artifact.manifest import Variant as ManifestVariant
from exporter.artifact.model_folder import transformer_module_path
from exporter.constants import MANIFEST_NAME
from exporter.errors import BadInputError
from exporter.export.graphs import GraphSpec
from exporter.export.provenance import finalize_manifest
from exporter.export.source import ResolvedSource, embedding_dimension, load_sentence_transformer, resolve_source
from exporter.export.staging import check_output, staging_for
from exporter.export.variants import BuiltFiles, VariantBuilder
from exporter.progress import Progress, SilentProgress
from exporter.recipe import LoadedRecipe, Variant, load_recipe
from exporter.validators.thresholds import Thresholds

# Weight files of the Transformer module: the exported graphs replace them in the artifact folder.
TRANSFORMER_WEIGHT_PATTERNS = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
                               "pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json")


@dataclass
class BuiltVariant:
    """One variant as built: what the manifest records about it."""

    variant: Variant
    file_name: str
    files: list[str]
    spec: GraphSpec
    seconds: float
    built: BuiltFiles
    truncate_dim: int | None = None


@dataclass(frozen=True)
class RenamedVariant:
    """A variant that failed parity, moved off the client-default name it was built under."""

    name: str
    old_file_name: str
    file_name: str

    def line(self) -> str:
        return (f"{self.name} failed parity: moved {self.old_file_name} → {self.file_name}, so no client loads "
                "it by default")

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "from": self.old_file_name, "to": self.file_name}


@dataclass
class BuildResult:
    """What ``build`` produced."""

    output: Path
    manifest: Manifest
    seconds: float
    variants: list[BuiltVariant] = field(default_factory=list)
    report: Any = None  # exporter.validators.ParityReport, or None when validation was skipped
    dropped: list[str] = field(default_factory=list)  # variants of the replaced folder that this one lacks
    renamed: list[RenamedVariant] = field(default_factory=list)  # failed variants moved off client-default names
    restored: list[str] = field(default_factory=list)  # variants restored from the build cache (not rebuilt)
    revalidated: list[str] = field(default_factory=list)  # of those, validated again (another CPU class)
    discarded: list[str] = field(default_factory=list)  # corrupted cache entries discarded (and rebuilt)

    def summary(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "recipe": self.manifest.recipe_name,
            "seconds": round(self.seconds, 2),
            "validated": self.report is not None,
            "passed": self.report.passed if self.report is not None else None,
            "failures": self.report.failures() if self.report is not None else [],
            "dropped": list(self.dropped),
            "renamed": [renamed.to_dict() for renamed in self.renamed],
            "restored": list(self.restored),
            "revalidated": list(self.revalidated),
            "cache_discarded": list(self.discarded),
            "variants": [
                {"name": v.name, "backend": v.backend, "precision": v.precision, "graph": v.graph,
                 "file_name": v.file_name, "size": v.size,
                 "parity": v.parity.to_json_dict() if v.parity is not None else None}
                for v in self.manifest.variants
            ],
        }


def resolve_output(loaded: LoadedRecipe, output: str | Path | None) -> Path:
    """``output``, else the recipe's ``output:``, else ``artifacts/<name>``; relative to the working directory."""
    chosen = (
        Path(output) if output is not None else Path(loaded.recipe.output or Path("artifacts") / loaded.recipe.name)
    )
    return (Path.cwd() / chosen).resolve() if not chosen.is_absolute() else chosen


def build(
    recipe: str | Path | LoadedRecipe,
    output: str | Path | None = None,
    variants: list[str] | None = None,
    progress: Progress | None = None,
    validate: bool = True,
    wait: bool = False,
    *,
    reference: str | Path | None = None,
    cache: str | Path | None = None,
    isa: str | None = None,
) -> BuildResult:
    """Build the artifacts a recipe declares. Returns where they were placed, the manifest and the parity
    report.

    One run per target: while another run builds the same folder this raises ``TargetBusyError`` (naming its
    pid) at once, or with ``wait`` waits for it. Staging folders that killed runs left are removed. A
    previous artifact folder is replaced whole: ``result.dropped`` names its variants the new one lacks.

    ``variants`` restricts the run to the named variants. Raises ``BadInputError`` (nothing written) for a
    bad recipe, model path or output path. With ``validate`` (the default) every variant is checked against
    the torch model before the folder is placed; a folder that fails validation is still placed, marked
    failed in its manifest, and ``result.report.passed`` is false (the CLI exits 1).

    A shard of a CI build (``exporter plan``): ``reference`` is the shared reference folder to validate against
    (``exporter plan --reference-out``), ``isa`` what ``isa: auto`` resolves to (the plan's), ``cache`` a build
    cache folder (``exporter.export.cache``): a variant whose key is there is restored instead of rebuilt, and
    each variant built and passed (or not validated) is stored there.
    """
    started = time.perf_counter()
    progress = progress or SilentProgress()
    loaded = recipe if isinstance(recipe, LoadedRecipe) else load_recipe(recipe)
    selected = [loaded.recipe.variant(name) for name in variants] if variants else list(loaded.recipe.variants)
    target = resolve_output(loaded, output)
    check_output(target)
    source = resolve_source(loaded.recipe.model, loaded.base_dir, loaded.path)
    check_input_files(loaded, selected)
    check_sentence_graph_prompts(loaded, selected, source.directory)
    from exporter.export.architectures import check_variant_backends, source_model_type

    model_type = source_model_type(source.directory, f"{loaded.path}: model",
                                   trust_remote_code=loaded.recipe.model.trust_remote_code)
    check_variant_backends(model_type, selected, str(loaded.path))
    from exporter.export.model_kind import resolve_model_kind

    kind = resolve_model_kind(loaded.recipe.model.kind, source.directory, loaded.where(("model", "kind")))
    load_model, builder_class = load_sentence_transformer, VariantBuilder
    if kind.kind == "sparse":  # SPLADE: exporter.export.sparse
        from exporter.export.sparse import SparseVariantBuilder, check_sparse_source, load_sparse_encoder

        check_sparse_source(loaded, selected, source.directory)
        load_model, builder_class = load_sparse_encoder, SparseVariantBuilder
    elif kind.kind not in ("sentence", "cross"):
        raise BadInputError(f"{loaded.where(('model', 'kind'))}: {source.location} is a {kind.kind} model "
                            f"({kind.reason}); only sentence (embedding) models can be built")
    if kind.kind == "sentence":
        check_sentence_graphs(loaded, selected)
    if not loaded.recipe.model.trust_remote_code:  # sentence-transformers imports a local folder's custom modules
        from exporter.artifact.safety import MODULES_FILE, check_modules

        check_modules(source.directory / MODULES_FILE, f"{loaded.path}: model: {source.location}/{MODULES_FILE}",
                      opt_in="set model.trust_remote_code: true in the recipe to allow its code",
                      subject="the source model")
    if kind.kind == "cross":  # a reranker: exporter.export.cross
        if cache is not None:
            raise BadInputError(f"{loaded.where(('model', 'kind'))}: build caches (plan/shard) are not yet "
                                "supported for rerankers; build without --cache")
        return build_reranker(loaded, source, selected, target, kind=kind, progress=progress, validate=validate,
                           wait=wait, started=started)
    with staging_for(target, wait=wait) as staging:
        with progress.step(f"Loading {source.location}"):
            model = load_model(source.directory, loaded.recipe.model, for_export=True)
        # The source's own truncate_dim is every variant's default; the model itself is exported at full width.
        source_default_truncation, model.truncate_dim = getattr(model, "truncate_dim", None), None
        with progress.step("Writing sentence-transformers files"):
            write_shared_files(model, staging.folder, source.directory)
        file_names = torch_in_module_folder(loaded.recipe.file_names(), loaded.recipe.variants, staging.folder)
        truncation = truncate_dims(loaded, selected, source_default_truncation, embedding_dimension(model))
        store, keys, restored, discarded = restore_cached(loaded, selected, staging.folder, cache, isa, progress)
        to_build = [v for v in selected if v.resolved_name not in restored]
        built = export_variants(model, to_build, staging.folder, loaded.base_dir, progress, file_names,
                                {v.resolved_name: variant_thresholds(loaded, v) for v in to_build}, truncation,
                                isa=isa, builder_class=builder_class)
        write_manifest(staging.folder, make_manifest(loaded, source, model, built, staging.folder,
                                                     restored={name: hit.record for name, hit in restored.items()},
                                                     order=[v.resolved_name for v in selected], kind=kind.kind))
        manifest = finalize_manifest(staging.folder, source_dir=source.directory)
        report = None
        if validate:
            from exporter.validators.report import variant_result_from_dict

            kept = [variant_result_from_dict(hit.result) for hit in restored.values() if hit.validated]
            report = validate_staged(loaded, staging.folder, source.directory, progress, reference=reference,
                                     kept=kept)
        renamed: list[RenamedVariant] = []
        if report is not None:
            from exporter.validators import record_results

            renamed = move_failed_off_client_defaults(staging.folder, report, file_names)
            for line in (item.line() for item in renamed):
                progress.log(line)
            record_results(staging.folder, report)
            manifest = read_manifest(staging.folder)
        if store is not None:
            store_built(store, keys, staging.folder, manifest, report, skip=set(restored))
        dropped = dropped_variants(target, manifest)
        staging.place()
    if report is not None:
        report.folder = str(target)
    return BuildResult(output=target, manifest=manifest, seconds=time.perf_counter() - started, variants=built,
                       report=report, dropped=dropped, renamed=renamed, restored=list(restored),
                       revalidated=[name for name, hit in restored.items() if not hit.validated and validate],
                       discarded=discarded)


def dropped_variants(target: Path, manifest: Manifest) -> list[str]:
    """Variants of the folder being replaced that the new one does not have (e.g. a run with ``variants``)."""
    if not (target / MANIFEST_NAME).is_file():
        return []
    try:
        previous = read_manifest(target)
    except BadInputError:
        return []
    return [name for name in previous.variant_names if name not in manifest.variant_names]


def validate_staged(loaded: LoadedRecipe, folder: Path, source_dir: Path, progress: Progress, *,
                    reference: str | Path | None = None, kept: list | None = None):
    """Parity of every variant in the staged folder (``build`` records the results once failed variants have
    moved off client-default names). The recipe is the gate (its recorded thresholds:
    ``thresholds="artifact"``) and the trust (its ``model.trust_remote_code``). ``reference``: a shared
    reference folder to validate against; ``kept``: results reported as they are (restored from a cache)."""
    from exporter.validators import validate as validate_folder

    texts = loaded.recipe.validation.texts if loaded.recipe.validation else None
    return validate_folder(folder, source_dir=source_dir,
                           extra_texts_file=loaded.base_dir / texts if texts and reference is None else None,
                           progress=progress, thresholds="artifact",
                           trust_remote_code=loaded.recipe.model.trust_remote_code,
                           reference_dir=reference, kept=kept)


def restore_cached(loaded: LoadedRecipe, selected: list[Variant], folder: Path, cache: str | Path | None,
                   isa: str | None, progress: Progress):
    """(the cache, each variant's key, the variants restored into ``folder`` by name, the corrupted entries
    discarded, one line each); nothing without ``cache``."""
    if cache is None:
        return None, {}, {}, []
    from exporter.export.cache import BuildCache, host_isa_class
    from exporter.export.plan import variant_keys

    store = BuildCache(cache)
    keys = variant_keys(loaded, isa=isa)
    isa_class = host_isa_class()
    restored = {}
    discarded = []
    for variant in selected:
        name = variant.resolved_name
        hit = store.restore(keys[name], folder, isa_class=isa_class)
        for line in store.discarded:
            discarded.append(f"{name}: {line}")
            progress.log(discarded[-1])
        store.discarded.clear()
        if hit is not None:
            restored[name] = hit
            progress.log(f"{name}: restored from the cache ({keys[name][:12]})"
                         + ("" if hit.validated else "; validating it on this CPU"))
    return store, keys, restored, discarded


def store_built(store, keys: dict[str, str], folder: Path, manifest: Manifest, report, skip: set[str]) -> None:
    """Keep each variant built in this run that passed validation (or was not validated) in the cache."""
    results = {item["name"]: item for item in report.to_dict()["variants"]} if report is not None else {}
    for record in manifest.variants:
        if record.name in skip or (record.parity is not None and not record.parity.passed):
            continue
        store.store(keys[record.name], folder, record, results.get(record.name))


def move_failed_off_client_defaults(folder: Path, report, file_names: dict[str, VariantFiles]) -> list[RenamedVariant]:
    """Move each variant that failed parity and sits on a client-default name (``onnx/model.onnx``...) to its
    own suffixed name, so no client loads it without being told to: its files are renamed (an ONNX graph
    with external data is saved again, so that the reference inside it follows), and the manifest and the
    report name the new files. Returns what was moved."""
    from exporter.export.onnx_backend import move_onnx
    from exporter.export.openvino_backend import move_openvino

    failed = {result.name: result for result in report.variants if not result.passed}
    manifest = read_manifest(folder)
    renamed: list[RenamedVariant] = []
    for variant in manifest.variants:
        files = file_names.get(variant.name)
        if variant.name not in failed or files is None or variant.file_name == files.failed_file_name:
            continue
        old, new = variant.file_name, files.failed_file_name
        move = move_onnx if variant.backend == "onnx" else move_openvino
        moved = move(folder / old, folder / new)
        variant.files = [file_entry(folder, path.relative_to(folder).as_posix()) for path in sorted(moved)]
        variant.file_name = new
        failed[variant.name].file_name = new
        renamed.append(RenamedVariant(name=variant.name, old_file_name=old, file_name=new))
    if renamed:
        write_manifest(folder, manifest)
    return renamed


def check_input_files(loaded: LoadedRecipe, variants: list[Variant]) -> None:
    """Read every file the recipe names before anything is written, so bad input costs nothing."""
    from exporter.export.calibration import load_corpus

    for index, variant in enumerate(loaded.recipe.variants):
        quantization = variant.resolved_quantization
        if variant in variants and quantization and quantization.calibration:
            where = f"{loaded.path}: variants[{index}].quantization.calibration.corpus"
            load_corpus(quantization.calibration.corpus, loaded.base_dir, quantization.calibration.column, where)
    if loaded.recipe.validation and loaded.recipe.validation.texts:
        path = loaded.base_dir / loaded.recipe.validation.texts
        if not path.is_file():
            raise BadInputError(f"{loaded.path}: validation.texts: {path} is not a file")


def check_sentence_graphs(loaded: LoadedRecipe, variants: list[Variant]) -> None:
    """Refuse a reranker's ``graph: scores`` on an embedding model (it has no scores to output)."""
    for index, variant in enumerate(loaded.recipe.variants):
        if variant in variants and variant.graph == "scores":
            raise BadInputError(f"{loaded.where(('variants', index, 'graph'))}: variant {variant.resolved_name!r}: "
                                "graph scores is for rerankers (model.kind cross); an embedding model has graph "
                                "transformer | sentence")


def check_sentence_graph_prompts(loaded: LoadedRecipe, variants: list[Variant], source_dir: Path) -> None:
    """Refuse a ``graph: sentence`` variant of a model that pools without its prompt's tokens (Pooling
    ``include_prompt: false``) and declares prompts: the graph pools every token it is given and cannot know how
    many of them are the prompt's, so its prompted embeddings would differ from the model's (cosine ~0.75 measured
    on a tiny model). The ``graph: transformer`` variant of the same model handles it (pooling runs outside)."""
    from exporter.artifact import model_folder

    prompts = sorted(name for name, text in model_folder.prompts(source_dir)[0].items() if text)
    pooling = next((str(m.get("path", "")) for m in model_folder.modules(source_dir)
                    if str(m.get("type", "")).endswith(".Pooling")), None)
    if not prompts or pooling is None:
        return
    config = model_folder.read_config(source_dir / pooling / "config.json", what="Pooling config")
    if config.get("include_prompt", True):
        return
    for index, variant in enumerate(loaded.recipe.variants):
        if variant in variants and variant.graph == "sentence":
            raise BadInputError(
                f"{loaded.where(('variants', index, 'graph'))}: variant {variant.resolved_name!r}: a sentence graph "
                f"cannot leave the prompt's tokens out of its pooling, which the model asks for ({pooling or '.'}"
                f"/config.json: include_prompt: false; prompts: {', '.join(prompts)}); use graph: transformer")


def write_shared_files(model, folder: Path, source_dir: Path) -> None:
    """The model's sentence-transformers files (configs, tokenizer, module folders) without torch weights
    of the Transformer module, which the exported graphs replace. Dense layers keep their weights: the
    sentence-transformers backends run every module after the Transformer in torch. The configs are the
    source's own where it has them (``exporter.export.source_configs``: old and new sentence-transformers read
    them); the tokenizer files state the model's max_seq_length and make transformers read ``tokenizer.json`` as
    saved (``exporter.export.tokenizer_files``), and ``model`` tokenises from then on as the artifact does."""
    from exporter.export.source_configs import keep_source_configs
    from exporter.export.tokenizer_files import agree_with_tokenizer_json, state_max_seq_length
    from exporter.progress import quiet_loading
    from exporter.runtime.runners import use_folder_tokenizer

    with quiet_loading():  # transformers 5's "Writing model shards" progress bar
        model.save(str(folder), create_model_card=False)
    keep_source_configs(source_dir, folder)
    if model.max_seq_length:
        state_max_seq_length(folder, int(model.max_seq_length))
    transformer_dir = folder / transformer_module_path(folder)
    try:
        replaced = agree_with_tokenizer_json(folder)
    except ValueError as error:
        raise BadInputError(f"{source_dir}: {error}") from None
    if replaced is not None:
        use_folder_tokenizer(model, folder)
    for pattern in TRANSFORMER_WEIGHT_PATTERNS:
        for path in transformer_dir.glob(pattern):
            path.unlink()
    readme = folder / "README.md"
    if readme.exists():
        readme.unlink()


def torch_in_module_folder(file_names: dict[str, VariantFiles], variants: list[Variant],
                           folder: Path) -> dict[str, VariantFiles]:
    """The recipe's file names with each torch variant's weights file inside the Transformer module's folder
    (where transformers looks for it; ``""`` for the usual layout)."""
    module = transformer_module_path(folder)
    if not module:
        return file_names
    placed = dict(file_names)
    for variant in variants:
        if variant.backend == "torch":
            name = f"{module.rstrip('/')}/{file_names[variant.resolved_name].file_name}"
            placed[variant.resolved_name] = VariantFiles(file_name=name, failed_file_name=name)
    return placed


def truncate_dims(loaded: LoadedRecipe, variants: list[Variant], source_default: int | None,
                  dimension: int) -> dict[str, int | None]:
    """Each variant's Matryoshka truncation (its own, the recipe's, else the source model's); ``BadInputError``
    naming the recipe line and field for one larger than the model's embedding dimension."""
    chosen: dict[str, int | None] = {}
    for index, variant in enumerate(loaded.recipe.variants):
        value = loaded.recipe.truncate_dim(variant, source_default)
        if value is not None and value > dimension:
            if variant.truncate_dim is not None:
                where = loaded.where(("variants", index, "truncate_dim"))
            elif loaded.recipe.model.truncate_dim is not None:
                where = loaded.where(("model", "truncate_dim"))
            else:
                where = f"{loaded.path}: model: config_sentence_transformers.json truncate_dim"
            raise BadInputError(f"{where}: {value} is larger than the model's embedding dimension {dimension}")
        if variant in variants:
            chosen[variant.resolved_name] = value if value != dimension else None
    return chosen


def export_variants(model, variants: list[Variant], folder: Path, recipe_dir: Path,
                    progress: Progress, file_names: dict[str, VariantFiles],
                    thresholds: dict[str, Thresholds],
                    truncation: dict[str, int | None] | None = None, *, isa: str | None = None,
                    builder_class: type[VariantBuilder] = VariantBuilder) -> list[BuiltVariant]:
    """Export each variant into ``folder`` under its name in ``file_names`` (the recipe's
    ``file_names()``); intermediate graphs live in a scratch folder, built once. ``thresholds``: what each
    variant will be validated against (``exclude: auto`` searches for them); ``truncation``: each variant's
    Matryoshka ``truncate_dim`` (None: full width); ``isa``: what ``isa: auto`` resolves to (None: this host's);
    ``builder_class``: the ``VariantBuilder`` of the model's kind (``exporter.export.cross`` for rerankers)."""
    truncation = truncation or {}
    built: list[BuiltVariant] = []
    with tempfile.TemporaryDirectory(prefix="exporter-graphs-") as scratch:
        builder = builder_class(model, recipe_dir, Path(scratch), progress, folder=folder, isa=isa)
        for variant in variants:
            file_name = file_names[variant.resolved_name].file_name
            started = time.perf_counter()
            truncate_dim = truncation.get(variant.resolved_name)
            if variant.backend != "torch":
                builder.fp32_graph(variant.graph, variant.optimize, truncate_dim)  # its own progress step
            with progress.step(f"Building {variant.resolved_name} → {file_name}"):
                result = builder.build(variant, folder / file_name, thresholds[variant.resolved_name],
                                       truncate_dim)
            built.append(BuiltVariant(
                variant=variant,
                file_name=file_name,
                files=[path.relative_to(folder).as_posix() for path in result.files],
                spec=result.spec,
                seconds=time.perf_counter() - started,
                built=result,
                truncate_dim=truncate_dim,
            ))
    return built


def make_manifest(
    loaded: LoadedRecipe, source: ResolvedSource, model, built: list[BuiltVariant], folder: Path, *, kind: str,
    restored: dict[str, ManifestVariant] | None = None, order: list[str] | None = None,
) -> Manifest:
    """The manifest of the staged folder: the variants built, and those ``restored`` (from a cache, with their
    records as they were), in ``order`` (the recipe's)."""
    restored = restored or {}
    owned = {b.variant.resolved_name: b.files for b in built}
    owned.update({name: [entry.path for entry in record.files] for name, record in restored.items()})
    shared, per_variant = describe_files(folder, owned)
    records = {b.variant.resolved_name: _variant_record(loaded, b, per_variant[b.variant.resolved_name])
               for b in built}
    records.update(restored)
    order = order or list(records)
    return Manifest(
        schema_version=SCHEMA_VERSION,
        tool=Tool(name="embedding-exporter", version=__version__),
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        recipe=RecipeRecord(
            name=loaded.recipe.name,
            file=loaded.path.name,
            sha256=hashlib.sha256(loaded.text.encode("utf-8")).hexdigest(),
            text=loaded.text,
        ),
        source=SourceRecord(
            id=source.id,
            revision=source.revision,
            location=source.location,
            max_seq_length=model.max_seq_length,
            dimension=embedding_dimension(model),
            trust_remote_code=loaded.recipe.model.trust_remote_code,
            kind=kind,
        ),
        publish=loaded.recipe.publish.model_dump(exclude_none=True) if loaded.recipe.publish else {},
        shared_files=shared,
        variants=[records[name] for name in order],
    )


def _variant_record(loaded: LoadedRecipe, built: BuiltVariant, files: list[FileEntry]) -> ManifestVariant:
    record = ManifestVariant(
        name=built.variant.resolved_name,
        backend=built.variant.backend,
        precision=built.variant.precision,
        graph=built.variant.graph,
        file_name=built.file_name,
        inputs=list(built.spec.inputs),
        output=built.spec.output,
        optimize=built.built.optimize,
        quantization=built.built.quantization,
        files=files,
    )
    # Recorded only where they apply, as before: the JSON keeps the keys it always had.
    if built.built.calibration is not None:
        record.calibration = built.built.calibration
    if built.built.runtime_options:
        record.runtime_options = dict(built.built.runtime_options)
    if built.truncate_dim is not None:
        record.truncate_dim = built.truncate_dim
    record.validation_thresholds = variant_thresholds(loaded, built.variant).model_dump()
    return record


def variant_thresholds(loaded: LoadedRecipe, variant: Variant):
    """The parity thresholds this variant is held to: defaults for its precision, then the recipe's."""
    from exporter.validators.thresholds import effective_thresholds

    recipe_level = loaded.recipe.validation.thresholds if loaded.recipe.validation else None
    variant_level = variant.validation.thresholds if variant.validation else None
    return effective_thresholds(variant.precision, recipe_level, variant_level)


# -- rerankers (model.kind: cross) ----------------------------------------------------------------------------


def build_reranker(loaded, source, selected, target: Path, *, kind, progress, validate: bool, wait: bool,
                   started: float):
    """``build`` for a reranker (``model.kind: cross``): the same staging, file names, manifest and recording, with
    ``exporter.export.cross``'s steps (CrossEncoder loading, pair graphs, the ranking judge) and the ranking
    validation (``exporter.validators.ranking``). Returns a ``BuildResult``."""
    from exporter.export.cross import CrossVariantBuilder, check_cross_recipe, load_cross_encoder
    from exporter.validators.ranking import ranking_thresholds

    pairs_file = check_cross_recipe(loaded, selected, source.directory)
    with staging_for(target, wait=wait) as staging:
        with progress.step(f"Loading {source.location} (CrossEncoder)"):
            model = load_cross_encoder(source.directory, loaded.recipe.model)
        with progress.step("Writing sentence-transformers files"):
            write_shared_files(model, staging.folder, source.directory)
        file_names = loaded.recipe.file_names()
        thresholds = {v.resolved_name: variant_thresholds(loaded, v) for v in selected}
        built = export_variants(model, selected, staging.folder, loaded.base_dir, progress, file_names,
                                        thresholds, builder_class=CrossVariantBuilder)
        manifest = make_manifest(loaded, source, model, built, staging.folder, kind=kind.kind,
                                         order=[v.resolved_name for v in selected])
        for record in manifest.variants:  # the thresholds a reranker is held to are its ranking ones
            record.validation_thresholds = ranking_thresholds(record.precision)
        write_manifest(staging.folder, manifest)
        manifest = finalize_manifest(staging.folder, source_dir=source.directory)
        report = None
        renamed = []
        if validate:
            from exporter.validators import record_results
            from exporter.validators.ranking import validate_ranking

            report = validate_ranking(staging.folder, manifest, source_dir=source.directory, pairs_file=pairs_file,
                                      progress=progress, trust_remote_code=loaded.recipe.model.trust_remote_code)
            renamed = move_failed_off_client_defaults(staging.folder, report, file_names)
            for line in (item.line() for item in renamed):
                progress.log(line)
            record_results(staging.folder, report)
            manifest = read_manifest(staging.folder)
        dropped = dropped_variants(target, manifest)
        staging.place()
    if report is not None:
        report.folder = str(target)
    return BuildResult(output=target, manifest=manifest, seconds=time.perf_counter() - started,
                               variants=built, report=report, dropped=dropped, renamed=renamed)
