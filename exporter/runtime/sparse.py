"""The deploy runtime of a sparse encoder (SPLADE): ``SparseEncoder`` turns texts into vocabulary-sized sparse
vectors with plain ONNX Runtime or OpenVINO, the folder's tokenizer and numpy, as sentence-transformers'
``SparseEncoder.encode`` does, without torch.

* ``graph: sentence`` variants compute the SPLADE pooling inside the graph (output ``sentence_embedding``
  ``[batch, vocab]``);
* ``graph: transformer`` variants output the MLM logits ``[batch, tokens, vocab]`` (what
  ``SparseEncoder(..., backend=...)`` loads) and ``SpladePooling`` runs here in numpy (``splade_pool``), from
  the folder's ``SpladePooling`` config: ``log1p(activation(logits · mask))``, max or sum over the tokens.

The result is a ``scipy.sparse.csr_matrix`` of float32 (what sparse indexes take: term ids and weights), so scipy
is a dependency of this path only: imported on first use, ``RuntimeUnavailableError`` naming the ``sparse`` extra
when it is missing. ``max_active_dims`` keeps each vector's largest weights, as sentence-transformers does; the
model's own value (``config_sentence_transformers.json``) applies by default. The numerics are the Encoder's: the
manifest's ``runtime_options`` pinned at compile time (``exporter.runtime.encoder``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporter.artifact import model_folder
from exporter.errors import BadInputError, RuntimeUnavailableError
from exporter.runtime.pooling import SpladePooling, splade_config, splade_pool, splade_step

__all__ = ["SparseEncoder", "SpladePooling", "load_sparse_encoder", "require_scipy", "select_max_active_dims",
           "splade_config", "splade_pool", "splade_step"]

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest, Variant

SPARSE_EXTRA = 'pip install "embedding-exporter[sparse]"'
CHUNK_TEXTS = 256  # texts encoded per dense block before it becomes sparse rows (bounds memory at vocab width)


def require_scipy():
    """``scipy.sparse``, or ``RuntimeUnavailableError`` (exit 3) naming the extra that installs it."""
    try:
        import scipy.sparse as sparse
    except ImportError as error:
        raise RuntimeUnavailableError(f"sparse encoders return scipy.sparse matrices: scipy is not installed "
                                      f"({error}): {SPARSE_EXTRA}", fix=SPARSE_EXTRA) from None
    return sparse


def default_max_active_dims(folder: Path) -> int | None:
    """``max_active_dims`` saved in ``config_sentence_transformers.json`` (None: every non-zero weight is kept)."""
    value = model_folder.read_config(Path(folder) / "config_sentence_transformers.json").get("max_active_dims")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def select_max_active_dims(dense: np.ndarray, max_active_dims: int | None) -> np.ndarray:
    """Each row's ``max_active_dims`` largest weights (by absolute value), the others zero; unchanged for None."""
    if max_active_dims is None or max_active_dims >= dense.shape[1]:
        return dense
    if max_active_dims <= 0:
        raise BadInputError(f"max_active_dims {max_active_dims}: expected a positive integer")
    keep = np.argpartition(-np.abs(dense), max_active_dims - 1, axis=1)[:, :max_active_dims]
    selected = np.zeros_like(dense)
    rows = np.arange(dense.shape[0])[:, None]
    selected[rows, keep] = dense[rows, keep]
    return selected


# --- the runtime object ----------------------------------------------------------------------------------------


