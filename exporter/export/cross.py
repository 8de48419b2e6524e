"""Building rerankers (``model.kind: cross``): CrossEncoder models exported to ONNX / OpenVINO.

Two graphs, both taking the tokenised (query, passage) pair:

* ``graph: transformer``: the sequence-classification model itself, output ``logits`` ``[batch, num_labels]`` --
  what ``CrossEncoder(folder, backend="onnx" | "openvino", model_kwargs={"file_name": ...})`` loads (optimum's
  ``*ModelForSequenceClassification`` reads ``logits``); the activation runs afterwards (sentence-transformers, or
  the deploy ``Reranker``);
* ``graph: scores``: the same with the model's own activation inside (``CrossEncoder.activation_fn``, as the
  folder's ``config_sentence_transformers.json`` says: sigmoid for one label, else none), output ``scores``, for
  plain runtimes that just want the number ``CrossEncoder.predict`` gives.

A reranker is built through the same staged, atomic path as an embedding model (``exporter.export.builder``) with
what differs here: the model is loaded as a ``CrossEncoder``, graphs are traced on pairs, static int8 calibrates
on pairs, the int8 rule judges candidates by their rankings (``RankingJudge``), and validation is
``exporter.validators.ranking``. What a reranker cannot be is refused before anything is written: ``graph:
sentence`` (no sentence embedding), ``backend: torch``, ``exclude: auto`` (the search measures embeddings; the
default int8 rule, ``exclude: sensitive``, is the reranker's), Matryoshka ``truncate_dim``, ``validation.texts``
(use ``validation.pairs``), and causal-LM rerankers (``LogitScore``).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exporter.artifact.model_folder import modules, read_config
from exporter.errors import BadInputError, first_line
from exporter.export.graphs import GraphSpec, graph_inputs
from exporter.export.variants import VariantBuilder
from exporter.runtime.reranker import LOGITS_OUTPUT, SCORES_OUTPUT

CROSS_GRAPHS = ("transformer", "scores")
JUDGED = ("top1_agreement", "spearman_mean", "ndcg_at_5")  # the metrics the int8 rule's judge gates on
JUDGE_MARGIN = 0.5


class CrossGraph(torch.nn.Module):
    """The sequence-classification model's logits for a tokenised pair, with ``activation`` applied when given."""

    def __init__(self, model, input_names: tuple[str, ...], activation: torch.nn.Module | None):
        super().__init__()
        self.classifier = model[0].auto_model
        self.input_names = input_names
        self.activation = activation

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(**dict(zip(self.input_names, inputs, strict=True))).logits
        return self.activation(logits) if self.activation is not None else logits


def pair_features(model, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """The Transformer module's own tokenisation of pairs (longest-first truncation at the model's max length)."""
    return model[0].preprocess([list(pair) for pair in pairs])


def graph_activation(model) -> torch.nn.Module | None:
    """The model's activation as a torch module, None for Identity (what ``graph: scores`` has inside)."""
    activation = getattr(model, "activation_fn", None)
    if activation is None or type(activation).__name__ == "Identity":
        return None
    if not isinstance(activation, torch.nn.Module):
        raise BadInputError(f"model.path: the CrossEncoder's activation_fn {activation!r} is not a torch module")
    return activation


def export_cross_graph(model, graph: str, path: Path) -> GraphSpec:
    """Export a reranker's ``graph`` (transformer: logits; scores: activated) to fp32 ONNX at ``path``; batch and
    sequence axes dynamic, the label axis fixed."""
    import onnx

    from exporter.export.onnx_backend import ONNX_OPSET, declare_static_dimension, save_onnx

    input_names = graph_inputs(model)
    features = pair_features(model, [("a short query", "a passage that is long enough to need some padding here"),
                                     ("q", "p")])
    inputs = tuple(features[name] for name in input_names)
    output = LOGITS_OUTPUT if graph == "transformer" else SCORES_OUTPUT
    module = CrossGraph(model, input_names, graph_activation(model) if graph == "scores" else None).eval()
    dynamic_axes = {name: {0: "batch_size", 1: "sequence_length"} for name in input_names}
    dynamic_axes[output] = {0: "batch_size"}
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        raw_path = Path(scratch) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, str(raw_path), input_names=list(input_names), output_names=[output],
                              dynamic_axes=dynamic_axes, opset_version=ONNX_OPSET, do_constant_folding=True,
                              dynamo=False)
        proto = onnx.load(str(raw_path), load_external_data=True)
        with torch.no_grad():
            labels = int(module(*inputs).shape[-1])
        declare_static_dimension(proto, output, axis=1, size=labels)
        save_onnx(proto, path)
    return GraphSpec(inputs=input_names, output=output)


@dataclass(frozen=True)
class _Target:
    """What the judge requires (the int8 rule records ``target.thresholds``)."""

    thresholds: dict[str, float]


