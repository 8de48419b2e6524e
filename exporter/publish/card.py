"""The model card (README.md) of an artifact folder, rendered with huggingface_hub's card classes.

``write_card(folder, repo_id)`` renders ``templates/model_card.md`` through ``ModelCard.from_template``:
YAML front matter from ``ModelCardData`` (base_model, library_name, pipeline_tag, tags, license), a table
of the variants with their parity and benchmark numbers, a load snippet per variant, the recipe, the
provenance and the toolchain versions. Everything comes from manifest.json (and bench.json), never from
the clock, so the same folder always gives the same card: pushing it again changes nothing.

The card is listed in manifest.json's ``shared_files`` like every other file.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

from exporter.artifact.manifest import file_entry, read_manifest, write_manifest

CARD_NAME = "README.md"
TEMPLATE = "model_card.md"
LIBRARY_NAME = "sentence-transformers"
PIPELINE_TAG = "sentence-similarity"
# Shown in the versions table, in this order, when known.
VERSION_PACKAGES = ("torch", "transformers", "sentence-transformers", "optimum", "optimum-onnx", "optimum-intel",
                    "onnx", "onnxruntime", "openvino", "nncf", "huggingface-hub")
PARITY_FIELDS = (("cosine_min", "cosine min", 5), ("cosine_mean", "cosine mean", 5),
                 ("neighbour_overlap", "neighbour overlap", 4), ("spearman", "spearman", 4))
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
SAMPLE_TEXTS = '["first text", "second text"]'


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


def _number(value: Any, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return str(value)
        # rounded down, so 0.999996 reads 0.99999 and never passes for a perfect 1.00000
        return f"{math.floor(value * 10**digits) / 10**digits:.{digits}f}"
    if isinstance(value, dict):  # e.g. per batch size: show each
        return ", ".join(f"{k}: {_number(v, digits)}" for k, v in value.items())
    return str(value)


def _size(num_bytes: int) -> str:
    if num_bytes >= 1e9:
        return f"{num_bytes / 1e9:.2f} GB"
    if num_bytes >= 1e6:
        return f"{num_bytes / 1e6:.1f} MB"
    return f"{num_bytes / 1e3:.1f} kB"


def card_tags(manifest: dict[str, Any]) -> list[str]:
    tags = [LIBRARY_NAME]
    backends = {v.get("backend") for v in manifest["variants"]}
    tags += [backend for backend in ("onnx", "openvino") if backend in backends]
    precisions = sorted({str(v.get("precision")) for v in manifest["variants"] if v.get("precision")} - {"fp32"})
    tags += precisions
    if any(v.get("graph") == "sentence" for v in manifest["variants"]):
        tags.append("sentence-embedding-graph")
    tags.append("embedding-exporter")
    return list(dict.fromkeys(tags))


def card_data(manifest: dict[str, Any]):
    """The card's metadata as ``ModelCardData``."""
    from huggingface_hub import ModelCardData

    source = manifest.get("source") or {}
    base_model = source.get("id") if isinstance(source.get("id"), str) and _HUB_ID.match(source["id"]) else None
    return ModelCardData(
        base_model=base_model,
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        tags=card_tags(manifest),
        license=source_license(manifest),
    )


def source_license(manifest: dict[str, Any]) -> str | None:
    """``source.license`` (recorded by ``finalize_manifest``), else the local source README's license."""
    source = manifest.get("source") or {}
    if isinstance(source.get("license"), str):
        return source["license"]
    from exporter.artifact.provenance import local_source_dir
    from exporter.artifact.provenance import source_license as read_license

    directory = local_source_dir(manifest)
    return read_license(directory) if directory else None


def _has_bench(folder: Path, manifest: dict[str, Any]) -> bool:
    listed = any(entry.get("path") == "bench.json" for entry in manifest.get("shared_files", []))
    return listed or (folder / "bench.json").is_file()


