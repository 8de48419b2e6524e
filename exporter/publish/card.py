"""The model card (README.md) of an artifact folder, rendered with huggingface_hub's card classes.

``write_card(folder, repo_id)`` renders ``templates/model_card.md`` through ``ModelCard.from_template``:
YAML front matter from ``ModelCardData`` (base_model, library_name, pipeline_tag, tags, license), a table
of the variants with their parity and benchmark numbers (and bench's speed/accuracy chart when the folder
has one), a load snippet per variant, the recipe, the
provenance and the toolchain versions. Everything comes from manifest.json (read once, typed: ``Manifest``)
and bench.json, never from the clock, so the same folder always gives the same card: pushing it again
changes nothing. Package names and versions come from the one package table (``exporter.runtime.packages``).

The card is listed in manifest.json's ``shared_files`` like every other file.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

from exporter.artifact import model_folder
from exporter.artifact.integrity import write_text_atomic
from exporter.artifact.layout import BENCH_NAME, CHART_NAMES
from exporter.artifact.manifest import Manifest, Variant, file_entry, read_manifest, write_manifest
from exporter.constants import REPO_ID_PATTERN
from exporter.runtime.packages import PACKAGES

CARD_NAME = "README.md"
TEMPLATE = "model_card.md"
LIBRARY_NAME = "sentence-transformers"
PIPELINE_TAG = "sentence-similarity"
# Shown in the versions table, in the package table's order, when known.
VERSION_PACKAGES = tuple(package.name for package in PACKAGES if package.in_environment)
PARITY_FIELDS = (("cosine_min", "cosine min", 5), ("cosine_mean", "cosine mean", 5),
                 ("neighbour_overlap", "neighbour overlap", 4), ("spearman", "spearman", 4))
# A sparse encoder's (SPLADE) parity columns instead (exporter.validators.sparse).
SPARSE_PARITY_FIELDS = (("cosine_min", "cosine min", 5), ("top_k_overlap_min", "top-20 terms min", 4),
                        ("top_k_overlap_mean", "top-20 terms mean", 4), ("dot_parity", "dot parity", 4),
                        ("nnz_mean", "terms per text", 1))
# A card's base_model may also be a bare (legacy, un-namespaced) Hub id such as "bert-base-uncased", which
# REPO_ID_PATTERN (ORG/NAME, what push and fetch accept) rightly refuses: this pattern adds only that.
_BARE_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SAMPLE_TEXTS = '["first text", "second text"]'
RUNTIME_NAMES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO", "torch": "torch (sentence-transformers)"}


def cell(value: Any) -> str:
    """A markdown table cell: ``|`` escaped (also inside code spans, as GFM requires), one line."""
    text = "–" if value is None or value == "" else str(value)
    return re.sub(r"\s*[\r\n]+\s*", " ", text).replace("|", "\\|")


def code(value: Any) -> str:
    """Inline code, with a fence longer than any backtick run inside."""
    text = str(value)
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence_for(text: str) -> str:
    """A code fence longer than any backtick run in ``text`` (at least three backticks)."""
    return "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return str(value)
    # rounded down, so 0.999996 reads 0.99999 and never passes for a perfect 1.00000
    return f"{math.floor(value * 10**digits) / 10**digits:.{digits}f}"


def _size(num_bytes: int) -> str:
    if num_bytes >= 1e9:
        return f"{num_bytes / 1e9:.2f} GB"
    if num_bytes >= 1e6:
        return f"{num_bytes / 1e6:.1f} MB"
    return f"{num_bytes / 1e3:.1f} kB"


def card_tags(manifest: Manifest) -> list[str]:
    tags = [LIBRARY_NAME]
    tags += [backend for backend in ("onnx", "openvino") if backend in manifest.backends]
    tags += sorted({variant.precision for variant in manifest.variants} - {"fp32"})
    if any(variant.graph == "sentence" for variant in manifest.variants):
        tags.append("sentence-embedding-graph")
    tags.append("embedding-exporter")
    return list(dict.fromkeys(tags))


def base_model(manifest: Manifest) -> str | None:
    """``source.id`` when it is a Hub id (ORG/NAME, or a bare legacy name), for the card's ``base_model``."""
    source_id = manifest.source.id
    if source_id and (REPO_ID_PATTERN.match(source_id) or _BARE_HUB_ID.match(source_id)):
        return source_id
    return None


