"""How much of the full-width neighbourhood survives each Matryoshka truncation: for every N, the mean share of
each text's 10 nearest neighbours (cosine, among the validation texts) that the truncated embeddings keep.

    python docs/snippets/matryoshka_overlap.py MODEL_DIR 384 256 128 64
"""

from __future__ import annotations

import sys

import numpy as np
from sentence_transformers import SentenceTransformer

from exporter.texts import builtin_texts
from exporter.validators.checks import neighbour_overlap


def overlaps(model_dir: str, dims: list[int]) -> dict[int, float]:
    texts = [text.text for text in builtin_texts()]
    model = SentenceTransformer(model_dir, device="cpu")
    full = model.encode(texts, normalize_embeddings=True)
    normalises = any(type(module).__name__ == "Normalize" for module in model)
    result = {}
    for dim in dims:
        truncated = SentenceTransformer(model_dir, device="cpu", truncate_dim=dim).encode(
            texts, normalize_embeddings=normalises)
        truncated = truncated / np.linalg.norm(truncated, axis=1, keepdims=True)
        result[dim] = float(neighbour_overlap(truncated @ truncated.T, full @ full.T))
    return result


if __name__ == "__main__":
    for dim, overlap in overlaps(sys.argv[1], [int(arg) for arg in sys.argv[2:]]).items():
        print(f"{dim}\t{overlap:.4f}")
