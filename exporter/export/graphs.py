"""Torch modules that define what each exported graph computes.

* ``TransformerGraph``: the Transformer module only; output ``last_hidden_state`` (token embeddings).
  This is the graph sentence-transformers' ONNX/OpenVINO backends expect: they pool in torch afterwards.
* ``SentenceGraph``: every module of the sentence-transformers pipeline (Transformer, Pooling, Dense,
  Normalize, ...) in order; output ``sentence_embedding`` ``[batch, dim]``. Running the model's own modules,
  rather than re-implementing pooling, keeps the graph faithful to whatever the model defines.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

TRANSFORMER_OUTPUT = "last_hidden_state"
SENTENCE_OUTPUT = "sentence_embedding"
# Inputs a tokenizer may produce that encoder models take, in the order the graphs accept them.
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class GraphSpec:
    """Input and output names of an exported graph."""

    inputs: tuple[str, ...]
    output: str


def graph_inputs(model) -> tuple[str, ...]:
    """The tokenizer outputs the transformer accepts (e.g. BERT takes token_type_ids, MPNet does not)."""
    transformer = model[0]
    produced = set(tokenize(model, ["a b", "c"]).keys())
    accepted = set(inspect.signature(transformer.auto_model.forward).parameters)
    names = tuple(name for name in KNOWN_INPUTS if name in produced and name in accepted)
    if "input_ids" not in names or "attention_mask" not in names:
        raise ValueError(f"model inputs {sorted(produced)} lack input_ids/attention_mask: not a text encoder")
    return names


class _PipelineGraph(torch.nn.Module):
    def __init__(self, modules: list[torch.nn.Module], input_names: tuple[str, ...], output_key: str):
        super().__init__()
        self.stages = torch.nn.ModuleList(modules)
        self.input_names = input_names
        self.output_key = output_key

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        features = dict(zip(self.input_names, inputs, strict=True))
        for stage in self.stages:
            features = stage(features)
        return features[self.output_key]


class TransformerGraph(_PipelineGraph):
    """Token embeddings from the model's first (Transformer) module."""

    def __init__(self, model, input_names: tuple[str, ...]):
        super().__init__([model[0]], input_names, "token_embeddings")


class SentenceGraph(_PipelineGraph):
    """The sentence embedding from the whole sentence-transformers pipeline; with ``truncate_dim`` its first N
    dimensions, L2-normalised again when the model has a Normalize module (as sentence-transformers'
    ``truncate_dim`` + ``normalize_embeddings=True``)."""

    def __init__(self, model, input_names: tuple[str, ...], truncate_dim: int | None = None):
        super().__init__(list(model), input_names, "sentence_embedding")
        self.truncate_dim = truncate_dim
        self.renormalize = model_normalizes(model)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        embedding = super().forward(*inputs)
        if self.truncate_dim is None:
            return embedding
        embedding = embedding[:, : self.truncate_dim]
        return torch.nn.functional.normalize(embedding, p=2, dim=1) if self.renormalize else embedding


def model_normalizes(model) -> bool:
    """Whether a loaded sentence-transformers model ends with a Normalize module."""
    return any(type(module).__name__ == "Normalize" for module in model)


def sample_inputs(model, input_names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    """A padded batch of two texts of different lengths, so the traced graph keeps the attention mask."""
    features = tokenize(model, ["a short text", "a somewhat longer text to make the batch need padding here"])
    return tuple(features[name] for name in input_names)


def tokenize(model, texts: list[str]) -> dict[str, torch.Tensor]:
    """The Transformer module's own tokenisation (``preprocess`` in sentence-transformers 5.7+)."""
    transformer = model[0]
    method = getattr(transformer, "preprocess", None) or transformer.tokenize
    return method(texts)
