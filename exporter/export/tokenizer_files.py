"""The tokenizer files of an artifact folder state the model's real limit: max_seq_length.

sentence-transformers 5.7 saves the limit only as ``tokenizer_config.json``'s ``model_max_length``, while
``tokenizer.json`` keeps whatever truncation and padding the tokenizer was saved with (all-MiniLM-L6-v2:
truncation at 128 and a fixed padding to 128) and ``tokenizer_config.json`` a ``max_length`` copied from it.
Clients that read the files and not sentence-transformers' code follow those: fastembed truncates at
``min(model_max_length, max_length)``, plain ``tokenizers`` users get every batch padded to a fixed length.
So the build rewrites them: truncation at max_seq_length, no padding in ``tokenizer.json`` (callers pad a
batch to its longest text), every length in ``tokenizer_config.json`` = max_seq_length, and
``sentence_bert_config.json`` records ``max_seq_length`` again (as sentence-transformers before 5.7 did).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporter.artifact.model_folder import transformer_module_path

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SENTENCE_BERT_CONFIG_FILE = "sentence_bert_config.json"


def state_max_seq_length(folder: Path, max_seq_length: int) -> None:
    """Rewrite the tokenizer files of the model folder ``folder`` (its Transformer module's) so that each states
    ``max_seq_length`` and none a fixed padding. Files that are absent stay absent."""
    module_dir = Path(folder) / transformer_module_path(folder)
    tokenizer_path = module_dir / TOKENIZER_FILE
    if tokenizer_path.is_file():
        _limit_tokenizer(tokenizer_path, max_seq_length)
    _update_json(module_dir / TOKENIZER_CONFIG_FILE, _limit_tokenizer_config, max_seq_length, indent=2)
    _update_json(module_dir / SENTENCE_BERT_CONFIG_FILE, _record_max_seq_length, max_seq_length, indent=4)


def _limit_tokenizer(path: Path, max_seq_length: int) -> None:
    """Truncation at ``max_seq_length`` (keeping the saved strategy, stride and side), padding off."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    saved = tokenizer.truncation or {}
    tokenizer.enable_truncation(max_length=max_seq_length, stride=int(saved.get("stride", 0)),
                                strategy=_snake(saved.get("strategy", "LongestFirst")),
                                direction=str(saved.get("direction", "Right")).lower())
    tokenizer.no_padding()
    tokenizer.save(str(path))


def _snake(name: str) -> str:
    """``LongestFirst`` (as tokenizer.json stores it) → ``longest_first`` (as ``enable_truncation`` takes it)."""
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in str(name)).lstrip("_")


def _limit_tokenizer_config(config: dict[str, Any], max_seq_length: int) -> None:
    config["model_max_length"] = max_seq_length
    if "max_length" in config:  # transformers copies it from tokenizer.json's truncation; keep them equal
        config["max_length"] = max_seq_length


def _record_max_seq_length(config: dict[str, Any], max_seq_length: int) -> None:
    config["max_seq_length"] = max_seq_length


def _update_json(path: Path, update, max_seq_length: int, indent: int) -> None:
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        return
    update(data, max_seq_length)
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