def card_data(manifest: Manifest):
    """The card's metadata as ``ModelCardData``."""
    from huggingface_hub import ModelCardData

    return ModelCardData(
        base_model=base_model(manifest),
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        tags=card_tags(manifest),
        license=source_license(manifest),
    )


def source_license(manifest: Manifest) -> str | None:
    """``source.license`` (recorded by ``finalize_manifest``), else the license in the README of the source
    model, when it is on this machine."""
    if manifest.source.license:
        return manifest.source.license
    from exporter.artifact import model_folder

    directory = model_folder.find_source_model(manifest).directory
    return model_folder.source_license(directory) if directory is not None else None


def _has_bench(folder: Path, manifest: Manifest) -> bool:
    return BENCH_NAME in manifest.entries() or (folder / BENCH_NAME).is_file()


def _verdict(variant: Variant) -> str:
    if variant.parity is None:
        return "not validated"
    if not variant.parity.passed:
        return "❌ fail"
    return "✅ pass (loosened)" if loosened_thresholds(variant) else "✅ pass"


def loosened_thresholds(variant: Variant) -> list[str]:
    """The variant's recorded thresholds (its recipe's gate) that are looser than its precision's defaults,
    e.g. ``["cosine_min 0.9 < default 0.95"]``. Unreadable thresholds are push's to refuse, not the card's."""
    from pydantic import ValidationError

    from exporter.validators.thresholds import Thresholds, effective_thresholds, loosened

    try:
        recorded = Thresholds.model_validate(variant.validation_thresholds or {})
        return [str(item) for item in loosened(effective_thresholds(variant.precision, None, recorded),
                                               variant.precision)]
    except (ValidationError, ValueError):
        return []


def variant_table(folder: Path, manifest: Manifest) -> tuple[list[str], list[list[str]], bool]:
    """Header and rows of the variants table; whether bench columns are in it."""
    with_bench = _has_bench(folder, manifest) and any(variant.bench is not None for variant in manifest.variants)
    truncated = any(variant.truncate_dim is not None for variant in manifest.variants)
    header = ["variant", "backend", "precision", "graph"] + (["dim"] if truncated else [])
    header += ["file", "size", "parity"]
    fields = SPARSE_PARITY_FIELDS if manifest.source.kind == "sparse" else PARITY_FIELDS
    if manifest.source.kind == "cross":  # a reranker: its ranking metrics (exporter.publish.card_cross)
        from exporter.publish.card_cross import RANKING_FIELDS as fields
    header += [label for _, label, _ in fields]
    if with_bench:
        header += ["× torch", "texts/s"]
    rows = []
    for variant in manifest.variants:
        parity = variant.parity
        row: list[Any] = [code(variant.name), variant.backend, variant.precision, variant.graph]
        if truncated:
            row.append(variant.dimension(manifest.source.dimension))
        row += [code(variant.file_name), _size(variant.size), _verdict(variant)]
        row += [_number(getattr(parity, key), digits) if parity is not None else None
                for key, _, digits in fields]
        if with_bench:
            bench = variant.bench
            ratio = bench.ratio_to_torch if bench is not None else None
            throughput = bench.throughput if bench is not None else None
            row += [f"{ratio:.2f}×" if ratio is not None else None,
                    _number(throughput, 1) if throughput is not None else None]
        rows.append([cell(value) for value in row])
    return header, rows, with_bench


def bench_chart(folder: Path, manifest: Manifest) -> str | None:
    """The speed/accuracy chart ``exporter bench --plot`` saved beside bench.json (``bench.png`` or
    ``bench.svg``), when the manifest lists it and it is there: the card shows it."""
    entries = manifest.entries()
    return next((name for name in CHART_NAMES if name in entries and (folder / name).is_file()), None)


