"""How each variant is encoded: exactly the way its users will run it.

* ``graph: transformer`` goes through ``SentenceTransformer(folder, backend=..., model_kwargs={"file_name": ...})``,
  so the artifact folder's own sentence-transformers configs (pooling, Dense, Normalize) are part of what
  is validated.
* ``graph: sentence`` goes through plain ``onnxruntime.InferenceSession`` / ``openvino.Core().compile_model``
  fed by the folder's tokenizer, with the input names the manifest lists and the ``sentence_embedding``
  output: what code without sentence-transformers does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from exporter.errors import BadInputError, first_line

SENTENCE_OUTPUT = "sentence_embedding"


class VariantRunner(Protocol):
    """Encodes one batch of texts into float embeddings ``[len(texts), dim]``."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def load_tokenizer(folder: Path):
    """The artifact folder's tokenizer (``AutoTokenizer.from_pretrained(folder)``)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as error:  # noqa: BLE001 - any failure means the folder has no usable tokenizer
        raise BadInputError(f"{folder}: cannot load the tokenizer: {first_line(error)}") from None


def sentence_bert_config(folder: Path) -> dict[str, Any]:
    """``sentence_bert_config.json`` of the folder, or ``{}`` when absent."""
    path = folder / "sentence_bert_config.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path}: malformed: {error}") from None
    return data if isinstance(data, dict) else {}


def sequence_length(folder: Path, manifest: dict[str, Any], tokenizer) -> int:
    """The model's max_seq_length: sentence_bert_config.json's ``max_seq_length`` (older sentence-transformers
    write it there), else the manifest's ``source.max_seq_length``, else the tokenizer's ``model_max_length``
    (where sentence-transformers 5.7 keeps it)."""
    candidates = (
        sentence_bert_config(folder).get("max_seq_length"),
        (manifest.get("source") or {}).get("max_seq_length"),
        getattr(tokenizer, "model_max_length", None),
    )
    for value in candidates:
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    raise BadInputError(f"{folder}: cannot tell the model's max_seq_length (sentence_bert_config.json, manifest)")


class SentenceTransformerRunner:
    """A ``graph: transformer`` variant loaded by sentence-transformers with the chosen backend."""

    def __init__(self, folder: Path, variant: dict[str, Any], trust_remote_code: bool = False):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(
            str(folder), device="cpu", backend=variant["backend"], local_files_only=True,
            trust_remote_code=trust_remote_code, model_kwargs={"file_name": variant["file_name"]},
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=max(1, len(texts)), convert_to_numpy=True, show_progress_bar=False)


class _PlainRunner:
    """Shared part of the plain-runtime runners: tokenise like sentence-transformers, feed the listed inputs."""

    def __init__(self, folder: Path, variant: dict[str, Any], tokenizer, max_length: int, lowercase: bool):
        self.path = folder / variant["file_name"]
        self.inputs = list(variant.get("inputs") or [])
        self.output = variant.get("output") or SENTENCE_OUTPUT
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.lowercase = lowercase
        if not self.inputs:
            raise BadInputError(f"variant {variant['name']!r}: the manifest lists no graph inputs")

    def feeds(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.lowercase:
            texts = [text.lower() for text in texts]
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        missing = [name for name in self.inputs if name not in encoded]
        if missing:
            raise ValueError(f"the tokenizer does not produce the graph inputs {missing}")
        return {name: np.asarray(encoded[name], dtype=np.int64) for name in self.inputs}


class OnnxRuntimeRunner(_PlainRunner):
    """A ``graph: sentence`` ONNX variant in a plain ``onnxruntime.InferenceSession`` (CPU)."""

    def __init__(self, folder: Path, variant: dict[str, Any], tokenizer, max_length: int, lowercase: bool = False):
        import onnxruntime as ort

        super().__init__(folder, variant, tokenizer, max_length, lowercase)
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.session.run([self.output], self.feeds(texts))[0]


class OpenVinoRunner(_PlainRunner):
    """A ``graph: sentence`` OpenVINO variant compiled by ``openvino.Core().compile_model`` on CPU."""

    def __init__(self, folder: Path, variant: dict[str, Any], tokenizer, max_length: int, lowercase: bool = False):
        import openvino as ov

        super().__init__(folder, variant, tokenizer, max_length, lowercase)
        self.compiled = ov.Core().compile_model(str(self.path), "CPU")
        self.port = self.compiled.output(self.output)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.compiled(self.feeds(texts))[self.port])


def make_runner(
    folder: Path, variant: dict[str, Any], tokenizer, max_length: int, trust_remote_code: bool = False
) -> VariantRunner:
    """The runner for a manifest variant. Loading errors propagate: the caller records them as a failed check."""
    graph, backend = variant.get("graph", "transformer"), variant.get("backend")
    if backend not in ("onnx", "openvino"):
        raise BadInputError(f"variant {variant.get('name')!r}: unknown backend {backend!r} in the manifest")
    if graph == "transformer":
        return SentenceTransformerRunner(folder, variant, trust_remote_code)
    if graph != "sentence":
        raise BadInputError(f"variant {variant.get('name')!r}: unknown graph {graph!r} in the manifest")
    lowercase = bool(sentence_bert_config(folder).get("do_lower_case", False))
    runner = OnnxRuntimeRunner if backend == "onnx" else OpenVinoRunner
    return runner(folder, variant, tokenizer, max_length, lowercase)
