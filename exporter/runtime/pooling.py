"""The sentence-transformers modules after the Transformer, computed in numpy from the folder's own module
configs and safetensors weights: Pooling (cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken,
``include_prompt``), Dense (with its activation), Normalize, and a sparse encoder's SpladePooling.

A ``graph: transformer`` variant outputs token embeddings; these steps turn them into the sentence
embedding exactly as sentence-transformers' torch modules do. A module this runtime cannot compute is
refused when the folder is loaded (``UnsupportedModuleError``, exit 2), never skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporter.artifact import model_folder
from exporter.errors import BadInputError

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {  # sentence-transformers < 5.7 wrote one boolean per mode
    "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken",
}


class UnsupportedModuleError(BadInputError):
    """The folder's pipeline has a module the torch-free runtime cannot compute. ``module``: its type."""

    def __init__(self, message: str, module: str | None = None):
        super().__init__(message)
        self.module = module


def _erf(values: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(values)


# Activations a Dense module may name (sentence-transformers writes the torch class's full name).
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Identity": lambda x: x,
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0),
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "SiLU": lambda x: x / (1.0 + np.exp(-x)),
    "GELU": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
}


@dataclass(frozen=True)
class Features:
    """What the steps pass along: token embeddings and the attention mask of one batch, then the sentence
    embedding; ``prompt_length`` for ``include_prompt: false``."""

    attention_mask: np.ndarray
    token_embeddings: np.ndarray | None = None
    sentence_embedding: np.ndarray | None = None
    prompt_length: int | None = None


@dataclass(frozen=True)
class Pooling:
    modes: tuple[str, ...]
    include_prompt: bool = True

    def __call__(self, features: Features) -> Features:
        tokens = features.token_embeddings.astype(np.float32)
        mask = features.attention_mask.astype(np.int64)
        if not self.include_prompt and features.prompt_length:
            mask = _exclude_prompt(mask, features.prompt_length)
        mask_f = mask[..., None].astype(tokens.dtype)
        outputs = []
        for mode in self.modes:
            if mode == "cls":
                first = mask.argmax(axis=1)
                outputs.append(tokens[np.arange(len(tokens)), first])
            elif mode == "max":
                outputs.append(np.where(mask_f == 0, -np.inf, tokens).max(axis=1))
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                total = (tokens * mask_f).sum(axis=1)
                count = np.clip(mask_f.sum(axis=1), 1e-9, None)
                outputs.append(total / count if mode == "mean" else total / np.sqrt(count))
            elif mode == "weightedmean":
                weights = np.arange(1, tokens.shape[1] + 1, dtype=tokens.dtype)[None, :, None] * mask_f
                outputs.append((tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))
            elif mode == "lasttoken":
                flipped = mask[:, ::-1]
                values, indices = flipped.max(axis=1), flipped.argmax(axis=1)
                indices = np.where(values == 0, tokens.shape[1] - 1, indices)
                last = tokens.shape[1] - indices - 1
                outputs.append((tokens * mask_f)[np.arange(len(tokens)), last])
        embedding = np.concatenate(outputs, axis=-1).astype(np.float32)
        return Features(attention_mask=features.attention_mask, sentence_embedding=embedding)


def _exclude_prompt(mask: np.ndarray, prompt_length: int) -> np.ndarray:
    """Zero the prompt's positions (after any left padding), as sentence-transformers does."""
    mask = mask.copy()
    pad_lengths = mask.argmax(axis=1)
    if pad_lengths.sum() == 0:
        mask[:, :prompt_length] = 0
    else:
        positions = np.arange(mask.shape[1])[None, :]
        mask[positions < (pad_lengths + prompt_length)[:, None]] = 0
    return mask


@dataclass(frozen=True)
class Dense:
    weight: np.ndarray  # [out, in]
    bias: np.ndarray | None
    activation: str

    def __call__(self, features: Features) -> Features:
        output = features.sentence_embedding.astype(np.float32) @ self.weight.T
        if self.bias is not None:
            output = output + self.bias
        output = ACTIVATIONS[self.activation](output).astype(np.float32)
        return Features(attention_mask=features.attention_mask, sentence_embedding=output)


