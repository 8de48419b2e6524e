"""The deploy runtime for rerankers: ``Reranker`` scores (query, passage) pairs with one variant of a CrossEncoder
artifact (``source.kind: cross``) on plain ONNX Runtime or OpenVINO, the folder's tokenizer and numpy — no torch,
transformers or sentence-transformers — and is a drop-in for ``CrossEncoder.predict`` / ``CrossEncoder.rank``
(their argument names and return values).

* Pairs are tokenised as pairs (``[CLS] query [SEP] passage [SEP]`` with the model's segment ids), truncated
  longest-first to the model's max length, as sentence-transformers does;
* batches group pairs of similar token counts (little padding), results come back in input order;
* ``graph: transformer`` variants output the logits (what ``CrossEncoder(..., backend=...)`` loads), and the
  model's activation (``config_sentence_transformers.json`` ``activation_fn``: sigmoid for one label) is applied
  here; ``graph: scores`` variants have it inside the graph;
* numerics are pinned from the manifest exactly as the Encoder pins them (``exporter.runtime.encoder``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporter.artifact import model_folder
from exporter.errors import BadInputError
from exporter.runtime.encoder import (
    DEVICES,
    MODES,
    _OnnxSession,
    _OpenVinoSession,
    choose_variant,
    numerics_settings,
)
from exporter.runtime.tokenization import TextTokenizer

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest, Variant

LOGITS_OUTPUT = "logits"
SCORES_OUTPUT = "scores"
# config_sentence_transformers.json activation_fn (its class name) -> the numpy function the runtime applies.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Identity": None,
    "Tanh": np.tanh,
}


def model_activation(folder: Path) -> str:
    """The class name of the model's activation, as ``CrossEncoder`` resolves it: ``config_sentence_transformers.json``
    ``activation_fn``, else config.json's legacy ``sbert_ce_default_activation_function``, else Sigmoid for one label
    and Identity otherwise. ``BadInputError`` for one the runtime does not have."""
    st_config = model_folder.read_config(Path(folder) / "config_sentence_transformers.json")
    module = Path(folder) / model_folder.transformer_module_path(Path(folder))
    config = model_folder.read_config(module / "config.json")
    path = st_config.get("activation_fn") or config.get("sbert_ce_default_activation_function")
    if isinstance(path, str) and path:
        name = path.rsplit(".", 1)[-1]
        if name not in ACTIVATIONS:
            raise BadInputError(f"{folder}: activation_fn {path!r}: not one the runtime applies "
                                f"({', '.join(ACTIVATIONS)})")
        return name
    return "Sigmoid" if num_labels(folder) == 1 else "Identity"


def num_labels(folder: Path) -> int:
    """How many scores the model gives a pair (config.json ``id2label`` / ``num_labels``; 1 by default)."""
    module = Path(folder) / model_folder.transformer_module_path(Path(folder))
    config = model_folder.read_config(module / "config.json")
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    value = config.get("num_labels")
    return int(value) if isinstance(value, int) and value > 0 else 1


class PairTokenizer(TextTokenizer):
    """``TextTokenizer`` for (query, passage) pairs: longest-first truncation to the model's max length, texts as
    given (sentence-transformers 6 does not strip them), lower-cased when the model says ``do_lower_case``."""

    def __init__(self, folder: Path, max_seq_length: int | None = None):
        super().__init__(folder, max_seq_length)
        self.tokenizer.enable_truncation(max_length=self.max_length, strategy="longest_first")

    def encode_pairs(self, pairs: list[tuple[str, str]]) -> list[Any]:
        if self.lower_case:
            pairs = [(a.lower(), b.lower()) for a, b in pairs]
        return self.tokenizer.encode_batch([(a, b) for a, b in pairs], add_special_tokens=True)


def _pairs(inputs: Any) -> tuple[list[tuple[str, str]], bool]:
    """The pairs of ``predict``'s input and whether it was a single pair."""
    single = (isinstance(inputs, (list, tuple)) and len(inputs) == 2 and all(isinstance(x, str) for x in inputs))
    items = [inputs] if single else list(inputs)
    pairs = []
    for index, item in enumerate(items):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise BadInputError(f"pairs[{index}]: expected a (query, passage) pair of strings")
        pairs.append((item[0], item[1]))
    return pairs, single