class RankingJudge:
    """The int8 rule's judge for rerankers (``int8_rule.Judge``): a candidate's scores of the built-in query groups
    against the fp32 graph's, by the validator's ranking metrics, each meeting the variant's thresholds."""

    def __init__(self, *, feeds: list[dict[str, np.ndarray]], reference: list[np.ndarray], thresholds: dict[str, float],
                 activation) -> None:
        # The judge asks for half the way from each threshold to 1: room for the validation's batching and, with
        # validation.pairs, for the user's own groups.
        self.feeds, self.reference, self.activation = feeds, reference, activation
        self.thresholds = {key: (value + (1.0 - value) * JUDGE_MARGIN if key in JUDGED and value is not None
                                 else value) for key, value in thresholds.items()}
        self.target = _Target({key: self.thresholds[key] for key in JUDGED})

    def scores(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        activated = [np.asarray(o, dtype=np.float64).reshape(len(o), -1)[:, 0] for o in outputs]
        return [self.activation(a) if self.activation is not None else a for a in activated]

    def __call__(self, candidate):
        from exporter.export.int8_rule import Verdict
        from exporter.validators.ranking import ranking_metrics

        metrics = ranking_metrics(self.scores(candidate.run(self.feeds)), self.reference,
                                  self.thresholds["tie_tolerance"])
        gated = list(JUDGED)

        def slack(key: str) -> float:
            value, required = metrics.get(key), self.thresholds[key]
            return -1.0 if value is None else (value - required) / max(1.0 - required, 1e-12)

        worst = min(gated, key=slack)
        summary = (f"{worst} {metrics[worst]:.4f} {'>=' if slack(worst) >= 0 else '<'} {self.thresholds[worst]:.4f} "
                   f"on {len(self.feeds)} built-in query groups")
        passes = all(slack(key) >= 0 for key in gated)
        return Verdict(passes=passes, score=min(slack(key) for key in gated),
                       summary=summary, metrics=metrics)


class CrossVariantBuilder(VariantBuilder):
    """``VariantBuilder`` for rerankers: pair graphs, pair calibration, the ranking judge."""

    def export_graph(self, graph: str, path: Path, truncate_dim: int | None) -> GraphSpec:
        return export_cross_graph(self.model, graph, path)

    def calibration_feeds(self, texts: list[str], spec: GraphSpec) -> list[dict[str, np.ndarray]]:
        """One tokenised pair per sample: each corpus text as the query of the next one (varied lengths, as the
        passages of a real query are, and mostly unrelated, as most of a real query's candidates are)."""
        feeds = []
        for index, text in enumerate(texts):
            features = pair_features(self.model, [(text, texts[(index + 1) % len(texts)])])
            feeds.append({name: features[name].numpy().astype(np.int64) for name in spec.inputs})
        return feeds

    def group_feeds(self, spec: GraphSpec) -> list[dict[str, np.ndarray]]:
        """The built-in query groups (``exporter/data/rerank_groups.jsonl``), one padded batch per group. They are
        also what validation measures by default: held-out groups of unrelated corpus texts were tried first and
        told the rule nothing about hard negatives (on the MiniLM reranker a candidate at top1 1.0 / spearman 0.979
        there measured top1 0.931 on these groups), and these are the ones written to have near ties and hard
        negatives."""
        from exporter.validators.ranking import builtin_groups

        feeds = []
        for group in builtin_groups():
            features = pair_features(self.model, group.pairs())
            feeds.append({name: features[name].numpy().astype(np.int64) for name in spec.inputs})
        return feeds

    def int8_judge(self, variant, spec, thresholds, calibration, reference_run):
        from exporter.validators.ranking import ranking_thresholds

        activation = None
        if spec.output == LOGITS_OUTPUT and graph_activation(self.model) is not None:
            name = type(graph_activation(self.model)).__name__
            activation = {"Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "Tanh": np.tanh}.get(name)
        feeds = self.group_feeds(spec)
        judge = RankingJudge(feeds=feeds, reference=[], thresholds=ranking_thresholds(variant.precision),
                             activation=activation)
        judge.reference = judge.scores(reference_run(feeds))
        return judge

    def openvino_float_ops(self, ov_model) -> list[str]:
        """The scoring head (every MatMul on one vector per pair: BERT's pooler and classifier, RoBERTa's
        classification head, ModernBERT's head) stays in float in OpenVINO int8: the score is a projection of that
        one vector, so a per-tensor uint8 range on it goes straight into the score. ONNX static int8 leaves
        these (``Gemm`` nodes) in float already. Measured on the tiny random BERT reranker (Sapphire Rapids):
        OpenVINO int8 mean Spearman 0.970 with the head quantised, 0.986 with it in float."""
        return pooled_matmuls(ov_model)

    def search_setup(self, variant, spec, thresholds, calibration):
        raise BadInputError("exclude: auto measures embeddings; a reranker's int8 uses the default rule "
                            "(exclude: sensitive)")


def pooled_matmuls(ov_model) -> list[str]:
    """Friendly names of the MatMuls of an OpenVINO model whose data input is one vector per row (rank 2:
    ``[batch, hidden]``), i.e. those after the pooling: a sequence-classification head."""
    names = []
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        rank = op.get_input_partial_shape(0).rank
        if rank.is_static and rank.get_length() == 2:
            names.append(op.get_friendly_name())
    return names


# -- what a reranker recipe may ask for ------------------------------------------------------------------------


def check_logit_score(directory: Path, where: str) -> None:
    """Refuse a causal-LM reranker (a Transformer with ``transformer_task: text-generation`` and a ``LogitScore``
    module, e.g. mxbai-rerank v2): its score is two vocabulary logits of the last token, not a classifier."""
    entries = modules(directory)
    for entry in entries:
        type_name = str(entry.get("type", "")).rsplit(".", 1)[-1]
        if type_name == "LogitScore":
            raise BadInputError(f"{where}: {directory} is a causal-LM reranker (modules.json: LogitScore): only "
                                "sequence-classification CrossEncoders can be built")
        if type_name == "Transformer":
            folder = directory / str(entry.get("path", ""))
            task = read_config(folder / "sentence_bert_config.json").get("transformer_task")
            if task == "text-generation":
                raise BadInputError(f"{where}: {directory} is a causal-LM reranker (transformer_task: text-generation, "
                                    "scored by LogitScore): only sequence-classification CrossEncoders can be built")
    architectures = read_config(directory / "config.json").get("architectures") or []
    if not entries and any(str(a).endswith("ForCausalLM") for a in architectures if isinstance(architectures, list)):
        raise BadInputError(f"{where}: {directory} is a causal-LM reranker (config.json: {architectures[0]}, scored by "
                            "LogitScore): only sequence-classification CrossEncoders can be built")


def check_cross_recipe(loaded, selected, directory: Path) -> Path | None:
    """Refuse what a reranker cannot be built as, naming the recipe line and field; returns the ``validation.pairs``
    file (read and checked now), or None for the built-in groups."""
    check_logit_score(directory, loaded.where(("model", "kind")))
    if loaded.recipe.model.truncate_dim is not None:
        raise BadInputError(f"{loaded.where(('model', 'truncate_dim'))}: a reranker has no embedding to truncate")
    for index, variant in enumerate(loaded.recipe.variants):
        if variant not in selected:
            continue
        if variant.graph not in CROSS_GRAPHS:
            raise BadInputError(f"{loaded.where(('variants', index, 'graph'))}: variant {variant.resolved_name!r}: "
                                f"graph {variant.graph} is for embedding models; a reranker (model.kind cross) has "
                                f"graph {' | '.join(CROSS_GRAPHS)}")
        if variant.backend == "torch":
            raise BadInputError(f"{loaded.where(('variants', index, 'backend'))}: variant {variant.resolved_name!r}: "
                                "torch variants of rerankers are not built (use onnx or openvino)")
        if variant.truncate_dim is not None:
            raise BadInputError(f"{loaded.where(('variants', index, 'truncate_dim'))}: a reranker has no embedding "
                                "to truncate")
        quantization = variant.resolved_quantization
        if quantization is not None and quantization.exclude == "auto":
            raise BadInputError(f"{loaded.where(('variants', index, 'quantization', 'exclude'))}: exclude: auto "
                                "measures embeddings; a reranker's int8 uses the default rule (exclude: sensitive)")
        if variant.validation is not None and variant.validation.thresholds is not None:
            raise BadInputError(f"{loaded.where(('variants', index, 'validation', 'thresholds'))}: embedding "
                                "thresholds do not apply to a reranker (its ranking thresholds are per precision: "
                                "docs/rerankers.md)")
    validation = loaded.recipe.validation
    if validation is not None and validation.texts:
        raise BadInputError(f"{loaded.where(('validation', 'texts'))}: validation texts are for embedding models; a "
                            "reranker validates on query groups (validation.pairs)")
    if validation is not None and validation.thresholds is not None:
        raise BadInputError(f"{loaded.where(('validation', 'thresholds'))}: embedding thresholds do not apply to a "
                            "reranker (its ranking thresholds are per precision: docs/rerankers.md)")
    pairs = getattr(validation, "pairs", None) if validation is not None else None
    if not pairs:
        return None
    from exporter.validators.ranking import read_groups

    path = loaded.base_dir / pairs
    if not path.is_file():
        raise BadInputError(f"{loaded.where(('validation', 'pairs'))}: {path} is not a file")
    read_groups(path)  # BadInputError naming file:line and field
    return path


def load_cross_encoder(directory: Path, source):
    """The torch CrossEncoder on CPU with the eager attention (what traces faithfully), the recipe's
    max_seq_length applied."""
    from sentence_transformers import CrossEncoder

    from exporter.progress import quiet_loading

    try:
        with quiet_loading():
            model = CrossEncoder(str(directory), device="cpu", trust_remote_code=source.trust_remote_code,
                                 local_files_only=True, model_kwargs={"attn_implementation": "eager"})
    except Exception as error:  # noqa: BLE001 - any failure here means the directory is not a usable model
        raise BadInputError(f"model.path: {directory} could not be loaded as a CrossEncoder: "
                            f"{first_line(error)}") from None
    if source.max_seq_length:
        model.max_seq_length = source.max_seq_length
    model.eval()
    return model
