"""Tokenisation as sentence-transformers does it, with the Rust ``tokenizers`` library only (no torch, no
transformers): the folder's ``tokenizer.json``, whatever truncation and padding it was saved with replaced
by the model's own rule — truncation at max_seq_length, padding to the longest text of the batch — texts
stripped and lower-cased when the model's ``sentence_bert_config.json`` says ``do_lower_case``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from exporter.artifact import model_folder
from exporter.errors import BadInputError, first_line

TOKENIZER_FILE = "tokenizer.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


class TextTokenizer:
    """Turns texts into the int64 arrays an encoder graph takes (``input_ids``, ``attention_mask``,
    ``token_type_ids``), as the model's sentence-transformers Transformer module would."""

    def __init__(self, folder: Path, max_seq_length: int | None = None):
        from tokenizers import Tokenizer

        folder = Path(folder)
        module_dir = folder / model_folder.transformer_module_path(folder)
        path = module_dir / TOKENIZER_FILE
        if not path.is_file():
            raise BadInputError(f"{folder}: no {TOKENIZER_FILE} (a fast tokenizer) in {module_dir}; the deploy "
                                "runtime needs one")
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # noqa: BLE001 - a malformed or unsupported file
            raise BadInputError(f"{path}: cannot be read by the tokenizers library: {first_line(error)}") from None
        config = _read_json(module_dir / "tokenizer_config.json")
        self.max_length = max_seq_length or _model_max_length(folder, module_dir, config)
        self.lower_case = model_folder.do_lower_case(folder)
        saved_padding = self.tokenizer.padding or {}
        pad_token = _token_text(config.get("pad_token")) or saved_padding.get("pad_token") or "[PAD]"
        pad_id = self.tokenizer.token_to_id(pad_token)
        if pad_id is None:
            pad_id = int(saved_padding.get("pad_id", 0))
        self.padding_side = "left" if config.get("padding_side") == "left" else "right"
        self._padding = {"direction": self.padding_side, "pad_id": pad_id, "pad_token": pad_token,
                         "pad_type_id": int(saved_padding.get("pad_type_id", 0))}
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()  # batches are padded after grouping by length (``pad``)
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.special_ids = {int(token_id) for token_id in _special_ids(self.tokenizer)}

    def prepare(self, texts: list[str]) -> list[str]:
        texts = [text.strip() for text in texts]
        return [text.lower() for text in texts] if self.lower_case else texts

    def encode(self, texts: list[str]) -> list[Any]:
        """The texts' truncated, unpadded encodings (``tokenizers.Encoding``), tokenised in parallel."""
        return self.tokenizer.encode_batch(self.prepare(texts), add_special_tokens=True)

    def pad(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        """One batch as the graph's int64 arrays, padded to its longest encoding (pads ``encodings`` in place)."""
        length = max((len(e.ids) for e in encodings), default=0)
        for encoding in encodings:
            encoding.pad(length, **self._padding)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text after truncation (special tokens included)."""
        return [len(encoding.ids) for encoding in self.encode(texts)]

    def prompt_length(self, prompt: str) -> int:
        """Tokens of a prompt, without a trailing special token (as sentence-transformers counts it for
        ``include_prompt: false`` pooling)."""
        ids = self.tokenizer.encode(self.prepare([prompt])[0], add_special_tokens=True).ids
        return len(ids) - 1 if ids and ids[-1] in self.special_ids else len(ids)


def _special_ids(tokenizer) -> list[int]:
    return [token_id for token_id, token in tokenizer.get_added_tokens_decoder().items() if token.special]


def _model_max_length(folder: Path, module_dir: Path, config: dict[str, Any]) -> int:
    """sentence-transformers' fallback when no max_seq_length is stored: the tokenizer's model_max_length,
    capped by the model's max_position_embeddings."""
    limits = [config.get("model_max_length"), _read_json(module_dir / "config.json").get("max_position_embeddings")]
    usable = [int(value) for value in limits if isinstance(value, int) and 0 < value < 1_000_000]
    if not usable:
        raise BadInputError(f"{folder}: cannot tell the model's max_seq_length (sentence_bert_config.json, "
                            "tokenizer_config.json, config.json)")
    return min(usable)