@dataclass(frozen=True)
class Normalize:
    def __call__(self, features: Features) -> Features:
        return Features(attention_mask=features.attention_mask,
                        sentence_embedding=l2_normalize(features.sentence_embedding))


def l2_normalize(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.clip(norms, 1e-12, None)).astype(np.float32)


Step = Callable[[Features], Features]


def _config(path: Path) -> dict[str, Any]:
    return model_folder.read_config(path, what="module config", required=True)


def _pooling(directory: Path) -> Pooling:
    config = _config(directory / "config.json")
    modes = config.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else list(modes)
    unknown = [mode for mode in modes if mode not in POOLING_MODES]
    if unknown:
        raise UnsupportedModuleError(f"{directory}/config.json: pooling mode {unknown[0]!r} is not supported "
                                     f"(supported: {', '.join(POOLING_MODES)})", "Pooling")
    return Pooling(modes=tuple(modes), include_prompt=bool(config.get("include_prompt", True)))


def _dense(directory: Path) -> Dense:
    from safetensors.numpy import load_file

    config = _config(directory / "config.json")
    activation = str(config.get("activation_function") or "torch.nn.modules.activation.Tanh").rsplit(".", 1)[-1]
    if activation not in ACTIVATIONS:
        raise UnsupportedModuleError(f"{directory}/config.json: Dense activation {activation!r} is not supported "
                                     f"(supported: {', '.join(ACTIVATIONS)})", "Dense")
    weights_path = directory / "model.safetensors"
    if not weights_path.is_file():
        raise UnsupportedModuleError(f"{directory}: Dense weights must be in model.safetensors (pickled weights "
                                     "are never loaded)", "Dense")
    tensors = load_file(str(weights_path))
    weight = tensors.get("linear.weight")
    if weight is None:
        raise BadInputError(f"{weights_path}: no linear.weight tensor")
    bias = tensors.get("linear.bias")
    return Dense(weight=weight.astype(np.float32), bias=None if bias is None else bias.astype(np.float32),
                 activation=activation)


# -- SpladePooling (sparse encoders: exporter.runtime.sparse) ------------------------------------------------------

SPLADE_STRATEGIES = ("max", "sum")
SPLADE_ACTIVATIONS = ("relu", "log1p_relu")


@dataclass(frozen=True)
class SpladePooling:
    """sentence-transformers' ``SpladePooling`` (inference): ``log1p(relu(logits · mask))`` (``log1p_relu``: log1p
    once more), then the max or the sum over the tokens, giving ``[batch, vocab]``."""

    pooling_strategy: str = "max"
    activation_function: str = "relu"

    def __call__(self, features: Features) -> Features:
        return Features(attention_mask=features.attention_mask,
                        sentence_embedding=splade_pool(features.token_embeddings, features.attention_mask,
                                                       self.pooling_strategy, self.activation_function))


def splade_pool(logits: np.ndarray, attention_mask: np.ndarray, pooling_strategy: str = "max",
                activation_function: str = "relu") -> np.ndarray:
    """SPLADE pooling of MLM ``logits`` ``[batch, tokens, vocab]``: float32 ``[batch, vocab]``."""
    values = np.array(logits, dtype=np.float32, copy=True)
    values *= attention_mask.astype(np.float32)[..., None]
    np.maximum(values, 0.0, out=values)
    np.log1p(values, out=values)
    if activation_function == "log1p_relu":
        np.log1p(values, out=values)
    pooled = values.max(axis=1) if pooling_strategy == "max" else values.sum(axis=1)
    return pooled.astype(np.float32, copy=False)


def splade_config(folder: Path) -> SpladePooling:
    """The ``SpladePooling`` module of the model in ``folder`` (``BadInputError`` when it has none, or one this
    runtime does not know)."""
    entry = next((m for m in model_folder.modules(Path(folder))
                  if str(m.get("type", "")).rsplit(".", 1)[-1] == "SpladePooling"), None)
    if entry is None:
        raise BadInputError(f"{folder}/modules.json: no SpladePooling module: not a SPLADE sparse encoder")
    return splade_step(Path(folder) / str(entry.get("path", "")))