def _bench_note(folder: Path) -> str:
    note = ("`× torch`: throughput relative to the torch model, measured in one process with the same threads "
            "(`bench.json`).")
    try:
        data = json.loads((folder / BENCH_NAME).read_text(encoding="utf-8"))
        host, settings = data.get("host") or {}, data.get("settings") or {}
        details = [str(host["cpu"])] if host.get("cpu") else []
        if settings.get("batch_size"):
            details.append(f"batch size {settings['batch_size']}")
        if settings.get("threads"):
            details.append(f"{settings['threads']} threads")
        if details:
            note = note[:-1] + ": " + ", ".join(details) + "."
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return note


def _parity_note(manifest: Manifest) -> str:
    note = ("Parity: each variant's embeddings against the torch model's on the validation texts (cosine per "
            "text, nearest-neighbour overlap and Spearman correlation of the pairwise similarities); "
            "*not validated*: no parity measured.")
    if manifest.validation is not None and manifest.validation.report:
        note += f" Full report: {code(manifest.validation.report)}."
    prompted = [variant for variant in manifest.variants if variant.parity is not None and variant.parity.prompts]
    if prompted:
        names = list(dict.fromkeys(name for variant in prompted for name in variant.parity.prompts))
        worst = {name: min((v.parity.prompts.get(name) for v in prompted if v.parity.prompts.get(name) is not None),
                           default=None) for name in names}
        note += (" Each prompt the model declares was validated on its own (texts encoded with the prompt, against "
                 "the torch model with it): " + "; ".join(
                     f"{code(name)} cosine min {_number(value, 4) if value is not None else 'n/a'}"
                     for name, value in worst.items()) + " (lowest over the variants).")
    loosened = [(variant.name, loosened_thresholds(variant)) for variant in manifest.variants]
    loosened = [(name, items) for name, items in loosened if items]
    if loosened:
        note += (" **Loosened thresholds** (the recipe's gate, below the tool's defaults for the precision; "
                 "`exporter validate` and `exporter fetch --check` hold variants to the defaults unless told "
                 "otherwise): " + "; ".join(f"{code(name)}: loosened: {', '.join(items)}" for name, items in loosened)
                 + ".")
    return note


def _download_patterns(variant: Variant) -> list[str]:
    files = [entry.path for entry in variant.files]
    return list(dict.fromkeys([*(files or [variant.file_name]), "*.json", "*.txt", "*.model"]))


# sentence-transformers 6 loads ONNX only through optimum-onnx, which has no release for transformers 5.
ONNX_LOADER_NOTE = ('# backend="onnx" needs sentence-transformers 5.7 with optimum-onnx (transformers 4): '
                    'pip install "sentence-transformers[onnx]==5.7.0"')


