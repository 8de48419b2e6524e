"""The built-in calibration corpus and validation set: size, variety, no duplicates, no overlap."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from exporter.export.calibration import builtin_calibration_texts, builtin_validation_records


def _normalised(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower()) or text


def _scripts(text: str) -> set[str]:
    scripts = set()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            scripts.add(name.split(" ")[0])
    return scripts


def test_calibration_corpus_is_large_varied_and_unique():
    texts = builtin_calibration_texts()
    assert len(texts) >= 1000
    assert len({_normalised(t) for t in texts}) == len(texts)  # no duplicates, even modulo case/punctuation
    words = [len(t.split()) for t in texts]
    assert sum(w <= 3 for w in words) / len(texts) >= 0.12  # short queries matter
    assert sum(4 <= w <= 40 for w in words) / len(texts) >= 0.30
    assert sum(w > 150 for w in words) >= 40  # long texts, past max_seq_length
    scripts = Counter(script for t in texts for script in _scripts(t))
    for script in ("LATIN", "CYRILLIC", "CJK", "ARABIC", "DEVANAGARI", "HANGUL", "GREEK"):
        assert scripts[script] > 0, script


def test_calibration_corpus_languages():
    import json
    from importlib import resources

    folder = resources.files("exporter") / "data" / "calibration"
    records = [json.loads(line) for part in folder.iterdir() if part.name.endswith(".jsonl")
               for line in part.read_text(encoding="utf-8").splitlines() if line.strip()]
    languages = Counter(r["lang"] for r in records)
    assert len([lang for lang, count in languages.items() if count >= 5]) >= 5
    domains = Counter(r["domain"] for r in records)
    assert len(domains) >= 12


def test_validation_set_is_varied_and_disjoint_from_calibration():
    records = builtin_validation_records()
    assert len(records) >= 200
    kinds = Counter(r["kind"] for r in records)
    for kind in ("single_word", "query", "sentence", "long", "unicode", "code_numbers", "paraphrase", "multilingual"):
        assert kinds[kind] >= 20, kind
    validation = {_normalised(r["text"]) for r in records}
    assert len(validation) == len(records)
    assert not validation & {_normalised(t) for t in builtin_calibration_texts()}
    assert any(len(r["text"].split()) > 300 for r in records)  # beyond max_seq_length
