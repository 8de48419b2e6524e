import exporter

reranker = exporter.load("artifacts/minilm-reranker", "onnx-int8-static")  # a Reranker: no torch
query = "How do vaccines train the immune system?"
passages = ["A vaccine shows the immune system a harmless piece of a pathogen, so it learns to recognise it.",
            "Vacuum cleaners use a motor-driven fan to lift dust from carpets."]
ranked = reranker.rank(query, passages, return_documents=True)  # as CrossEncoder.rank: the best first
print(ranked[0]["corpus_id"], round(ranked[0]["score"], 3), ranked[0]["text"][:40])
scores = reranker.predict([(query, passages[0]), (query, passages[1])])  # float32 (2,), sigmoid applied
print(scores, reranker.settings["activation"])

# The same graph through sentence-transformers (graph: transformer variants):
model = exporter.load_sentence_transformer("artifacts/minilm-reranker", variant="openvino-fp32")  # a CrossEncoder
print(type(model).__name__, model.predict([(query, passages[0])]))