def snippets(manifest: Manifest, repo_id: str | None, folder_name: str, normalizes: bool = False,
             prompts: dict[str, str] | None = None) -> list[dict[str, str]]:
    """A load snippet per variant: ``exporter.load`` first (torch-free, the numerics that were validated), then
    sentence-transformers for ``graph: transformer`` or the plain runtime for ``graph: sentence`` (which
    outputs ``sentence_embedding`` and must not be pooled again). torch variants load through
    sentence-transformers only, with their ``variant`` and ``dtype``. A variant's ``truncate_dim`` is passed to
    sentence-transformers (with ``normalize_embeddings=True`` when the model ``normalizes``). ``prompts``: the
    model's prompts (name -> text), shown by name where the runtime applies them and prepended where the
    caller must."""
    prompts = {name: text for name, text in (prompts or {}).items() if text}  # empty ones change nothing
    where = repo_id or folder_name
    max_length = manifest.source.max_seq_length or 512
    result = []
    for variant in manifest.variants:
        backend, file_name, options = variant.backend, variant.file_name, variant.runtime_options
        dimension = variant.dimension(manifest.source.dimension)
        shape = f"  # shape (2, {dimension})" if dimension else ""
        truncate = variant.truncate_dim if variant.graph == "transformer" else None
        truncate_arg = f", truncate_dim={truncate}" if truncate is not None else ""
        encode_args = ", normalize_embeddings=True" if truncate is not None and normalizes else ""
        if backend == "torch":
            from exporter.constants import TORCH_DTYPES

            dtype = TORCH_DTYPES.get(variant.precision, "float32")
            lines = [
                "import torch",
                "from sentence_transformers import SentenceTransformer",
                "",
                f"model = SentenceTransformer({json.dumps(where)}, device=\"cpu\"{truncate_arg}, "
                f"model_kwargs={{\"variant\": {json.dumps(variant.precision)}, \"dtype\": torch.{dtype}}})",
                f"embeddings = model.encode({SAMPLE_TEXTS}{encode_args}){shape}",
                "",
                "# The same through exporter (fetched and verified; only this variant's weights are downloaded):",
                "import exporter",
                "",
                f"model = exporter.load_sentence_transformer({json.dumps(where)}, variant={json.dumps(variant.name)})",
            ]
            text = (f"The Transformer module's weights in {variant.precision} (`{file_name}`, transformers' "
                    f"`variant={variant.precision!r}`), for sentence-transformers' torch backend (GPUs, CPUs with "
                    "AMX/AVX512_BF16 for bf16); `pip install \"embedding-exporter[torch]\"`. `exporter.load` (the "
                    "torch-free runtime) does not run it.")
            if truncate is not None:
                text += f" Matryoshka: truncated to {truncate} dimensions."
            result.append({"name": variant.name, "runtime": "sentence-transformers (torch)", "text": text,
                           "code": "\n".join(lines)})
            continue
        if variant.graph == "sentence":
            inputs = list(variant.inputs or ["input_ids", "attention_mask"])
            lines = ["import onnxruntime as ort" if backend == "onnx" else "import openvino as ov"]
            if repo_id:
                lines.append("from huggingface_hub import snapshot_download")
            lines += ["from transformers import AutoTokenizer", ""]
            lines += [f"# prompt {json.dumps(name)}: prepend {json.dumps(text)} to each text"
                      for name, text in prompts.items()]
            if repo_id:
                lines.append(f"folder = snapshot_download({json.dumps(repo_id)}, "
                             f"allow_patterns={json.dumps(_download_patterns(variant))})")
            else:
                lines.append(f"folder = {json.dumps(folder_name)}  # the artifact folder")
            lines += [
                "tokenizer = AutoTokenizer.from_pretrained(folder)",
                f"batch = tokenizer({SAMPLE_TEXTS}, padding=True, truncation=True, max_length={max_length}, "
                'return_tensors="np")',
                f"inputs = {{name: batch[name] for name in {json.dumps(inputs)}}}",
            ]
            if backend == "onnx":
                lines += [f'session = ort.InferenceSession(f"{{folder}}/{file_name}")',
                          f'embeddings = session.run(["sentence_embedding"], inputs)[0]{shape}']
            else:
                config = f", {json.dumps(options)}" if options else ""
                lines += [f'compiled = ov.Core().compile_model(f"{{folder}}/{file_name}", "CPU"{config})',
                          f'embeddings = compiled(inputs)["sentence_embedding"]{shape}']
            runtime = RUNTIME_NAMES.get(backend, backend)
            text = ("The whole pipeline (transformer, pooling and the model's other modules) in one graph: "
                    f"output `sentence_embedding` `[batch, {dimension or 'dim'}]`, inputs "
                    f"{', '.join(code(name) for name in inputs)} (int64). Run it with plain {runtime}; "
                    "do not load it through sentence-transformers, which would pool again.")
        else:
            kwargs: dict[str, Any] = {"file_name": file_name}
            if backend == "openvino" and options:
                kwargs["ov_config"] = options
            lines = [ONNX_LOADER_NOTE] if backend == "onnx" else []
            loader = "SparseEncoder" if manifest.source.kind == "sparse" else "SentenceTransformer"
            lines += [
                f"from sentence_transformers import {loader}",
                "",
                f"model = {loader}({json.dumps(where)}, backend={json.dumps(backend)}{truncate_arg}, "
                f"model_kwargs={json.dumps(kwargs)})",
                f"embeddings = model.encode({SAMPLE_TEXTS}{encode_args}){shape}",
                *_prompt_lines(prompts),
            ]
            runtime = "sentence-transformers"
            text = ("Token embeddings; sentence-transformers runs the model's pooling (and its other modules) after "
                    "the graph.")
            if manifest.source.kind == "sparse":
                text = ("The MLM logits; sentence-transformers' SparseEncoder runs SpladePooling after the graph "
                        "(exporter.load returns scipy.sparse rows).")
            if truncate is not None:
                text += (f" Matryoshka: truncated to {truncate} dimensions (the manifest records it: exporter.load "
                         "applies it; sentence-transformers is told with truncate_dim).")
        deploy = [
            "import exporter  # the deploy runtime: no torch",
            "",
            f"model = exporter.load({json.dumps(where)}, {json.dumps(variant.name)})  # fetched, verified, pinned",
            f"embeddings = model.encode({SAMPLE_TEXTS}){shape}",
            *_prompt_lines(prompts),
            "",
            f"# The same variant through {runtime}:",
        ]
        result.append({"name": variant.name, "runtime": runtime, "text": text, "code": "\n".join(deploy + lines)})
    return result