def splade_step(directory: Path) -> SpladePooling:
    """The numpy step of the ``SpladePooling`` module saved in ``directory`` (its config.json)."""
    config = model_folder.read_config(Path(directory) / "config.json", what="SpladePooling config")
    strategy = str(config.get("pooling_strategy", "max"))
    activation = str(config.get("activation_function", "relu"))
    if strategy not in SPLADE_STRATEGIES or activation not in SPLADE_ACTIVATIONS:
        raise UnsupportedModuleError(f"{directory}/config.json: SpladePooling {strategy}/{activation} is not "
                                     f"supported (pooling_strategy {', '.join(SPLADE_STRATEGIES)}; "
                                     f"activation_function {', '.join(SPLADE_ACTIVATIONS)})", "SpladePooling")
    return SpladePooling(pooling_strategy=strategy, activation_function=activation)


# Module class name (the last part of modules.json's "type") -> how to build its numpy step.
BUILDERS: dict[str, Callable[[Path], Step]] = {
    "Pooling": _pooling,
    "Dense": _dense,
    "Normalize": lambda directory: Normalize(),
    "SpladePooling": lambda directory: splade_step(directory),  # sparse encoders: exporter.runtime.sparse
}


def module_type(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def run_steps(steps: list[Step], output: np.ndarray, attention_mask: np.ndarray,
              prompt_length: int | None = None) -> np.ndarray:
    """A graph's output as the sentence embedding: token embeddings through ``steps`` (a transformer graph),
    or the output itself when there are no steps (a sentence graph)."""
    if not steps:
        return np.asarray(output, dtype=np.float32)
    features = Features(attention_mask=attention_mask, token_embeddings=np.asarray(output), prompt_length=prompt_length)
    for step in steps:
        features = step(features)
    return features.sentence_embedding


def pipeline_after_transformer(folder: Path) -> list[Step]:
    """The numpy steps for every module after the Transformer, in order; ``UnsupportedModuleError`` for a
    module that only its own code can compute (custom classes are never imported)."""
    folder = Path(folder)
    entries = model_folder.modules(folder)
    if not entries:
        raise BadInputError(f"{folder}: no modules.json: not a sentence-transformers folder")
    if module_type(entries[0]) != "Transformer":
        raise UnsupportedModuleError(f"{folder}/modules.json: the first module is {entries[0].get('type')!r}, "
                                     "expected a Transformer", module_type(entries[0]))
    steps = []
    for entry in entries[1:]:
        kind = module_type(entry)
        if kind not in BUILDERS or not str(entry.get("type", "")).startswith("sentence_transformers."):
            raise UnsupportedModuleError(
                f"{folder}/modules.json: module {entry.get('type')!r} cannot be computed by the deploy runtime "
                f"(supported: {', '.join(BUILDERS)})", kind)
        steps.append(BUILDERS[kind](folder / str(entry.get("path", ""))))
    return steps


def has_normalize(folder: Path) -> bool:
    """Whether the model in ``folder`` ends its pipeline L2-normalised (a Normalize module in modules.json)."""
    return any(module_type(entry) == "Normalize" for entry in model_folder.modules(Path(folder)))


def truncate(embeddings: np.ndarray, truncate_dim: int | None, renormalize: bool) -> np.ndarray:
    """Matryoshka truncation as sentence-transformers does it: the first ``truncate_dim`` dimensions of the
    finished embedding (after Normalize), L2-normalised again when ``renormalize`` (the model normalises: what
    ``encode(..., normalize_embeddings=True)`` gives). ``None``: unchanged."""
    if truncate_dim is None:
        return embeddings
    cut = np.asarray(embeddings, dtype=np.float32)[:, :truncate_dim]
    return l2_normalize(cut) if renormalize else cut
