"""Calibration texts for static quantisation, and the built-in text sets.

The built-in calibration corpus (``exporter/data/calibration/*.jsonl``) holds over 1,500 hand-written texts
of many domains, registers, languages and lengths: int8 ranges calibrated on narrow text fail on what
users really embed (single words, long texts, other scripts). The built-in validation set
(``exporter/data/validation.jsonl``) is disjoint from it; the validators use it.
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from exporter.errors import BadInputError
from exporter.texts import parse_jsonl, read_text_file

BUILTIN = "builtin"


@dataclass(frozen=True)
class CalibrationTexts:
    """The sampled texts plus what the manifest records about where they came from."""

    texts: list[str]
    corpus: str  # "builtin" or the file name as written in the recipe
    corpus_sha256: str  # of the whole corpus, in file order
    corpus_size: int
    samples: int
    seed: int


def _data_dir():
    return resources.files("exporter") / "data"


def builtin_calibration_texts() -> list[str]:
    """All built-in calibration texts, in a stable order."""
    folder = _data_dir() / "calibration"
    texts: list[str] = []
    for part in sorted((entry for entry in folder.iterdir() if entry.name.endswith(".jsonl")), key=lambda e: e.name):
        texts.extend(_jsonl_texts(part.read_text(encoding="utf-8"), "text", part.name))
    return texts


def builtin_validation_records() -> list[dict]:
    """The built-in validation set: dicts with text, domain, lang, kind."""
    return parse_jsonl((_data_dir() / "validation.jsonl").read_text(encoding="utf-8"), "exporter/data/validation.jsonl")


def load_corpus(corpus: str, base_dir: Path, column: str = "text", where: str = "calibration.corpus") -> list[str]:
    """Texts of a corpus: ``builtin``, or a local .txt (one per line), .jsonl or .csv file (``column``)."""
    if corpus == BUILTIN:
        return builtin_calibration_texts()
    path = (base_dir / corpus).resolve()
    content = read_text_file(path, where, "expected 'builtin' or a .txt/.jsonl/.csv calibration corpus")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        texts = [line.strip() for line in content.splitlines() if line.strip()]
    elif suffix == ".jsonl":
        texts = _jsonl_texts(content, column, str(path))
    elif suffix == ".csv":
        rows = list(csv.DictReader(content.splitlines()))
        if rows and column not in rows[0]:
            raise BadInputError(f"{where}: {path} has no column {column!r} (columns: {', '.join(rows[0])})")
        texts = [row[column].strip() for row in rows if (row.get(column) or "").strip()]
    else:
        raise BadInputError(f"{where}: {path}: expected a .txt, .jsonl or .csv file")
    if not texts:
        raise BadInputError(f"{where}: {path} holds no texts")
    return texts


def _jsonl_texts(content: str, column: str, where: str) -> list[str]:
    return [row[column] for row in parse_jsonl(content, where, column) if row[column].strip()]


def calibration_texts(corpus: str, samples: int, seed: int, base_dir: Path, column: str = "text") -> CalibrationTexts:
    """A seeded sample of ``samples`` texts (all of them if the corpus is smaller)."""
    texts = load_corpus(corpus, base_dir, column)
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    chosen = random.Random(seed).sample(texts, samples) if samples < len(texts) else list(texts)
    return CalibrationTexts(texts=chosen, corpus=corpus, corpus_sha256=digest, corpus_size=len(texts),
                            samples=len(chosen), seed=seed)
