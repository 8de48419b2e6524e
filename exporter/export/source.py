"""Resolving and loading the source model a recipe names.

``model.path`` is a local directory (relative to the recipe) or ``package:<module>/<resource>``, a
directory shipped inside an installed Python package (how the demo model arrives). Without a path,
``model.id`` is resolved through huggingface_hub, which honours HF_HUB_OFFLINE and the local cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from exporter.artifact.model_folder import PACKAGE_PREFIX, check_sentence_transformers_dir, package_resource
from exporter.errors import BadInputError, ExternalError, first_line
from exporter.recipe import ModelSource


@dataclass(frozen=True)
class ResolvedSource:
    """A source model found on disk, with what the manifest records about it."""

    directory: Path
    id: str | None
    revision: str | None
    location: str  # where it was read from, as the user wrote it (package:..., a path, or hub:<id>)


def resolve_source(source: ModelSource, base_dir: Path, recipe_file: Path | None = None) -> ResolvedSource:
    """Find the model directory. Raises ``BadInputError`` naming the path when it is not usable."""
    where = f"{recipe_file}: model.path" if recipe_file else "model.path"
    if source.path:
        if source.path.startswith(PACKAGE_PREFIX):
            directory = package_resource(source.path[len(PACKAGE_PREFIX) :], where)
        else:
            directory = (base_dir / source.path).resolve()
            if not directory.exists():
                raise BadInputError(f"{where}: {directory} does not exist")
            if not directory.is_dir():
                raise BadInputError(f"{where}: {directory} is not a directory")
        location = source.path
    else:
        directory = _download_from_hub(source, recipe_file)
        location = f"hub:{source.id}"
    check_sentence_transformers_dir(directory, where)
    return ResolvedSource(directory=directory, id=source.id, revision=source.revision, location=location)


def _download_from_hub(source: ModelSource, recipe_file: Path | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    where = f"{recipe_file}: model.id" if recipe_file else "model.id"
    try:
        path = snapshot_download(source.id, revision=source.revision)
    except RepositoryNotFoundError:
        raise BadInputError(f"{where}: no model {source.id!r} on the Hub (or it is private: set HF_TOKEN)") from None
    except LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
        hint = "HF_HUB_OFFLINE is set and it is not in the cache" if offline else "the Hub cannot be reached"
        raise ExternalError(f"{where}: cannot get {source.id!r}: {hint}; set model.path to a local copy") from None
    except HfHubHTTPError as error:
        raise ExternalError(f"{where}: cannot download {source.id!r}: {error}") from None
    return Path(path)


def load_sentence_transformer(directory: Path, source: ModelSource, for_export: bool = False):
    """Load the torch model on CPU, with the recipe's max_seq_length override applied.

    ``for_export`` loads the plain ("eager") attention implementation: SDPA may drop the attention mask
    for batches without padding when traced, and ONNX Runtime's optimizer only fuses the eager pattern.
    Numerically both are the same model.
    """
    from sentence_transformers import SentenceTransformer

    from exporter.progress import quiet_loading

    model_kwargs = {"attn_implementation": "eager"} if for_export else None
    try:
        with quiet_loading():  # transformers 5's load report and progress bars
            model = SentenceTransformer(
                str(directory), device="cpu", trust_remote_code=source.trust_remote_code, local_files_only=True,
                model_kwargs=model_kwargs,
            )
    except Exception as error:  # noqa: BLE001 - any failure here means the directory is not a usable model
        raise BadInputError(f"model.path: {directory} could not be loaded by sentence-transformers: "
                            f"{first_line(error)}") from None
    if source.max_seq_length:
        model.max_seq_length = source.max_seq_length
    model.eval()
    return model


def embedding_dimension(model) -> int:
    """The sentence embedding size (``get_embedding_dimension`` since sentence-transformers 5.7)."""
    method = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension",
                                                                         None)
    if method is None and hasattr(model, "num_labels"):  # a CrossEncoder: scores per pair
        return int(model.num_labels)
    return int(method())