def _prompt_lines(prompts: dict[str, str]) -> list[str]:
    """One ``encode(..., prompt_name=...)`` line per prompt the model declares."""
    return [f"{_identifier(name)}_embeddings = model.encode({SAMPLE_TEXTS}, prompt_name={json.dumps(name)})  "
            f"# prepends {json.dumps(text)}" for name, text in prompts.items()]


def _identifier(name: str) -> str:
    cleaned = "".join(char if char.isalnum() else "_" for char in name).strip("_") or "prompt"
    return cleaned if not cleaned[0].isdigit() else f"prompt_{cleaned}"


def _versions(manifest: Manifest) -> tuple[str | None, dict[str, str]]:
    """(python version, package versions): the manifest's recorded environment (``finalize_manifest`` writes
    ``runtime.packages.environment()``), else this host's."""
    if manifest.environment is not None:
        recorded = manifest.environment
    else:
        from exporter.runtime.packages import environment

        recorded = environment()
    packages = recorded.get("packages") or {}
    return recorded.get("python"), {str(name): str(version) for name, version in packages.items() if version}


def _install_line(manifest: Manifest) -> str:
    requirements = manifest.runtime_requirements
    if not requirements:
        from exporter.runtime.packages import runtime_requirements

        requirements = runtime_requirements(manifest.backends)
    return " ".join(f'"{name}{spec}"' for name, spec in requirements.items()) or "sentence-transformers"


def _normalizes(folder: Path) -> bool:
    from exporter.errors import BadInputError
    from exporter.runtime.pooling import has_normalize

    try:
        return has_normalize(folder)
    except BadInputError:
        return False


