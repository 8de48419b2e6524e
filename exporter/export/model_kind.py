"""What a source model computes (``model.kind``), read from its folder before anything is built.

A CrossEncoder reranker or a SPLADE SparseEncoder loads as a plain ``SentenceTransformer`` too (sentence-transformers
then mean-pools the last hidden states), so a folder that is not an embedding model must never be exported as one:
its classification or MLM head would be dropped without a word. The folder says what it is in three places, read in
this order: ``config_sentence_transformers.json``'s ``model_type`` (sentence-transformers 5+ writes it),
``modules.json``'s module types and the Transformer's ``transformer_task``, and, for a plain transformers folder (no
``modules.json``), ``config.json``'s ``architectures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.artifact.model_folder import modules, read_config
from exporter.errors import BadInputError

# config_sentence_transformers.json model_type -> kind.
SENTENCE_TRANSFORMERS_CLASSES = {"SentenceTransformer": "sentence", "CrossEncoder": "cross", "SparseEncoder": "sparse"}
# The Transformer module's transformer_task (sentence_bert_config.json) -> kind.
TRANSFORMER_TASKS = {"feature-extraction": "sentence", "sequence-classification": "cross", "fill-mask": "sparse"}
# modules.json types (their last dotted part) that only a sparse encoder has.
SPARSE_MODULES = ("SpladePooling", "MLMTransformer", "SparseStaticEmbedding")


@dataclass(frozen=True)
class DetectedKind:
    """The kind a model folder is, and the file that says so (for messages and the manifest)."""

    kind: str
    reason: str


def detect_model_kind(directory: Path) -> DetectedKind:
    """Read what the model folder ``directory`` computes; ``sentence`` when nothing says otherwise."""
    directory = Path(directory)
    st_config = read_config(directory / "config_sentence_transformers.json")
    class_name = st_config.get("model_type")
    if isinstance(class_name, str) and class_name in SENTENCE_TRANSFORMERS_CLASSES:
        return DetectedKind(SENTENCE_TRANSFORMERS_CLASSES[class_name],
                            f"config_sentence_transformers.json: model_type {class_name}")
    entries = modules(directory)
    for entry in entries:
        module_type = str(entry.get("type", "")).rsplit(".", 1)[-1]
        if module_type in SPARSE_MODULES:
            return DetectedKind("sparse", f"modules.json: {module_type}")
    for entry in entries:
        if str(entry.get("type", "")).endswith(".Transformer"):
            folder = directory / str(entry.get("path", ""))
            task = read_config(folder / "sentence_bert_config.json").get("transformer_task")
            if isinstance(task, str) and task in TRANSFORMER_TASKS:
                return DetectedKind(TRANSFORMER_TASKS[task], f"sentence_bert_config.json: transformer_task {task}")
    if not entries:
        architectures = read_config(directory / "config.json").get("architectures") or []
        for architecture in architectures if isinstance(architectures, list) else []:
            if str(architecture).endswith("ForSequenceClassification"):
                return DetectedKind("cross", f"config.json: architectures {architecture} (no modules.json)")
    return DetectedKind("sentence", "an embedding model (no cross-encoder or sparse-encoder marker)")


def resolve_model_kind(declared: str, directory: Path, where: str) -> DetectedKind:
    """The kind to build: the folder's own when ``declared`` is ``auto``; ``declared`` when the folder agrees.
    ``where`` is the recipe's ``file:line: model.kind`` for the ``BadInputError`` raised when it does not."""
    detected = detect_model_kind(directory)
    if declared in ("auto", detected.kind):
        return detected
    raise BadInputError(f"{where}: declared {declared}, but {directory} is a {detected.kind} model "
                        f"({detected.reason})")
