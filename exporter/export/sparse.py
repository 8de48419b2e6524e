"""Building a sparse encoder (SPLADE: an MLM head + ``SpladePooling``): the checks before anything is written, the
torch model, its two fp32 graphs and the int8 rule's judge.

* ``graph: transformer`` is the Transformer module with its MLM head: inputs as the tokenizer gives them, output
  ``logits`` ``[batch, tokens, vocab]``, what ``SparseEncoder(path, backend="onnx"|"openvino")`` loads (optimum's
  ``ORTModelForMaskedLM`` / ``OVModelForMaskedLM`` read ``logits``); the pooling runs after it (in torch there, in
  numpy in ``exporter.runtime.sparse``).
* ``graph: sentence`` adds the SPLADE pooling the model's ``SpladePooling`` config names (``log1p(activation(logits
  · mask))``, max or sum over the tokens) and outputs ``sentence_embedding`` ``[batch, vocab]``, for runtimes that
  only run a graph.

Inference-free layouts (``Router`` + ``SparseStaticEmbedding``: documents through a static term-weight table,
queries through the MLM) are refused, as the deploy-safety rules refuse ``Router``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from exporter.artifact.model_folder import modules, read_config, transformer_module_path
from exporter.errors import BadInputError
from exporter.export.graphs import GraphSpec, graph_inputs, sample_inputs
from exporter.export.variants import VariantBuilder
from exporter.recipe import LoadedRecipe, Variant
from exporter.validators.sparse import load_sparse_encoder

__all__ = ["SparseVariantBuilder", "check_sparse_source", "export_sparse_graph", "load_sparse_encoder"]

LOGITS_OUTPUT = "logits"
SPARSE_OUTPUT = "sentence_embedding"
SPARSE_GRAPHS = ("transformer", "sentence")
INFERENCE_FREE_MODULES = ("Router", "SparseStaticEmbedding", "SparseAutoEncoder")


def check_sparse_source(loaded: LoadedRecipe, variants: list[Variant], directory: Path) -> None:
    """Refuse, before anything is written, what cannot be built as a sparse encoder: an inference-free layout
    (``Router`` / ``SparseStaticEmbedding``), a Transformer without an MLM head, a pipeline that is not
    Transformer + ``SpladePooling``, and a graph other than ``transformer`` / ``sentence``. ``BadInputError`` naming
    the recipe line and field."""
    where = loaded.where(("model", "kind"))
    types = [str(entry.get("type", "")).rsplit(".", 1)[-1] for entry in modules(directory)]
    refused = [name for name in types if name in INFERENCE_FREE_MODULES]
    if refused:
        raise BadInputError(f"{where}: {directory}/modules.json: {' + '.join(refused)} (an inference-free sparse "
                            "layout) is not supported: only Transformer (fill-mask) + SpladePooling can be built")
    if types[-1:] != ["SpladePooling"] or len(types) != 2 or types[0] not in ("Transformer", "MLMTransformer"):
        raise BadInputError(f"{where}: {directory}/modules.json: modules {types or 'none'}: a sparse encoder is "
                            "built from Transformer (fill-mask) + SpladePooling")
    module_dir = directory / transformer_module_path(directory)
    architectures = read_config(module_dir / "config.json").get("architectures") or []
    if not any(str(name).endswith("ForMaskedLM") for name in architectures):
        raise BadInputError(f"{where}: {module_dir / 'config.json'}: architectures {architectures or 'none'}: a "
                            "sparse encoder needs a masked-language-model head (…ForMaskedLM): SpladePooling pools "
                            "its vocabulary logits")
    for index, variant in enumerate(loaded.recipe.variants):
        if variant in variants and variant.graph not in SPARSE_GRAPHS:
            raise BadInputError(f"{loaded.where(('variants', index, 'graph'))}: variant {variant.resolved_name!r}: "
                                f"graph: {variant.graph} is not a sparse encoder's graph (use "
                                f"{' or '.join(SPARSE_GRAPHS)})")
        quantization = variant.resolved_quantization
        if quantization is not None and quantization.exclude == "auto":
            raise BadInputError(f"{loaded.where(('variants', index, 'quantization', 'exclude'))}: variant "
                                f"{variant.resolved_name!r}: exclude: auto measures embedding metrics; a sparse "
                                "encoder's int8 uses the int8 rule (exclude: sensitive, the default) or a list")


# --- the graphs --------------------------------------------------------------------------------------------------


def _graph_modules(model, input_names: tuple[str, ...], graph: str):
    import torch

    splade = model[1]

    class MaskedLMGraph(torch.nn.Module):
        """The Transformer module with its MLM head: the logits of every token."""

        def __init__(self):
            super().__init__()
            self.transformer = model[0]

        def forward(self, *inputs):
            features = dict(zip(input_names, inputs, strict=True))
            return self.transformer(features)["token_embeddings"]

    class SpladeGraph(MaskedLMGraph):
        """MaskedLMGraph + the model's SpladePooling: ``[batch, vocab]``."""

        def forward(self, *inputs):
            logits = super().forward(*inputs)
            mask = inputs[input_names.index("attention_mask")].unsqueeze(-1).to(logits.dtype)
            values = torch.log1p(torch.relu(logits * mask))
            if splade.activation_function == "log1p_relu":
                values = torch.log1p(values)
            return values.amax(dim=1) if splade.pooling_strategy == "max" else values.sum(dim=1)

    return MaskedLMGraph() if graph == "transformer" else SpladeGraph()