def render_card(folder: Path, manifest: Manifest, repo_id: str | None = None):
    """The ``ModelCard`` for ``folder``'s manifest. ``repo_id`` is used in the load snippets; without it
    (and without ``publish.repo_id``), they load the local folder."""
    from huggingface_hub import ModelCard

    from exporter.publish.defaults import PublishDefaults

    repo_id = repo_id or PublishDefaults.of(manifest, folder).repo_id
    source, recipe = manifest.source, manifest.recipe
    header, rows, with_bench = variant_table(folder, manifest)
    base = source.id
    title = repo_id.split("/")[-1] if repo_id else (recipe.name if recipe is not None else None) or folder.name
    runtimes = " and ".join(RUNTIME_NAMES.get(backend, backend) for backend in sorted(manifest.backends))
    of_what = f"of {code(base)} " if base else ""
    dims = []
    if source.kind == "cross":
        dims.append("a reranker (CrossEncoder): one score per (query, passage) pair")
    elif source.dimension:
        dims.append(f"{source.dimension}-dimensional embeddings")
    if source.max_seq_length:
        dims.append(f"max_seq_length {source.max_seq_length}")
    count = len(manifest.variants)
    summary = (f"{count} export{'s' if count != 1 else ''} {of_what}for {runtimes}, built from a recipe by "
               "embedding-exporter" + (f" ({', '.join(dims)})." if dims else "."))
    python, packages = _versions(manifest)
    version_rows = [[cell(name), cell(packages[name])] for name in VERSION_PACKAGES if packages.get(name)]
    if python:
        version_rows.insert(0, [cell("python"), cell(python)])
    source_label = base or source.location
    recipe_name = recipe.name if recipe is not None else ""
    recipe_file = (recipe.file if recipe is not None else None) or ""
    recipe_sha256 = (recipe.sha256 if recipe is not None else None) or ""
    provenance: list[list[Any]] = [
        ["source model", code(source_label) if source_label else None],
        ["source revision", code(source.revision) if source.revision else "not pinned"],
    ]
    if source.weights_sha256:
        provenance.append([f"source weights sha256 ({code(source.weights_file or 'weights')})",
                           code(source.weights_sha256)])
    if source.license:
        provenance.append(["source license", source.license])
    provenance += [
        ["recipe", f"{code(recipe_name)} ({code(recipe_file)})"],
        ["recipe sha256", code(recipe_sha256)],
        ["tool", f"embedding-exporter {manifest.tool.version or ''}".strip()],
        ["built", manifest.created_at],
    ]
    if manifest.runtime_requirements:
        provenance.append(["runtime requirements",
                           ", ".join(code(f"{k}{v}") for k, v in manifest.runtime_requirements.items())])
    recipe_text = ((recipe.text if recipe is not None else None) or "").rstrip("\n")
    template = resources.files("exporter").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    return ModelCard.from_template(
        card_data(manifest),
        template_str=template,
        title=cell(title),
        summary=summary,
        variant_header=[cell(h) for h in header],
        variant_rows=rows,
        parity_note=_parity_note(manifest),
        bench_note=_bench_note(folder) if with_bench else "",
        bench_chart=bench_chart(folder, manifest) if _has_bench(folder, manifest) else None,
        install_line=_install_line(manifest),
        deploy_install="\n".join(f'pip install "embedding-exporter[{backend}]"  '
                                 f"# {RUNTIME_NAMES.get(backend, backend)} "
                                 "variants" for backend in sorted(manifest.backends)),
        snippets=_snippets(manifest, repo_id, folder),
        tool_version=manifest.tool.version or "",
        recipe_file=(recipe.file if recipe is not None else None) or "recipe.yaml",
        recipe_sha256=recipe_sha256,
        recipe_fence=fence_for(recipe_text),
        recipe_text=recipe_text,
        provenance_rows=[[cell(k), cell(v)] for k, v in provenance],
        version_rows=version_rows,
    )


def _snippets(manifest: Manifest, repo_id: str | None, folder: Path) -> list[dict[str, str]]:
    if manifest.source.kind == "cross":  # a reranker: exporter.publish.card_cross
        from exporter.publish.card_cross import cross_snippets

        return cross_snippets(manifest, repo_id, folder.name)
    return snippets(manifest, repo_id, folder.name, _normalizes(folder), model_folder.prompts(folder)[0])


def write_card(folder: str | Path, repo_id: str | None = None) -> Path:
    """Write ``folder/README.md`` from its manifest and list it in manifest.json (replacing the old entry).

    Returns the card's path. Raises ``ManifestError`` when the folder has no valid manifest.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    text = str(render_card(root, manifest, repo_id))
    if not text.endswith("\n"):
        text += "\n"
    path = root / CARD_NAME
    write_text_atomic(path, text)
    manifest.set_shared_file(file_entry(root, CARD_NAME))
    write_manifest(root, manifest)
    return path


__all__ = ["CARD_NAME", "VERSION_PACKAGES", "bench_chart", "card_data", "card_tags", "cell", "code", "fence_for",
           "render_card", "snippets", "source_license", "variant_table", "write_card"]
