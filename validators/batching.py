"""Which texts are encoded together: the two passes every variant must pass.

* Batch size 1: no padding at all, the path a single online request takes. Each call costs a fixed overhead
  however short the text, so this pass runs a representative subset: up to 120 texts shorter than half the
  maximum length, evenly spaced through the text list (the built-in set is grouped by kind, so every kind
  is sampled: single words, scripts, code, sentences, paraphrases, queries), plus 3 long texts spread over
  the length range. The large-batch pass below still covers every text.
* Large batches (32): each batch takes the 28 longest and the 4 shortest texts still left, so every batch
  pads very short texts up to the longest ones: the case where a wrong attention mask or a pooling that
  counts pad tokens shows up. Keeping the long texts together keeps the padded work near the minimum: on the
  built-in set 1.3 times sorted batching, where spreading the long texts over every batch costs 6 times.
"""

from __future__ import annotations

from dataclasses import dataclass

LARGE_BATCH = 32
SHORT_TEXTS_AT_BATCH_1 = 120
LONG_TEXTS_AT_BATCH_1 = 3


@dataclass(frozen=True)
class EncodingPass:
    """One way of encoding the texts: ``batches`` are lists of indices into the text list."""

    batch_size: int
    batches: list[list[int]]

    @property
    def indices(self) -> list[int]:
        """The texts this pass encodes, in ascending order (its metrics are computed on these rows)."""
        return sorted(index for batch in self.batches for index in batch)


def single_text_pass(
    lengths: list[int],
    max_length: int,
    short_texts: int = SHORT_TEXTS_AT_BATCH_1,
    long_texts: int = LONG_TEXTS_AT_BATCH_1,
) -> EncodingPass:
    """Batch size 1 on up to ``short_texts`` texts shorter than ``max_length // 2`` tokens (evenly spaced in
    list order) and ``long_texts`` longer ones (the shortest, the longest and evenly spaced ones between)."""
    cutoff = max(1, max_length // 2)
    short = _evenly_spaced([i for i, n in enumerate(lengths) if n < cutoff], short_texts)
    long = sorted((i for i, n in enumerate(lengths) if n >= cutoff), key=lambda i: (lengths[i], i))
    return EncodingPass(1, [[i] for i in sorted(short + _evenly_spaced(long, long_texts))])


def _evenly_spaced(items: list[int], count: int) -> list[int]:
    """``count`` items spread evenly over ``items``, first and last included; all of them when there are fewer."""
    if count <= 0:
        return []
    if len(items) <= count:
        return list(items)
    if count == 1:
        return [items[0]]
    step = (len(items) - 1) / (count - 1)
    return [items[round(k * step)] for k in range(count)]


def mixed_length_pass(lengths: list[int], batch_size: int = LARGE_BATCH, short_share: float = 0.125) -> EncodingPass:
    """Every text in batches of ``batch_size``: each batch holds the longest texts left and, for
    ``short_share`` of its rows, the shortest texts left."""
    by_length = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    shortest = max(1, round(batch_size * short_share)) if batch_size > 1 else 0
    batches: list[list[int]] = []
    low, high = 0, len(by_length)
    while low < high:
        take_long = min(batch_size - shortest, high - low)
        batch = by_length[high - take_long : high][::-1]
        high -= take_long
        take_short = min(shortest, high - low)
        batch += by_length[low : low + take_short]
        low += take_short
        batches.append(batch)
    return EncodingPass(batch_size, batches)
