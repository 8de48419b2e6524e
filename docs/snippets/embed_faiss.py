"""Build a FAISS index from the Parquet parts of `exporter embed` and query it through the same validated
variant (`exporter.load(...).encode_query`), so queries and passages share one runtime and its numerics.

Usage: python embed_faiss.py ARTIFACT EMBEDDINGS_DIR "a query" [VARIANT]
"""

import json
import sys
from pathlib import Path

import faiss
import numpy as np
import pyarrow.dataset as ds

import exporter


def load_index(folder: str) -> tuple[faiss.Index, list]:
    # part-*.parquet only: pyarrow.dataset skips names starting with "_" or "." (_manifest.json, temporary parts).
    table = ds.dataset(folder, format="parquet").to_table(columns=["id", "embedding"])
    dimension = table.schema.field("embedding").type.list_size
    vectors = np.asarray(table.column("embedding").combine_chunks().flatten(), dtype=np.float32)
    vectors = np.ascontiguousarray(vectors.reshape(table.num_rows, dimension))
    faiss.normalize_L2(vectors)  # inner product on unit vectors = cosine similarity
    index = faiss.IndexFlatIP(dimension)
    index.add(vectors)
    return index, table.column("id").to_pylist()


def main() -> None:
    artifact, folder, query = sys.argv[1:4]
    manifest = json.loads((Path(folder) / "_manifest.json").read_text())
    variant = sys.argv[4] if len(sys.argv) > 4 else manifest["artifact"]["variant"]  # the variant that embedded
    index, ids = load_index(folder)
    encoder = exporter.load(artifact, variant)
    vector = encoder.encode_query([query]).astype(np.float32)
    faiss.normalize_L2(vector)
    scores, rows = index.search(vector, 5)
    print(json.dumps([{"id": ids[row], "score": float(score)} for score, row in zip(scores[0], rows[0], strict=True)]))


if __name__ == "__main__":
    main()
