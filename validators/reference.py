"""The yardstick: the torch model's embeddings of the validation texts.

Computed from the source model when it can be found (``reference == "source"``) and then stored in the
artifact folder (``parity/texts.jsonl`` + ``parity/reference.npy``, float32), so a deploy host without the
torch weights validates against the stored copy (``reference == "stored"``) with the same verdicts. A stored
reference listed in the manifest must match its recorded sha256: a yardstick that changed silently would
make every verdict meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporter.errors import BadInputError
from exporter.artifact.manifest import sha256_file
from exporter.texts import ValidationText, read_texts, write_texts

PARITY_DIR = "parity"
TEXTS_FILE = f"{PARITY_DIR}/texts.jsonl"
REFERENCE_FILE = f"{PARITY_DIR}/reference.npy"


@dataclass
class Reference:
    """Reference embeddings (row i is ``texts[i]``) and where they came from."""

    texts: list[ValidationText]
    embeddings: np.ndarray
    kind: str  # "source" or "stored"
    location: str | None = None  # the source model, for kind == "source"


def find_source(manifest: dict[str, Any], source_dir: Path | None) -> tuple[Path, str] | None:
    """The source model directory and how it was named: ``source_dir`` when given (it must be a model), else
    the manifest's ``source.location`` when it resolves here (``package:...``, an absolute path, or a Hub id
    already in the local cache). ``None`` when it does not resolve."""
    from exporter.export.source import check_sentence_transformers_dir

    if source_dir is not None:
        directory = Path(source_dir).resolve()
        if not directory.is_dir():
            raise BadInputError(f"--source {source_dir}: not a directory")
        check_sentence_transformers_dir(directory, "--source")
        return directory, str(directory)
    source = manifest.get("source") or {}
    location = source.get("location")
    if not isinstance(location, str) or not location:
        return None
    directory = _resolve_location(location, source)
    return (directory, location) if directory is not None else None


def _resolve_location(location: str, source: dict[str, Any]) -> Path | None:
    from exporter.recipe import ModelSource
    from exporter.export.source import PACKAGE_PREFIX, resolve_source

    if location.startswith("hub:"):
        return _hub_cache(location[len("hub:"):], source.get("revision"))
    if not location.startswith(PACKAGE_PREFIX) and not Path(location).is_absolute():
        return None  # relative to a recipe file this folder does not know the place of
    try:
        return resolve_source(ModelSource(path=location), Path("/")).directory
    except BadInputError:
        return None


def _hub_cache(model_id: str, revision: str | None) -> Path | None:
    """A Hub model already in the local cache; never downloads."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or no hub client: the stored reference is the way
        return None


def compute_reference(directory: Path, location: str, manifest: dict[str, Any], texts: list[ValidationText]) -> Reference:
    """Encode ``texts`` with the torch model on CPU, as the artifacts were built from it: the manifest's
    max_seq_length (which carries a recipe override) and trust_remote_code apply."""
    from exporter.recipe import ModelSource
    from exporter.export.source import load_sentence_transformer

    source = manifest.get("source") or {}
    settings = ModelSource(
        path=str(directory),
        max_seq_length=source.get("max_seq_length") or None,
        trust_remote_code=bool(source.get("trust_remote_code", False)),
    )
    model = load_sentence_transformer(directory, settings)
    embeddings = model.encode([t.text for t in texts], batch_size=32, convert_to_numpy=True, show_progress_bar=False)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if not np.isfinite(embeddings).all():
        raise BadInputError(f"{location}: the torch model itself produces NaN/inf embeddings; nothing to compare with")
    return Reference(texts, embeddings, "source", location)


def store_reference(folder: Path, reference: Reference) -> list[str]:
    """Write ``parity/texts.jsonl`` and ``parity/reference.npy``; returns their relative paths."""
    write_texts(folder / TEXTS_FILE, reference.texts)
    np.save(folder / REFERENCE_FILE, reference.embeddings.astype(np.float32), allow_pickle=False)
    return [TEXTS_FILE, REFERENCE_FILE]


def has_stored_reference(folder: Path) -> bool:
    return (folder / TEXTS_FILE).is_file() and (folder / REFERENCE_FILE).is_file()


def load_stored_reference(folder: Path, manifest: dict[str, Any]) -> Reference:
    """Read the stored reference, checking it against the manifest's checksums (when listed) and its texts.

    Raises ``BadInputError`` when a file is missing, altered or inconsistent.
    """
    listed = {entry["path"]: entry for entry in manifest.get("shared_files", []) if isinstance(entry, dict)}
    for relative in (TEXTS_FILE, REFERENCE_FILE):
        path = folder / relative
        if not path.is_file():
            raise BadInputError(f"{folder}: no stored reference ({relative} is missing)")
        if relative in listed and listed[relative].get("sha256") != sha256_file(path):
            raise BadInputError(f"{path}: does not match the sha256 recorded in manifest.json (altered reference)")
    texts = read_texts(folder / TEXTS_FILE)
    try:
        embeddings = np.load(folder / REFERENCE_FILE, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BadInputError(f"{folder / REFERENCE_FILE}: unreadable: {error}") from None
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts) or embeddings.dtype != np.float32:
        raise BadInputError(
            f"{folder / REFERENCE_FILE}: expected float32 [{len(texts)}, dim], got {embeddings.dtype} {list(embeddings.shape)}"
        )
    return Reference(texts, embeddings, "stored", None)