def variant_table(folder: Path, manifest: dict[str, Any]) -> tuple[list[str], list[list[str]], bool]:
    """Header and rows of the variants table; whether bench columns are in it."""
    with_bench = _has_bench(folder, manifest) and any(isinstance(v.get("bench"), dict) for v in manifest["variants"])
    header = ["variant", "backend", "precision", "graph", "file", "size", "parity"]
    header += [label for _, label, _ in PARITY_FIELDS]
    if with_bench:
        header += ["× torch", "texts/s"]
    rows = []
    for variant in manifest["variants"]:
        parity = variant.get("parity") if isinstance(variant.get("parity"), dict) else None
        if parity is None:
            verdict = "not validated"
        else:
            verdict = "✅ pass" if parity.get("passed") is True else "❌ fail"
        size = sum(int(entry.get("size", 0)) for entry in variant.get("files", []))
        row = [code(variant["name"]), variant.get("backend"), variant.get("precision"), variant.get("graph"),
               code(variant.get("file_name", "")), _size(size), verdict]
        row += [_number(parity.get(key), digits) if parity else None for key, _, digits in PARITY_FIELDS]
        if with_bench:
            bench = variant.get("bench") if isinstance(variant.get("bench"), dict) else {}
            ratio = bench.get("ratio_to_torch")
            row += [f"{ratio:.2f}×" if isinstance(ratio, (int, float)) else None,
                    _number(bench.get("throughput"), 1) if bench.get("throughput") is not None else None]
        rows.append([cell(value) for value in row])
    return header, rows, with_bench


def _bench_note(folder: Path) -> str:
    note = ("`× torch`: throughput relative to the torch model, measured in one process with the same threads "
            "(`bench.json`).")
    try:
        data = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
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


def _parity_note(manifest: dict[str, Any]) -> str:
    note = ("Parity: each variant's embeddings against the torch model's on the validation texts (cosine per "
            "text, nearest-neighbour overlap and Spearman correlation of the pairwise similarities); "
            "*not validated*: no parity measured.")
    validation = manifest.get("validation")
    if isinstance(validation, dict) and isinstance(validation.get("report"), str):
        note += f" Full report: {code(validation['report'])}."
    return note


def _download_patterns(manifest: dict[str, Any], variant: dict[str, Any]) -> list[str]:
    files = [entry["path"] for entry in variant.get("files", []) if isinstance(entry, dict)]
    return list(dict.fromkeys([*(files or [variant["file_name"]]), "*.json", "*.txt", "*.model"]))


def snippets(manifest: dict[str, Any], repo_id: str | None, folder_name: str) -> list[dict[str, str]]:
    """A load snippet per variant: sentence-transformers for ``graph: transformer``, the plain runtime for
    ``graph: sentence`` (which outputs ``sentence_embedding`` and must not be pooled again)."""
    where = repo_id or folder_name
    max_length = (manifest.get("source") or {}).get("max_seq_length") or 512
    dimension = (manifest.get("source") or {}).get("dimension")
    shape = f"  # shape (2, {dimension})" if dimension else ""
    result = []
    for variant in manifest["variants"]:
        backend, file_name = variant.get("backend"), variant.get("file_name")
        options = variant.get("runtime_options") if isinstance(variant.get("runtime_options"), dict) else None
        if variant.get("graph") == "sentence":
            inputs = list(variant.get("inputs") or ["input_ids", "attention_mask"])
            lines = []
            if backend == "onnx":
                lines.append("import onnxruntime as ort")
            else:
                lines.append("import openvino as ov")
            if repo_id:
                lines.append("from huggingface_hub import snapshot_download")
            lines += ["from transformers import AutoTokenizer", ""]
            if repo_id:
                lines.append(f"folder = snapshot_download({json.dumps(repo_id)}, "
                             f"allow_patterns={json.dumps(_download_patterns(manifest, variant))})")
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
            runtime = "ONNX Runtime" if backend == "onnx" else "OpenVINO"
            text = ("The whole pipeline (transformer, pooling and the model's other modules) in one graph: "
                    f"output `sentence_embedding` `[batch, {dimension or 'dim'}]`, inputs "
                    f"{', '.join(code(name) for name in inputs)} (int64). Run it with plain {runtime}; "
                    "do not load it through sentence-transformers, which would pool again.")
        else:
            kwargs: dict[str, Any] = {"file_name": file_name}
            if backend == "openvino" and options:
                kwargs["ov_config"] = options
            lines = [
                "from sentence_transformers import SentenceTransformer",
                "",
                f"model = SentenceTransformer({json.dumps(where)}, backend={json.dumps(backend)}, "
                f"model_kwargs={json.dumps(kwargs)})",
                f"embeddings = model.encode({SAMPLE_TEXTS}){shape}",
            ]
            runtime = "sentence-transformers"
            text = "Token embeddings; sentence-transformers runs the model's pooling (and its other modules) after the graph."
        result.append({"name": variant["name"], "runtime": runtime, "text": text, "code": "\n".join(lines)})
    return result


def _environment(manifest: dict[str, Any]) -> dict[str, Any]:
    recorded = manifest.get("environment")
    if isinstance(recorded, dict) and isinstance(recorded.get("packages"), dict):
        return recorded
    from exporter.artifact.provenance import environment

    return environment()


