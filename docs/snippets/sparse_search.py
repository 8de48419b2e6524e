"""Score documents against a query with a SPLADE artifact, torch-free: sparse vectors as scipy CSR rows, the score
is their dot product (what a sparse index computes), and `decode` names the terms behind it.

Usage: python sparse_search.py ARTIFACT [VARIANT]
"""

import sys

import exporter

folder = sys.argv[1] if len(sys.argv) > 1 else "artifacts/splade-tiny"
model = exporter.load(folder, variant=sys.argv[2] if len(sys.argv) > 2 else "auto")
documents = ["Paris is the capital and largest city of France.",
             "The Great Barrier Reef lies off the coast of Queensland, Australia.",
             "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen."]
vectors = model.encode_document(documents)  # scipy.sparse.csr_matrix, float32, (3, vocabulary size)
query = model.encode_query(["what is the capital of france"])
scores = (query @ vectors.T).toarray()[0]  # dot products, as Elasticsearch / OpenSearch / Qdrant score them
best = int(scores.argmax())
print(f"best match: {documents[best]!r} (score {scores[best]:.2f})")
print(f"non-zero terms per document: {vectors.getnnz(axis=1).tolist()} of {vectors.shape[1]}")
print("query terms:", ", ".join(f"{token} {weight:.2f}" for token, weight in model.decode(query.toarray()[0], top_k=8)))
