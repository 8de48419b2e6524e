"""The reranker's built-in query groups (exporter/data/rerank_groups.jsonl) and the example MiniLM reranker
(examples/reranker/train_minilm_reranker.py) that recipes/minilm-reranker.yaml builds from."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ROOT / "exporter" / "data" / "rerank_groups.jsonl"


def read_groups() -> list[dict]:
    return [json.loads(line) for line in GROUPS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_builtin_groups_schema_and_size():
    groups = read_groups()
    assert len(groups) >= 48
    queries = [group["query"] for group in groups]
    assert len(set(queries)) == len(queries), "duplicate queries"
    for number, group in enumerate(groups, start=1):
        where = f"{GROUPS.name}:{number}"
        assert set(group) == {"query", "passages", "labels"}, where
        assert isinstance(group["query"], str) and group["query"].strip(), where
        assert len(group["passages"]) == 8 and len(group["labels"]) == 8, where
        assert all(isinstance(p, str) and p.strip() for p in group["passages"]), where
        assert len(set(group["passages"])) == 8, f"{where}: duplicate passages"
        assert all(type(label) is int and 0 <= label <= 3 for label in group["labels"]), where
        labels = sorted(group["labels"], reverse=True)
        # 1-2 clearly relevant, near-ties among the partial ones, something to rank below them.
        assert 1 <= labels.count(3) <= 2 and labels.count(2) >= 2 and labels[-1] == 0, where