def export_sparse_graph(model, graph: str, path: Path) -> GraphSpec:
    """Export ``graph`` (``transformer`` or ``sentence``) of a torch ``SparseEncoder`` to fp32 ONNX at ``path``:
    batch and token axes dynamic, the vocabulary axis declared."""
    import onnx
    import torch

    from exporter.export.onnx_backend import ONNX_OPSET, declare_static_dimension, save_onnx

    input_names = graph_inputs(model)
    inputs = sample_inputs(model, input_names)
    module = _graph_modules(model, input_names, graph)
    module.eval()
    output = LOGITS_OUTPUT if graph == "transformer" else SPARSE_OUTPUT
    dynamic_axes = {name: {0: "batch_size", 1: "sequence_length"} for name in input_names}
    dynamic_axes[output] = {0: "batch_size", 1: "sequence_length"} if graph == "transformer" else {0: "batch_size"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        raw_path = Path(scratch) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs, str(raw_path), input_names=list(input_names), output_names=[output],
                              dynamic_axes=dynamic_axes, opset_version=ONNX_OPSET, do_constant_folding=True,
                              dynamo=False)
            vocabulary = int(module(*inputs).shape[-1])
        proto = onnx.load(str(raw_path), load_external_data=True)
        declare_static_dimension(proto, output, axis=2 if graph == "transformer" else 1, size=vocabulary)
        save_onnx(proto, path)
    return GraphSpec(inputs=input_names, output=output)


class SparseVariantBuilder(VariantBuilder):
    """``VariantBuilder`` for a sparse encoder: its own fp32 graphs (``export_sparse_graph``) and an int8 judge
    that measures what a sparse index sees (``exporter.validators.sparse``: cosine, top-k terms)."""

    def fp32_graph(self, graph: str, optimize: str = "none", truncate_dim: int | None = None
                   ) -> tuple[Path, GraphSpec]:
        key = (graph, optimize, None)
        if key not in self._graphs and optimize == "none":
            path = self.scratch / f"sparse-{graph}" / "model.onnx"
            with self.progress.step(f"Exporting the sparse {graph} graph to ONNX"):
                self._graphs[key] = (path, export_sparse_graph(self.model, graph, path))
        return super().fp32_graph(graph, optimize)

    def search_setup(self, variant: Variant, spec: GraphSpec, thresholds, calibration):
        from exporter.export.calibration import calibration_texts
        from exporter.export.exclusion_search import SEARCH_TEXTS
        from exporter.export.variants import SEARCH_SEED
        from exporter.runtime.pooling import pipeline_after_transformer
        from exporter.validators.sparse import sparse_thresholds

        used = set(calibration.texts) if calibration is not None else set()
        pool = calibration_texts("builtin", SEARCH_TEXTS + len(used), SEARCH_SEED, self.recipe_dir).texts
        texts = [text for text in pool if text not in used][:SEARCH_TEXTS]
        steps = pipeline_after_transformer(self.folder) if variant.graph == "transformer" else []
        return self.calibration_feeds(texts, spec), steps, sparse_thresholds(variant.precision)

    def int8_judge(self, variant: Variant, spec: GraphSpec, thresholds, calibration, reference_run):
        from exporter.export.exclusion_search import sentence_embeddings

        feeds, steps, target = self.search_setup(variant, spec, thresholds, calibration)
        reference = sentence_embeddings(reference_run(feeds), feeds, steps)
        return SparseJudge(feeds=feeds, steps=steps, reference=reference, target=target)


class SparseJudge:
    """The int8 rule's judge for a sparse encoder (``int8_rule.Judge``): the candidate's sparse vectors of
    ``feeds`` against the fp32 graph's, passing when every gating sparse metric meets ``target``
    (``SparseThresholds``: the variant's precision's floors)."""

    def __init__(self, *, feeds: list[dict[str, np.ndarray]], steps: list, reference: np.ndarray, target) -> None:
        self.feeds, self.steps, self.reference, self.target = feeds, steps, reference, target

    def __call__(self, candidate):
        from exporter.export.exclusion_search import sentence_embeddings
        from exporter.export.int8_rule import Verdict
        from exporter.validators.sparse import sparse_metrics

        vectors = sentence_embeddings(candidate.run(self.feeds), self.feeds, self.steps)
        metrics = sparse_metrics(vectors, self.reference)
        slack = self.target.slack(metrics)
        worst = self.target.worst(metrics)
        shown = "n/a" if metrics.get(worst) is None else f"{metrics[worst]:.4f}"
        passes = slack >= 0
        summary = (f"{worst} {shown} {'>=' if passes else '<'} {self.target.required[worst]:.4f} on "
                   f"{len(self.feeds)} held-out texts")
        return Verdict(passes=passes, score=slack, summary=summary,
                       metrics={key: metrics.get(key) for key in self.target.required})