class SparseEncoder:
    """One variant of a sparse-encoder artifact, ready to encode texts like sentence-transformers'
    ``SparseEncoder.encode``, torch-free. Build it with ``exporter.load(...)`` (which fetches and verifies) or
    ``load_sparse_encoder`` from a verified folder. ``encoder.settings`` says the numerics in force."""

    def __init__(self, folder: str | os.PathLike, manifest: Manifest, variant: Variant, *, device: str = "auto",
                 mode: str = "latency", threads: int | None = None):
        from exporter.runtime.encoder import Encoder

        self.folder = Path(folder)
        self.dense = Encoder(folder, manifest, variant, device=device, mode=mode, threads=threads)
        self.manifest, self.variant = manifest, variant
        self.max_active_dims = default_max_active_dims(self.folder)
        self.prompts = self.dense.prompts
        self.settings: dict[str, Any] = {**self.dense.settings, "kind": "sparse",
                                         "max_active_dims": self.max_active_dims}
        self._vocabulary: list[str] | None = None

    @property
    def dimension(self) -> int | None:
        """The vocabulary size: the width of every vector."""
        return self.dense.dimension

    def __repr__(self) -> str:
        return f"SparseEncoder({str(self.folder)!r}, variant={self.variant.name!r})"

    def encode(self, texts: str | Sequence[str], batch_size: int = 32, max_active_dims: int | None = None, *,
               prompt_name: str | None = None, prompt: str | None = None):
        """Sparse vectors of ``texts``: a float32 ``scipy.sparse.csr_matrix`` ``(n, vocab)`` in input order (one
        row for a single string). ``max_active_dims`` keeps each row's largest weights (default: the model's)."""
        sparse = require_scipy()
        items = [texts] if isinstance(texts, str) else list(texts)
        limit = max_active_dims if max_active_dims is not None else self.max_active_dims
        blocks = []
        for start in range(0, len(items), CHUNK_TEXTS):
            dense = self.dense.encode(items[start:start + CHUNK_TEXTS], batch_size=batch_size,
                                      prompt_name=prompt_name, prompt=prompt)
            blocks.append(sparse.csr_matrix(select_max_active_dims(dense, limit), dtype=np.float32))
        if not blocks:
            return sparse.csr_matrix((0, self.dimension or 0), dtype=np.float32)
        return sparse.vstack(blocks, format="csr", dtype=np.float32)

    def encode_query(self, texts: str | Sequence[str], **options: Any):
        """``encode`` with the model's ``query`` prompt, when it has a non-empty one."""
        return self.encode(texts, prompt=self.prompts.get("query") or None, **options)

    def encode_document(self, texts: str | Sequence[str], **options: Any):
        """``encode`` with the model's ``document`` (or ``passage``) prompt, when it has a non-empty one."""
        return self.encode(texts, prompt=self.prompts.get("document") or self.prompts.get("passage") or None,
                           **options)

    def decode(self, vector, top_k: int | None = None) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """``(token, weight)`` pairs of each non-zero weight, largest first (at most ``top_k``), as
        sentence-transformers' ``SparseEncoder.decode``: a list for one vector (a 1-D array or a one-row matrix
        given as a row), a list of lists for several rows."""
        if top_k is not None and top_k <= 0:
            raise BadInputError(f"top_k {top_k}: expected a positive integer")
        rows, single = _rows(vector)
        vocabulary = self.vocabulary()
        decoded = []
        for indices, weights in rows:
            order = np.argsort(-weights, kind="stable")[:top_k]
            decoded.append([(vocabulary[int(indices[i])], float(weights[i])) for i in order])
        return decoded[0] if single else decoded

    def vocabulary(self) -> list[str]:
        """The token of each vector index (the tokenizer's vocabulary)."""
        if self._vocabulary is None:
            tokenizer = self.dense.tokenizer.tokenizer
            size = self.dimension or tokenizer.get_vocab_size(with_added_tokens=True)
            self._vocabulary = [tokenizer.id_to_token(index) or f"[{index}]" for index in range(size)]
        return self._vocabulary


def _rows(vector) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool]:
    """(non-zero indices, weights) of each row of ``vector``, and whether it was one 1-D vector."""
    if hasattr(vector, "tocsr"):
        matrix = vector.tocsr()
        rows = [(matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]],
                 matrix.data[matrix.indptr[i]:matrix.indptr[i + 1]]) for i in range(matrix.shape[0])]
        return rows, False
    array = np.asarray(vector)
    single = array.ndim == 1
    if array.ndim not in (1, 2):
        raise BadInputError(f"vector: expected 1 or 2 dimensions, got {array.ndim}")
    rows = []
    for row in np.atleast_2d(array):
        indices = np.flatnonzero(row)
        rows.append((indices, row[indices]))
    return rows, single


def load_sparse_encoder(folder: str | os.PathLike, variant: str | Variant | None = None, *,
                        manifest: Manifest | None = None, device: str = "auto", mode: str = "latency",
                        threads: int | None = None) -> SparseEncoder:
    """A ``SparseEncoder`` for ``variant`` (a name or manifest entry; default: the first validated one) of the
    verified artifact folder ``folder``."""
    from exporter.artifact.manifest import read_manifest
    from exporter.runtime.encoder import choose_variant

    manifest = manifest or read_manifest(folder)
    chosen = choose_variant(manifest, variant)
    return SparseEncoder(folder, manifest, chosen, device=device, mode=mode, threads=threads)