def _install_line(manifest: dict[str, Any]) -> str:
    requirements = manifest.get("runtime_requirements")
    if not isinstance(requirements, dict) or not requirements:
        from exporter.artifact.provenance import runtime_requirements

        requirements = runtime_requirements({str(v.get("backend")) for v in manifest["variants"]})
    return " ".join(f'"{name}{spec}"' for name, spec in requirements.items()) or "sentence-transformers"


def render_card(folder: Path, manifest: dict[str, Any], repo_id: str | None = None):
    """The ``ModelCard`` for ``folder``'s manifest. ``repo_id`` is used in the load snippets; without it
    (and without ``publish.repo_id``), they load the local folder."""
    from huggingface_hub import ModelCard

    repo_id = repo_id or ((manifest.get("publish") or {}).get("repo_id") or None)
    source = manifest.get("source") or {}
    recipe = manifest.get("recipe") or {}
    header, rows, with_bench = variant_table(folder, manifest)
    base = source.get("id")
    title = repo_id.split("/")[-1] if repo_id else recipe.get("name") or folder.name
    backends = sorted({str(v.get("backend")) for v in manifest["variants"]})
    runtimes = " and ".join({"onnx": "ONNX Runtime", "openvino": "OpenVINO"}.get(b, b) for b in backends)
    of_what = f"of {code(base)} " if base else ""
    dims = []
    if source.get("dimension"):
        dims.append(f"{source['dimension']}-dimensional embeddings")
    if source.get("max_seq_length"):
        dims.append(f"max_seq_length {source['max_seq_length']}")
    summary = (f"{len(manifest['variants'])} export{'s' if len(manifest['variants']) != 1 else ''} {of_what}"
               f"for {runtimes}, built from a recipe by embedding-exporter"
               + (f" ({', '.join(dims)})." if dims else "."))
    environment = _environment(manifest)
    packages = environment.get("packages") or {}
    version_rows = [[cell(name), cell(packages[name])] for name in VERSION_PACKAGES if packages.get(name)]
    if environment.get("python"):
        version_rows.insert(0, [cell("python"), cell(environment["python"])])
    source_label = base or source.get("location")
    provenance = [
        ["source model", code(source_label) if source_label else None],
        ["source revision", code(source["revision"]) if source.get("revision") else "not pinned"],
    ]
    if source.get("weights_sha256"):
        provenance.append([f"source weights sha256 ({code(source.get('weights_file', 'weights'))})",
                           code(source["weights_sha256"])])
    if source.get("license"):
        provenance.append(["source license", source["license"]])
    provenance += [
        ["recipe", f"{code(recipe.get('name', ''))} ({code(recipe.get('file', ''))})"],
        ["recipe sha256", code(recipe.get("sha256", ""))],
        ["tool", f"embedding-exporter {(manifest.get('tool') or {}).get('version', '')}".strip()],
        ["built", manifest.get("created_at")],
    ]
    if isinstance(manifest.get("runtime_requirements"), dict) and manifest["runtime_requirements"]:
        provenance.append(["runtime requirements",
                           ", ".join(code(f"{k}{v}") for k, v in manifest["runtime_requirements"].items())])
    recipe_text = str(recipe.get("text", "")).rstrip("\n")
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
        install_line=_install_line(manifest),
        snippets=snippets(manifest, repo_id, folder.name),
        tool_version=(manifest.get("tool") or {}).get("version", ""),
        recipe_file=recipe.get("file", "recipe.yaml"),
        recipe_sha256=recipe.get("sha256", ""),
        recipe_fence=fence_for(recipe_text),
        recipe_text=recipe_text,
        provenance_rows=[[cell(k), cell(v)] for k, v in provenance],
        version_rows=version_rows,
    )


def write_card(folder: str | Path, repo_id: str | None = None) -> Path:
    """Write ``folder/README.md`` from its manifest and list it in manifest.json (replacing the old entry).

    Returns the card's path. Raises ``BadInputError`` when the folder has no valid manifest.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    card = render_card(root, manifest, repo_id)
    path = root / CARD_NAME
    text = str(card)
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text, encoding="utf-8", newline="\n")
    shared = [entry for entry in manifest.get("shared_files", []) if entry.get("path") != CARD_NAME]
    shared.append(file_entry(root, CARD_NAME))
    manifest["shared_files"] = sorted(shared, key=lambda entry: entry["path"])
    write_manifest(root, manifest)
    return path
