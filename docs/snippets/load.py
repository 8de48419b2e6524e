import exporter

model = exporter.load("artifacts/minilm-onnx")  # "auto": the best validated variant for this host
embeddings = model.encode(["first text", "second text"])  # float32 (2, 384); a single string gives (384,)
print(model.variant.name, embeddings.shape)

sentence = exporter.load("artifacts/minilm-onnx", "onnx-fp32-sentence")  # a variant by its manifest name
print(sentence.settings)  # everything in force: precision read back, threads, batching...
batched = exporter.load("artifacts/minilm-openvino", "openvino-fp32", mode="throughput")  # OpenVINO's async queue
print(batched.encode("a single string gives one vector").shape)  # (384,)