class Reranker:
    """One variant of a reranker artifact, ready to score pairs like ``CrossEncoder.predict`` and order passages
    like ``CrossEncoder.rank``. Build it with ``exporter.load(...)`` (fetches and verifies) or directly from a
    verified folder. Calls are serialised by a lock (sessions are not re-entrant)."""

    def __init__(self, folder: str | os.PathLike, manifest: Manifest, variant: Variant, *, device: str = "auto",
                 mode: str = "latency", threads: int | None = None):
        if mode not in MODES:
            raise BadInputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if device not in DEVICES:
            raise BadInputError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
        if variant.backend not in ("onnx", "openvino"):
            raise BadInputError(f"variant {variant.name!r}: backend {variant.backend}: the reranker runtime runs onnx "
                                "and openvino variants")
        if variant.graph not in ("transformer", "scores"):
            raise BadInputError(f"variant {variant.name!r}: graph {variant.graph!r} is not a reranker graph "
                                "(transformer or scores)")
        self.folder = Path(folder)
        self.manifest = manifest
        self.variant = variant
        self._lock = threading.Lock()
        self.pairs_scored = 0
        self.tokens_encoded = 0
        self.tokenizer = PairTokenizer(self.folder, model_folder.max_seq_length(self.folder, manifest))
        self.max_seq_length = self.tokenizer.max_length
        self.num_labels = num_labels(self.folder)
        self.activation = model_activation(self.folder)
        numerics = numerics_settings(variant)
        runtime_device = "cpu" if device == "auto" else device
        path = self.folder / variant.file_name
        session = _OnnxSession if variant.backend == "onnx" else _OpenVinoSession
        self.session = session(path, variant, numerics, runtime_device, mode, threads)
        self.settings: dict[str, Any] = {
            "variant": variant.name, "backend": variant.backend, "precision": variant.precision,
            "graph": variant.graph, "file_name": variant.file_name, "device": runtime_device,
            "numerics": numerics, "speed": self.session.speed_settings, "mode": mode, "tokenizer": "tokenizers",
            "max_seq_length": self.max_seq_length, "truncation": "longest_first", "padding": "longest",
            "batch_order": "token_count", "num_labels": self.num_labels,
            "activation": self.activation + (" (in the graph)" if variant.graph == "scores" else ""),
        }
        self.settings.update(self.session.read_back)

    def __repr__(self) -> str:
        return f"Reranker({str(self.folder)!r}, variant={self.variant.name!r})"

    def predict(self, pairs: Sequence[Sequence[str]] | Sequence[str], batch_size: int = 32,
                activation_fn: Callable[[np.ndarray], np.ndarray] | None = None, apply_softmax: bool = False,
                show_progress_bar: bool = False) -> np.ndarray | float:
        """Scores of (query, passage) pairs as float32 ``(n,)`` (``(n, num_labels)`` for several labels; one pair
        gives a scalar), in input order. ``activation_fn`` (a numpy function of the logits) replaces the model's
        activation (``graph: transformer`` variants only: a scores graph has it inside); ``apply_softmax`` turns
        several labels' scores into probabilities."""
        items, single = _pairs(pairs)
        if batch_size < 1:
            raise BadInputError(f"batch_size {batch_size}: expected at least 1")
        if activation_fn is not None and self.variant.graph == "scores":
            raise BadInputError(f"variant {self.variant.name!r}: a graph: scores variant has the model's activation "
                                "inside; pass activation_fn to a graph: transformer variant")
        from exporter.runtime.encoder import _progress

        encodings = self.tokenizer.encode_pairs(items)
        self.tokens_encoded += sum(len(encoding.ids) for encoding in encodings)
        self.pairs_scored += len(items)
        order = np.argsort([-len(encoding.ids) for encoding in encodings], kind="stable")
        with self._lock:
            feeds = [self._feeds([encodings[i] for i in order[start:start + batch_size]])
                     for start in range(0, len(items), batch_size)]
            outputs = self.session.run_all(feeds, _progress(show_progress_bar, len(feeds)))
        if not outputs:
            return np.zeros((0,) if self.num_labels == 1 else (0, self.num_labels), dtype=np.float32)
        scores = np.concatenate([np.asarray(o, dtype=np.float32).reshape(len(o), -1) for o in outputs])
        scores = scores[np.argsort(order, kind="stable")]
        if self.variant.graph == "transformer":
            function = activation_fn if activation_fn is not None else ACTIVATIONS[self.activation]
            if function is not None:
                scores = np.asarray(function(scores), dtype=np.float32)
        if self.num_labels == 1 and scores.ndim > 1:
            scores = scores[:, 0]
        if apply_softmax and scores.ndim > 1:
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = shifted / shifted.sum(axis=1, keepdims=True)
        scores = scores.astype(np.float32, copy=False)
        return scores[0] if single else scores

    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None, return_documents: bool = False,
             batch_size: int = 32, activation_fn: Callable[[np.ndarray], np.ndarray] | None = None
             ) -> list[dict[str, Any]]:
        """The documents ordered by score for ``query``, as ``CrossEncoder.rank`` returns them: dicts with
        ``corpus_id`` (the index in ``documents``), ``score`` and, with ``return_documents``, ``text``; the best
        first, the first ``top_k`` when given."""
        if self.num_labels != 1:
            raise BadInputError(f"variant {self.variant.name!r}: rank() needs a model with one label (this one has "
                                f"{self.num_labels}); use predict()")
        if not isinstance(query, str):
            raise BadInputError("query: expected a string")
        documents = list(documents)
        scores = self.predict([(query, document) for document in documents], batch_size=batch_size,
                              activation_fn=activation_fn) if documents else np.zeros(0, dtype=np.float32)
        results = []
        for index, score in enumerate(np.asarray(scores).tolist()):
            results.append({"corpus_id": index, "score": score})
            if return_documents:
                results[-1]["text"] = documents[index]
        results.sort(key=lambda item: item["score"], reverse=True)
        return results[:top_k]

    def _feeds(self, batch: list[Any]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer.pad(batch)
        missing = [name for name in self.variant.inputs if name not in encoded]
        if missing:
            raise BadInputError(f"variant {self.variant.name!r}: the graph takes {missing}, which the tokenizer "
                                "does not produce")
        return {name: encoded[name] for name in self.variant.inputs}


def load_reranker(folder: str | os.PathLike, variant: str | Variant | None = None, *, manifest: Manifest | None = None,
                  device: str = "auto", mode: str = "latency", threads: int | None = None) -> Reranker:
    """A Reranker for ``variant`` (a name or manifest entry; default: the first validated one) of the verified
    reranker artifact ``folder``. Use ``exporter.load`` to fetch and verify first."""
    from exporter.artifact.manifest import read_manifest

    manifest = manifest or read_manifest(folder)
    chosen = choose_variant(manifest, variant)
    return Reranker(folder, manifest, chosen, device=device, mode=mode, threads=threads)
