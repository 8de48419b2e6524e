"""The yardstick: the torch model's embeddings of the validation texts.

Computed from the source model when it can be found (``reference == "source"``) and then stored in the
artifact folder (``parity/texts.jsonl`` + ``parity/reference.npy``, float32), so a deploy host without the
torch weights validates against the stored copy (``reference == "stored"``) with the same verdicts. A stored
reference listed in the manifest must match its recorded sha256: a yardstick that changed silently would
make every verdict meaningless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporter.artifact.integrity import sha256_file
from exporter.artifact.manifest import Manifest
from exporter.errors import BadInputError
from exporter.texts import ValidationText, read_texts, write_texts

PARITY_DIR = "parity"
TEXTS_FILE = f"{PARITY_DIR}/texts.jsonl"
REFERENCE_FILE = f"{PARITY_DIR}/reference.npy"
TOKEN_IDS_FILE = f"{PARITY_DIR}/token_ids.json"  # the reference's token ids of each text (row i is text i)
# A sparse encoder's reference vectors as CSR arrays (exporter.validators.sparse), instead of reference.npy.
SPARSE_REFERENCE_FILE = f"{PARITY_DIR}/sparse_reference.npz"


@dataclass
class Reference:
    """Reference embeddings (row i is ``texts[i]``) and where they came from."""

    texts: list[ValidationText]
    embeddings: np.ndarray
    kind: str  # "source" or "stored"
    location: str | None = None  # the source model, for kind == "source"
    # kind == "source" only: the ids the torch model fed its transformer for each text, and the embeddings of
    # the texts with each of the model's prompts (prompt name -> [texts, dim]).
    token_ids: list[list[int]] | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    prompted: dict[str, np.ndarray] = field(default_factory=dict)


def compute_reference(directory: Path, location: str, manifest: Manifest, texts: list[ValidationText], *,
                      trust_remote_code: bool = False, tokenizer_folder: Path | None = None,
                      prompts: dict[str, str] | None = None) -> Reference:
    """Encode ``texts`` with the torch model on CPU, as the artifacts were built from it: the manifest's
    max_seq_length (which carries a recipe override) applies, and given ``tokenizer_folder`` (the artifact) its
    tokenizer files, which are what every client of the artifact tokenises with. ``prompts`` (name -> text):
    the texts are also encoded with each. ``trust_remote_code`` is the caller's (the manifest's record of it is
    never obeyed)."""
    from exporter.runtime.runners import RunSpec, load_runner

    spec = RunSpec.for_torch(directory, manifest, trust_remote_code=trust_remote_code,
                             tokenizer_folder=tokenizer_folder)
    runner = load_runner(spec)
    plain = [t.text for t in texts]
    embeddings = _finite(np.asarray(runner.encode(plain, batch_size=32), dtype=np.float32), location)
    prompted = {name: _finite(np.asarray(runner.encode(plain, batch_size=32, prompt=text), dtype=np.float32),
                              location) for name, text in (prompts or {}).items()}
    return Reference(texts, embeddings, "source", location, token_ids=runner.token_ids(plain),
                     prompts=dict(prompts or {}), prompted=prompted)


def _finite(embeddings: np.ndarray, location: str) -> np.ndarray:
    if not np.isfinite(embeddings).all():
        raise BadInputError(f"{location}: the torch model itself produces NaN/inf embeddings; nothing to compare with")
    return embeddings


def store_reference(folder: Path, reference: Reference) -> list[str]:
    """Write ``parity/texts.jsonl`` and ``parity/reference.npy``, each atomically; returns their relative paths."""
    import io

    from exporter.artifact.integrity import write_bytes_atomic

    write_texts(folder / TEXTS_FILE, reference.texts)
    buffer = io.BytesIO()
    np.save(buffer, reference.embeddings.astype(np.float32), allow_pickle=False)
    write_bytes_atomic(folder / REFERENCE_FILE, buffer.getvalue())
    if reference.token_ids is None:
        return [TEXTS_FILE, REFERENCE_FILE]
    from exporter.artifact.integrity import write_text_atomic

    write_text_atomic(folder / TOKEN_IDS_FILE, json.dumps(reference.token_ids, separators=(",", ":")) + "\n")
    return [TEXTS_FILE, REFERENCE_FILE, TOKEN_IDS_FILE]


def has_stored_reference(folder: Path) -> bool:
    return (folder / TEXTS_FILE).is_file() and (folder / REFERENCE_FILE).is_file()


def load_stored_reference(folder: Path, manifest: Manifest) -> Reference:
    """Read the stored reference, checking it against the manifest's checksums (when listed) and its texts.

    Raises ``BadInputError`` when a file is missing, altered or inconsistent.
    """
    listed = {entry.path: entry for entry in manifest.shared_files}
    for relative in (TEXTS_FILE, REFERENCE_FILE):
        path = folder / relative
        if not path.is_file():
            raise BadInputError(f"{folder}: no stored reference ({relative} is missing)")
        if relative in listed and listed[relative].sha256 != sha256_file(path):
            raise BadInputError(f"{path}: does not match the sha256 recorded in manifest.json (altered reference)")
    texts = read_texts(folder / TEXTS_FILE)
    try:
        embeddings = np.load(folder / REFERENCE_FILE, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BadInputError(f"{folder / REFERENCE_FILE}: unreadable: {error}") from None
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts) or embeddings.dtype != np.float32:
        raise BadInputError(
            f"{folder / REFERENCE_FILE}: expected float32 [{len(texts)}, dim], "
            f"got {embeddings.dtype} {list(embeddings.shape)}"
        )
    return Reference(texts, embeddings, "stored", None, token_ids=_stored_token_ids(folder, listed, len(texts)))


def _stored_token_ids(folder: Path, listed: dict, count: int) -> list[list[int]] | None:
    """``parity/token_ids.json`` when the folder has one (folders validated before it existed have none)."""
    path = folder / TOKEN_IDS_FILE
    if not path.is_file():
        return None
    if TOKEN_IDS_FILE in listed and listed[TOKEN_IDS_FILE].sha256 != sha256_file(path):
        raise BadInputError(f"{path}: does not match the sha256 recorded in manifest.json (altered reference)")
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise BadInputError(f"{path}: unreadable: {error}") from None
    if not isinstance(ids, list) or len(ids) != count or not all(isinstance(row, list) for row in ids):
        raise BadInputError(f"{path}: expected {count} lists of token ids, one per stored text")
    return ids


# --- a shared reference: computed once (``exporter plan --reference-out``), used by every shard ----------------

SHARED_FILE = "reference.json"  # beside parity/: what the reference is of, so a shard of another recipe is refused
PROMPTED_FILE = f"{PARITY_DIR}/prompted.npz"  # the texts encoded with each prompt (name -> [texts, dim])


def store_shared_reference(folder: Path, reference: Reference, *, recipe: str, source: str) -> None:
    """``store_reference`` plus ``reference.json`` (recipe name, source fingerprint, prompts) and the prompted
    embeddings, so a shard validates against exactly what a whole build would compute (``load_shared_reference``)."""
    import io

    from exporter.artifact.integrity import write_bytes_atomic, write_text_atomic

    store_reference(folder, reference)
    if reference.prompted:
        buffer = io.BytesIO()
        np.savez(buffer, **{name: array.astype(np.float32) for name, array in reference.prompted.items()})
        write_bytes_atomic(folder / PROMPTED_FILE, buffer.getvalue())
    write_text_atomic(folder / SHARED_FILE, json.dumps(
        {"recipe": recipe, "source": source, "location": reference.location, "prompts": reference.prompts},
        indent=2) + "\n")


def load_shared_reference(folder: Path, *, recipe: str | None = None, source: str | None = None) -> Reference:
    """The reference ``store_shared_reference`` wrote, as if computed from the source model here (so it is stored
    in the artifact folder byte for byte as a whole build stores its own). ``recipe`` / ``source``: the recipe
    name and source fingerprint it must be of; ``BadInputError`` naming the file otherwise."""
    folder = Path(folder)
    path = folder / SHARED_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: not a shared reference ({error})") from None
    for field_name, expected in (("recipe", recipe), ("source", source)):
        if expected is not None and meta.get(field_name) != expected:
            raise BadInputError(f"{path}: {field_name} {meta.get(field_name)!r} is not this build's ({expected!r}): "
                                "a reference of another recipe or source model")
    reference = load_stored_reference(folder, Manifest(variants=[]))
    prompted: dict[str, np.ndarray] = {}
    if (folder / PROMPTED_FILE).is_file():
        with np.load(folder / PROMPTED_FILE, allow_pickle=False) as arrays:
            prompted = {name: arrays[name] for name in arrays.files}
    return Reference(reference.texts, reference.embeddings, "source", meta.get("location"),
                     token_ids=reference.token_ids, prompts=dict(meta.get("prompts") or {}), prompted=prompted)
