"""``exporter bench``'s length classes: which texts each class runs, and how many tokens each model runs on them.

Speed ratios depend on text length (short queries are dominated by per-call overhead, long passages by the
attention and MatMul kernels), so bench measures each class separately:

* ``short``: texts of the set under ``SHORT_MAX_CHARS`` (200) characters, ``num_texts`` of them;
* ``mixed``: the whole set (the built-in validation set or ``--texts``), ``num_texts`` of them spread over it;
* ``long``: texts of at least ``LONG_MIN_CHARS`` (500) characters, ``num_texts // LONG_SHARE`` of them (a
  long text costs about ten short ones). When the set has fewer, passages are built to fill the class:
  consecutive texts under 500 characters, in the set's order (wrapping around), joined with a space until
  the passage has at least ``PASSAGE_CHARS`` (1,000) characters. Deterministic: the same set gives the same
  passages.

In every class texts are picked evenly spread over the class's pool when it is larger, cycled when smaller.
Tokens are counted with each model's own tokenizer, truncated at its max_seq_length, prompt included: the
tokens the model actually runs (padding excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.diagnostics.bench_measure import select_texts
from exporter.errors import BadInputError

if TYPE_CHECKING:
    from exporter.runtime.runners import VariantRunner

LENGTH_CLASSES = ("short", "mixed", "long")
DEFAULT_LENGTH_CLASSES = LENGTH_CLASSES
SHORT_MAX_CHARS = 200
LONG_MIN_CHARS = 500
PASSAGE_CHARS = 1000
LONG_SHARE = 4  # the long class runs num_texts // LONG_SHARE texts per round
# The class the manifest's per-variant summary (and bench.json's top-level numbers per model) comes from:
# what a typical mix of queries and documents gives.
SUMMARY_CLASS = "mixed"
RULES = {
    "short": f"texts under {SHORT_MAX_CHARS} characters",
    "mixed": "the whole text set",
    "long": f"texts of {LONG_MIN_CHARS}+ characters, topped up with passages of consecutive shorter texts joined "
            f"to {PASSAGE_CHARS}+ characters",
}


@dataclass(frozen=True)
class LengthClass:
    """One class's texts: ``built`` of them are joined passages (long class only)."""

    name: str
    texts: list[str]
    built: int = 0

    @property
    def rule(self) -> str:
        return RULES[self.name]

    def describe(self) -> dict[str, object]:
        """The class as bench.json's settings record it."""
        lengths = [len(text) for text in self.texts]
        return {"rule": self.rule, "texts": len(self.texts), "built_passages": self.built,
                "mean_chars": round(sum(lengths) / len(lengths), 1), "max_chars": max(lengths)}


def check_classes(classes: Sequence[str] | str | None) -> tuple[str, ...]:
    """The classes of ``classes``, each once, in ``LENGTH_CLASSES`` order (None or empty: all);
    ``BadInputError`` naming ``length_classes`` for an unknown one."""
    if classes is None:
        return DEFAULT_LENGTH_CLASSES
    if isinstance(classes, str):
        classes = (classes,)
    unknown = [name for name in classes if name not in LENGTH_CLASSES]
    if unknown:
        raise BadInputError(f"length_classes {unknown[0]!r}: expected one or more of {', '.join(LENGTH_CLASSES)}")
    return tuple(name for name in LENGTH_CLASSES if name in classes) or DEFAULT_LENGTH_CLASSES


def long_pool(texts: Sequence[str], count: int) -> tuple[list[str], int]:
    """The long class's pool for ``count`` texts: the set's long texts, topped up with built passages when it
    has fewer than ``count``; (pool, passages built)."""
    natural = [text for text in texts if len(text) >= LONG_MIN_CHARS]
    pieces = [text for text in texts if len(text) < LONG_MIN_CHARS]
    if len(natural) >= count or not pieces:
        return natural, 0
    built: list[str] = []
    position = 0
    while len(natural) + len(built) < count:
        parts: list[str] = []
        while sum(map(len, parts)) + len(parts) - 1 < PASSAGE_CHARS:  # the joined length, spaces included
            parts.append(pieces[position % len(pieces)])
            position += 1
        built.append(" ".join(parts))
    return natural + built, len(built)


def class_texts(texts: Sequence[str], classes: Sequence[str], num_texts: int) -> tuple[list[LengthClass], list[str]]:
    """Each of ``classes`` with its texts (see the module's rules), and a note per class the set has no text
    for (it is left out). ``BadInputError`` naming ``length_classes`` when none of them has a text."""
    chosen: list[LengthClass] = []
    notes: list[str] = []
    for name in classes:
        if name == "short":
            pool = [text for text in texts if len(text) < SHORT_MAX_CHARS]
            if not pool:
                notes.append(f"length class short not measured: the text set has no text under {SHORT_MAX_CHARS} "
                             "characters")
                continue
            chosen.append(LengthClass(name, select_texts(pool, num_texts)))
        elif name == "mixed":
            chosen.append(LengthClass(name, select_texts(texts, num_texts)))
        else:
            count = max(1, num_texts // LONG_SHARE)
            pool, built = long_pool(texts, count)
            chosen.append(LengthClass(name, select_texts(pool, count), built=min(built, count)))
    if not chosen:
        raise BadInputError(f"length_classes {', '.join(classes)}: the text set has no text for "
                            f"{'it' if len(classes) == 1 else 'any of them'}")
    return chosen, notes


def token_counts(runner: VariantRunner, texts: list[str]) -> list[int]:
    """Tokens each text is run with by ``runner``: its own tokenizer, the default prompt prepended as the model
    does, truncated at its max_seq_length, padding excluded."""
    encoder = getattr(runner, "encoder", None)
    if encoder is not None:  # the deploy runtime
        prompt = encoder.prompts.get(encoder.default_prompt_name, "") if encoder.default_prompt_name else ""
        return encoder.tokenizer.token_counts([prompt + text for text in texts])
    model = runner.model  # SentenceTransformer: torch, or a backend through sentence-transformers
    name = getattr(model, "default_prompt_name", None)
    prompt = (getattr(model, "prompts", None) or {}).get(name) if name else None
    counts: list[int] = []
    for start in range(0, len(texts), 64):
        chunk = texts[start:start + 64]
        if hasattr(model, "preprocess"):  # sentence-transformers 6 (``tokenize`` warns there)
            features = model.preprocess(chunk, prompt=prompt or None)
        else:
            features = model.tokenize([(prompt or "") + text for text in chunk])
        counts.extend(int(value) for value in features["attention_mask"].sum(axis=1))
    return counts


__all__ = ["DEFAULT_LENGTH_CLASSES", "LENGTH_CLASSES", "LONG_MIN_CHARS", "LONG_SHARE", "PASSAGE_CHARS",
           "SHORT_MAX_CHARS", "SUMMARY_CLASS", "LengthClass", "check_classes", "class_texts", "long_pool",
           "token_counts"]
