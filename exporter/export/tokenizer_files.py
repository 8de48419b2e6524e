"""The tokenizer files of an artifact folder state the model's real limit: max_seq_length.

sentence-transformers 5.7 saves the limit only as ``tokenizer_config.json``'s ``model_max_length``, while
``tokenizer.json`` keeps whatever truncation and padding the tokenizer was saved with (all-MiniLM-L6-v2:
truncation at 128 and a fixed padding to 128) and ``tokenizer_config.json`` a ``max_length`` copied from it.
Clients that read the files and not sentence-transformers' code follow those: fastembed truncates at
``min(model_max_length, max_length)``, plain ``tokenizers`` users get every batch padded to a fixed length.
So the build rewrites them: truncation at max_seq_length, no padding in ``tokenizer.json`` (callers pad a
batch to its longest text), every length in ``tokenizer_config.json`` = max_seq_length, and
``sentence_bert_config.json`` records ``max_seq_length`` again (as sentence-transformers before 5.7 did).

``tokenizer.json`` as the source saved it is what the Encoder, fastembed, transformers.js and ``tokenizers``
read, so it is the tokenisation every artifact means. transformers 5 rebuilds some tokenizer classes
(``XLMRobertaTokenizer`` and the other SentencePiece-converted ones) from the vocabulary with the class's own
normaliser and pre-tokenizer, ignoring the file's: sentence-transformers 6 would then tokenise the artifact
differently from every other client. ``agree_with_tokenizer_json`` finds that out on probe texts and, where
the class disagrees, names ``PreTrainedTokenizerFast`` in ``tokenizer_config.json`` (which reads the file as
saved in every transformers version), keeping the class's input names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporter.artifact.model_folder import transformer_module_path

TOKENIZER_FILE = "tokenizer.json"
FILE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"  # transformers' class that reads tokenizer.json as saved
# Texts where rebuilt pipelines part from the file: repeated and odd spaces, compatibility characters (NFKC),
# accents, scripts without spaces, emoji, digits, case.
PROBE_TEXTS = ("a    b  c", " leading and trailing ", "tab\there\nnew line", "ﬁ ﬀ ① ㍿ Ⅻ", "naïve café Ångström",
               "日本語のテキスト", "中文句子", "😀 emoji 👍🏽", "1234567 3.14", "MiXeD CaSe WORDS", "e\u0301 composed",
               "\u00a0non-breaking\u2009space")
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


def transformers_token_ids(module_dir: Path, texts: list[str]) -> list[list[int]]:
    """The ids transformers' ``AutoTokenizer`` (as sentence-transformers loads it) gives ``texts``."""
    from transformers import AutoTokenizer

    from exporter.runtime.runners import quiet_loading

    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(str(module_dir), local_files_only=True)
    return [list(tokenizer(text, add_special_tokens=True)["input_ids"]) for text in texts]


def file_token_ids(module_dir: Path, texts: list[str]) -> list[list[int]]:
    """The ids ``tokenizers`` reading ``tokenizer.json`` gives ``texts`` (no truncation)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(module_dir) / TOKENIZER_FILE))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [encoding.ids for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=True)]


def agree_with_tokenizer_json(folder: Path, texts: list[str] = ()) -> str | None:
    """Make transformers tokenise the model folder ``folder`` as its ``tokenizer.json`` does: when the class
    ``tokenizer_config.json`` names gives other ids on ``PROBE_TEXTS`` + ``texts``, name
    ``PreTrainedTokenizerFast`` instead (with the class's ``model_input_names``). Returns the class replaced, or
    None when nothing changed (no tokenizer.json, or they agree). Raises ``ValueError`` naming the first text
    that still differs afterwards."""
    module_dir = Path(folder) / transformer_module_path(folder)
    config_path = module_dir / TOKENIZER_CONFIG_FILE
    if not (module_dir / TOKENIZER_FILE).is_file() or not config_path.is_file():
        return None
    probes = list(PROBE_TEXTS) + [text for text in texts if text not in PROBE_TEXTS]
    expected = file_token_ids(module_dir, probes)
    if transformers_token_ids(module_dir, probes) == expected:
        return None
    from transformers import AutoTokenizer

    config = json.loads(config_path.read_text(encoding="utf-8"))
    replaced = str(config.get("tokenizer_class"))
    input_names = list(AutoTokenizer.from_pretrained(str(module_dir), local_files_only=True).model_input_names)
    config["tokenizer_class"] = FILE_TOKENIZER_CLASS
    config["model_input_names"] = input_names
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    got = transformers_token_ids(module_dir, probes)
    for text, ids, want in zip(probes, got, expected, strict=True):
        if ids != want:
            raise ValueError(f"{config_path}: transformers tokenises {text!r} as {ids}, tokenizer.json as {want}, "
                             f"even as {FILE_TOKENIZER_CLASS}")
    return replaced


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
