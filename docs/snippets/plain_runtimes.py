import json

import numpy as np
import onnxruntime as ort
import openvino as ov
from tokenizers import Tokenizer

folder = "artifacts/minilm-onnx"
variants = {v["name"]: v for v in json.load(open(f"{folder}/manifest.json"))["variants"]}
tokenizer = Tokenizer.from_file(f"{folder}/tokenizer.json")  # truncates at max_seq_length (256), pads nothing
pad = json.load(open(f"{folder}/tokenizer_config.json"))["pad_token"]  # the model's own pad token
tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)  # to the batch's longest text
encodings = tokenizer.encode_batch(["first text", "second text"])
batch = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
         "token_type_ids": [e.type_ids for e in encodings]}

variant = variants["onnx-fp32-sentence"]  # graph: sentence: pooling and normalization are in the graph
feeds = {name: np.array(batch[name], dtype=np.int64) for name in variant["inputs"]}
session = ort.InferenceSession(f"{folder}/{variant['file_name']}", providers=["CPUExecutionProvider"])
embeddings = session.run(["sentence_embedding"], feeds)[0]  # (2, 384)

variant = variants["onnx-fp32"]  # graph: transformer (onnx/model.onnx, onnx/model_quantized.onnx): pool yourself
session = ort.InferenceSession(f"{folder}/{variant['file_name']}", providers=["CPUExecutionProvider"])
tokens = session.run(["last_hidden_state"], feeds)[0]
mask = feeds["attention_mask"][..., None]
pooled = (tokens * mask).sum(axis=1) / mask.sum(axis=1)  # mean pooling (1_Pooling/config.json)
pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)  # Normalize (modules.json)

# OpenVINO: the same feeds; compile with the manifest's runtime_options (f32: else bf16 on bf16 CPUs)
folder = "artifacts/minilm-openvino"
variants = {v["name"]: v for v in json.load(open(f"{folder}/manifest.json"))["variants"]}
variant = variants["openvino-fp32-sentence"]
compiled = ov.Core().compile_model(f"{folder}/{variant['file_name']}", "CPU", variant["runtime_options"])
ov_embeddings = compiled(feeds)["sentence_embedding"]
