"""Building one variant from the fp32 ONNX graph: optimise → convert → fp16 / int8.

``VariantBuilder`` holds what variants share within one run (the source model, the fp32 graphs, optimised
graphs, calibration samples), so nothing is computed twice; ``build`` writes one variant's files and
returns what the manifest records about how they were made.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporter.artifact.manifest import CalibrationRecord, QuantizationRecord
from exporter.constants import openvino_numerics
from exporter.export.calibration import CalibrationTexts, calibration_texts
from exporter.export.graphs import GraphSpec, tokenize
from exporter.export.onnx_backend import (
    DYNAMIC_OP_TYPES,
    STATIC_OP_TYPES,
    copy_onnx,
    export_onnx_graph,
    onnx_files,
    onnx_fp16_weights,
    optimize_onnx,
    quantize_onnx_dynamic,
    quantize_onnx_static,
)
from exporter.export.openvino_backend import (
    compress_openvino_weights,
    quantize_openvino_static,
    read_onnx_as_openvino,
    save_openvino,
)
from exporter.progress import Progress
from exporter.recipe import Calibration, Variant
from exporter.runtime.host import detect_isa
from exporter.validators.thresholds import Thresholds

SEARCH_SEED = 1_000_003  # the held-out sample exclude: auto measures on (a seed no calibration default uses)


@dataclass
class BuiltFiles:
    """A variant's files (absolute paths) and how they were made, as the manifest records it."""

    files: list[Path]
    spec: GraphSpec
    optimize: str = "none"
    quantization: QuantizationRecord | None = None
    calibration: CalibrationRecord | None = None
    runtime_options: dict[str, str] = field(default_factory=dict)


class VariantBuilder:
    """Builds variants of one source model, sharing intermediate graphs and calibration data."""

    def __init__(self, model, recipe_dir: Path, scratch: Path, progress: Progress, folder: Path | None = None,
                 isa: str | None = None):
        self.model = model
        self.recipe_dir = recipe_dir
        self.scratch = scratch
        self.progress = progress
        self.folder = folder  # the artifact folder being built: its module configs pool transformer graphs
        self.isa = isa  # what ``isa: auto`` resolves to (a shard carries its plan's); None: this host's
        self._graphs: dict[tuple[str, str, int | None], tuple[Path, GraphSpec]] = {}
        self._calibration: dict[tuple, CalibrationTexts] = {}

    # -- shared intermediate results ------------------------------------------------------------------

    def fp32_graph(self, graph: str, optimize: str = "none", truncate_dim: int | None = None
                   ) -> tuple[Path, GraphSpec]:
        """The fp32 ONNX graph of this kind, optimised at ``optimize`` level; built once per run. ``truncate_dim``
        slices a sentence graph's output (a transformer graph is the same at every truncation)."""
        truncate_dim = truncate_dim if graph == "sentence" else None
        key = (graph, optimize, truncate_dim)
        folder = self.scratch / (graph if truncate_dim is None else f"{graph}-dim{truncate_dim}")
        if key not in self._graphs:
            if optimize == "none":
                path = folder / "model.onnx"
                what = f"the {graph} graph" + (f" (truncated to {truncate_dim})" if truncate_dim else "")
                with self.progress.step(f"Exporting {what} to ONNX"):
                    self._graphs[key] = (path, self.export_graph(graph, path, truncate_dim))
            else:
                source, spec = self.fp32_graph(graph, truncate_dim=truncate_dim)
                path = folder / f"model_{optimize}.onnx"
                config = self.model[0].auto_model.config
                with self.progress.step(f"Optimising the {graph} graph ({optimize})"):
                    optimize_onnx(source, path, optimize, config.model_type, *_heads_and_hidden_size(config))
                self._graphs[key] = (path, spec)
        return self._graphs[key]

    def export_graph(self, graph: str, path: Path, truncate_dim: int | None) -> GraphSpec:
        """The fp32 ONNX export of ``graph`` (a builder for another kind of model overrides it)."""
        return export_onnx_graph(self.model, graph, path, truncate_dim)

    def calibration(self, settings: Calibration) -> CalibrationTexts:
        key = (settings.corpus, settings.column, settings.samples, settings.seed)
        if key not in self._calibration:
            self._calibration[key] = calibration_texts(
                settings.corpus, settings.samples, settings.seed, self.recipe_dir, settings.column
            )
        return self._calibration[key]

    def calibration_feeds(self, texts: list[str], spec: GraphSpec) -> list[dict[str, np.ndarray]]:
        """One tokenised text per sample, truncated like the model truncates: lengths vary as in real use."""
        feeds = []
        for text in texts:
            features = tokenize(self.model, [text])
            feeds.append({name: features[name].numpy().astype(np.int64) for name in spec.inputs})
        return feeds

    def search_setup(self, variant: Variant, spec: GraphSpec, thresholds: Thresholds | None,
                     calibration: CalibrationTexts | None):
        """(search feeds, pooling steps, target) for ``exclude: auto``: held-out builtin texts (none of the
        calibration sample), the model's modules after the Transformer, the variant's thresholds tightened."""
        from exporter.export.exclusion_search import SEARCH_TEXTS, SearchTarget
        from exporter.runtime.pooling import pipeline_after_transformer
        from exporter.validators.thresholds import default_thresholds

        if self.folder is None:
            raise ValueError("exclude: auto needs the artifact folder (VariantBuilder(folder=...))")
        used = set(calibration.texts) if calibration is not None else set()
        pool = calibration_texts("builtin", SEARCH_TEXTS + len(used), SEARCH_SEED, self.recipe_dir).texts
        texts = [text for text in pool if text not in used][:SEARCH_TEXTS]
        steps = pipeline_after_transformer(self.folder) if variant.graph == "transformer" else []
        target = SearchTarget.from_thresholds(thresholds or default_thresholds(variant.precision))
        return self.calibration_feeds(texts, spec), steps, target

    def _record_search(self, variant: Variant, record: QuantizationRecord, result, target) -> None:
        """The search's result into the manifest record, and one log line with the ``exclude:`` to pin."""
        from exporter.artifact.manifest import ExclusionSearchRecord

        verdict = "met" if result.met else "NOT met (validation will judge it)"
        record.exclude = result.exclude_patterns()
        record.exclude_requested = "auto"
        record.search = ExclusionSearchRecord(
            method=result.method, kept_float=result.kept_float, target=target.thresholds, measured=result.metrics,
            met=result.met, trials=result.trials, texts=result.texts, seconds=round(result.seconds, 1),
            reason=f"the fewest MatMuls in float for which the int8 graph meets {target.describe()} against the "
                   f"fp32 graph on {result.texts} held-out texts (target {verdict})")
        shown = ", ".join(f"{key} {value:.4f}" for key, value in result.metrics.items() if value is not None)
        self.progress.log(f"{variant.resolved_name}: exclude: auto kept {len(result.kept_float)} MatMul(s) in float "
                          f"after {result.trials} trial(s) ({shown} on {result.texts} held-out texts; target "
                          f"{verdict}); to pin it: exclude: {json.dumps(record.exclude)}")

    # -- one variant ----------------------------------------------------------------------------------

    def build(self, variant: Variant, target: Path, thresholds: Thresholds | None = None,
              truncate_dim: int | None = None) -> BuiltFiles:
        """Write ``variant`` to ``target`` (its model file inside the staging folder). ``thresholds``: the ones
        it will be validated against (what ``exclude: auto`` must meet); ``truncate_dim``: the variant's
        Matryoshka truncation (sliced inside sentence graphs)."""
        if variant.backend == "torch":
            return BuiltFiles(files=self._build_torch(variant, target), spec=self.torch_spec())
        source, spec = self.fp32_graph(variant.graph, variant.optimize, truncate_dim)
        quantization = variant.resolved_quantization
        record = None
        calibration = None
        if quantization:
            chosen_later = isinstance(quantization.exclude, str)  # auto or sensitive: decided while building
            record = QuantizationRecord(**quantization.model_dump(exclude_none=True,
                                                                  exclude={"calibration", "exclude"}),
                                        exclude=[] if chosen_later else list(quantization.exclude))
            if quantization.isa == "auto":
                record.isa = self.isa or detect_isa()
                record.isa_requested = "auto"
        if quantization and quantization.method == "static":
            calibration = self.calibration(quantization.calibration)
        if variant.backend == "onnx":
            files = self._build_onnx(variant, source, spec, target, record, calibration, thresholds)
            runtime_options: dict[str, str] = {}
        else:
            runtime_options = openvino_numerics(variant.precision, quantization.float_precision if quantization
                                                else None)
            files = self._build_openvino(variant, source, spec, target, record, calibration, runtime_options,
                                         thresholds)
        return BuiltFiles(
            files=files, spec=spec, optimize=variant.optimize, quantization=record,
            calibration=CalibrationRecord(
                corpus=calibration.corpus, corpus_sha256=calibration.corpus_sha256,
                corpus_size=calibration.corpus_size, samples=calibration.samples, seed=calibration.seed,
            ) if calibration is not None else None,
            runtime_options=runtime_options,
        )

    def torch_spec(self) -> GraphSpec:
        from exporter.export.graphs import TRANSFORMER_OUTPUT, graph_inputs

        return GraphSpec(inputs=graph_inputs(self.model), output=TRANSFORMER_OUTPUT)

    def _build_torch(self, variant: Variant, target: Path) -> list[Path]:
        """The Transformer module's weights cast to the variant's dtype, saved by transformers itself with
        ``variant=<precision>`` (so the names, shards and index are the ones its loader looks for) and moved
        beside the module's config. The loaded model is not changed (the cast copies each tensor)."""
        import tempfile

        import torch

        from exporter.constants import TORCH_DTYPES
        from exporter.runtime.runners import quiet_loading

        dtype = getattr(torch, TORCH_DTYPES[variant.precision])
        auto_model = self.model[0].auto_model
        state = {key: tensor.detach().to(dtype) if tensor.is_floating_point() else tensor
                 for key, tensor in auto_model.state_dict().items()}
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="torch-variant-", dir=self.scratch) as scratch, quiet_loading():
            auto_model.save_pretrained(scratch, state_dict=state, variant=variant.precision, safe_serialization=True)
            files = []
            for path in sorted(Path(scratch).iterdir()):
                if path.name == "config.json" or path.name.startswith("generation_config"):
                    continue  # the shared config.json already describes the module
                destination = target.parent / path.name
                shutil.move(str(path), destination)
                files.append(destination)
        if target not in files:
            raise ValueError(f"transformers saved {[p.name for p in files]}, not {target.name}")
        return files

    def _build_onnx(self, variant: Variant, source: Path, spec: GraphSpec, target: Path,
                    record: QuantizationRecord | None, calibration: CalibrationTexts | None,
                    thresholds: Thresholds | None) -> list[Path]:
        target.parent.mkdir(parents=True, exist_ok=True)
        if variant.precision == "fp32":
            return copy_onnx(source, target)
        if variant.precision == "fp16":
            onnx_fp16_weights(source, target)
            return onnx_files(target)
        quantization = variant.resolved_quantization
        feeds = self.calibration_feeds(calibration.texts, spec) if quantization.method == "static" else []

        def quantize(path: Path, exclude: list[str]) -> None:
            if quantization.method == "dynamic":
                quantize_onnx_dynamic(source, path, record.isa, quantization.per_channel, exclude)
            else:
                quantize_onnx_static(source, path, feeds, quantization.per_channel, exclude)

        if quantization.exclude == "auto":
            from exporter.export.exclusion_search import onnx_search

            search_feeds, steps, search_target = self.search_setup(variant, spec, thresholds, calibration)
            op_types = DYNAMIC_OP_TYPES if quantization.method == "dynamic" else STATIC_OP_TYPES
            result = onnx_search(source, target, quantize, op_types, search_feeds, steps, search_target,
                                 self.progress)
            self._record_search(variant, record, result, search_target)
        elif quantization.exclude == "sensitive":
            self._onnx_rule(variant, source, spec, target, record, calibration, thresholds, feeds, quantize)
        else:
            quantize(target, quantization.exclude)
        return onnx_files(target)

    # -- the default int8 rule (exporter.export.int8_rule) --------------------------------------------------------

    def int8_judge(self, variant: Variant, spec: GraphSpec, thresholds: Thresholds | None,
                   calibration: CalibrationTexts | None, reference_run):
        """The judge the int8 rule asks (``int8_rule.Judge``): the embedding-parity judge on held-out texts.
        ``reference_run(feeds)`` runs the fp32 graph. A builder for another kind of model (reranker, sparse
        encoder) overrides this with its own metrics."""
        from exporter.export.exclusion_search import sentence_embeddings
        from exporter.export.int8_rule import EmbeddingJudge

        feeds, steps, target = self.search_setup(variant, spec, thresholds, calibration)
        reference = sentence_embeddings(reference_run(feeds), feeds, steps)
        return EmbeddingJudge(feeds=feeds, steps=steps, reference=reference, target=target)

    def _probe_feeds(self, spec: GraphSpec, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """The texts the rule's sensitivity pass runs: the calibration sample's, or (dynamic int8 has none) the
        builtin corpus's default sample."""
        from exporter.export.int8_rule import PROBE_SAMPLES

        if feeds:
            return feeds[:PROBE_SAMPLES]
        return self.calibration_feeds(calibration_texts("builtin", PROBE_SAMPLES, 0, self.recipe_dir).texts, spec)

    def _onnx_rule(self, variant: Variant, source: Path, spec: GraphSpec, target: Path, record: QuantizationRecord,
                   calibration: CalibrationTexts | None, thresholds: Thresholds | None,
                   feeds: list[dict[str, np.ndarray]], quantize) -> None:
        import time

        from exporter.export.exclusion_search import exact_patterns
        from exporter.export.int8_rule import Candidate, choose, matmul_sensitivity, onnx_runner, plan_attempts
        from exporter.export.onnx_backend import move_onnx

        started = time.perf_counter()
        scheme = f"onnx-{variant.resolved_quantization.method}"
        attempts_dir = self.scratch / f"int8-rule-{variant.resolved_name}"
        attempts_dir.mkdir(parents=True, exist_ok=True)
        sensitivities = matmul_sensitivity(source, self._probe_feeds(spec, feeds), scheme=scheme,
                                           scratch=attempts_dir)
        judge = self.int8_judge(variant, spec, thresholds, calibration, onnx_runner(source))
        paths: list[Path] = []

        def build(kept: list[str]) -> Candidate:
            path = attempts_dir / f"attempt-{len(paths) + 1}.onnx"
            quantize(path, exact_patterns(kept))
            paths.append(path)
            return Candidate(kept_float=kept, run=onnx_runner(path))

        result = choose(plan_attempts(sensitivities), build, judge, self.progress, candidates=len(sensitivities),
                        scheme=scheme, probe_seconds=time.perf_counter() - started)
        move_onnx(paths[result.chosen], target)
        shutil.rmtree(attempts_dir, ignore_errors=True)
        self._record_rule(variant, record, result, judge)

    def _openvino_rule(self, variant: Variant, ov_model, source: Path, spec: GraphSpec, record: QuantizationRecord,
                       calibration: CalibrationTexts, thresholds: Thresholds | None,
                       feeds: list[dict[str, np.ndarray]], smooth_quant: bool):
        import time

        from exporter.export.exclusion_search import exact_patterns
        from exporter.export.int8_rule import Candidate, choose, matmul_sensitivity, openvino_runner, plan_attempts

        started = time.perf_counter()
        scheme = "openvino-static" if smooth_quant else "openvino-static-unsmoothed"
        sensitivities = matmul_sensitivity(source, self._probe_feeds(spec, feeds), scheme=scheme,
                                           scratch=self.scratch)
        judge = self.int8_judge(variant, spec, thresholds, calibration, openvino_runner(ov_model, spec.output))
        always_float = self.openvino_float_ops(ov_model)
        models: list = []

        def build(kept: list[str]) -> Candidate:
            models.append(quantize_openvino_static(ov_model, feeds, exact_patterns(always_float + kept), smooth_quant))
            return Candidate(kept_float=kept, run=openvino_runner(models[-1], spec.output))

        result = choose(plan_attempts(sensitivities), build, judge, self.progress, candidates=len(sensitivities),
                        scheme=scheme, probe_seconds=time.perf_counter() - started)
        self._record_rule(variant, record, result, judge, always_float)
        return models[result.chosen]

    def openvino_float_ops(self, ov_model) -> list[str]:
        """Ops (friendly names) the int8 rule keeps in float in every OpenVINO attempt, beside the MatMuls it
        chooses: none for an embedding model; a reranker keeps its scoring head (``CrossVariantBuilder``)."""
        return []

    def _record_rule(self, variant: Variant, record: QuantizationRecord, result, judge,
                     always_float: list[str] = ()) -> None:
        """The rule's decision into the manifest record (as ``exclude: auto``'s) and one log line;
        ``always_float``: ops kept in float whatever the rule chose (``openvino_float_ops``), recorded in
        ``exclude`` too so that pinning the logged ``exclude:`` rebuilds the same graph."""
        import re

        from exporter.artifact.manifest import ExclusionSearchRecord
        from exporter.export.int8_rule import MAX_ATTEMPTS

        target = getattr(judge, "target", None)
        record.exclude = [re.escape(name) for name in [*always_float, *result.kept_float]]
        record.exclude_requested = "sensitive"
        record.search = ExclusionSearchRecord(
            method=f"int8 rule ({result.scheme}): MatMuls ordered by simulated int8 error, at most {MAX_ATTEMPTS} "
                   "quantisations, the first the judge accepts",
            kept_float=result.kept_float, reason=result.reason(),
            target=dict(target.thresholds) if target is not None else {}, measured=result.verdict.metrics,
            met=result.passed, trials=len(result.attempts), texts=len(getattr(judge, "feeds", [])) or None,
            seconds=round(result.seconds, 1), outcome=result.line(),
            attempts=[{"kept_float": len(attempt.kept_float), "accepted": attempt.verdict.passes,
                       "summary": attempt.verdict.summary, "seconds": round(attempt.seconds, 1)}
                      for attempt in result.attempts])
        kept = f"kept {len(result.kept_float)} of {result.candidates} MatMul(s) in float"
        if always_float:
            kept += f" (and the {len(always_float)} of the scoring head)"
        self.progress.log(f"{variant.resolved_name}: int8 rule {kept} (attempt {result.chosen + 1} of "
                          f"{len(result.attempts)}: {result.verdict.summary}); to pin it: exclude: "
                          f"{json.dumps(record.exclude)}")

    def _build_openvino(self, variant: Variant, source: Path, spec: GraphSpec, target: Path,
                        record: QuantizationRecord | None, calibration: CalibrationTexts | None,
                        runtime_options: dict[str, str], thresholds: Thresholds | None) -> list[Path]:
        ov_model = read_onnx_as_openvino(source)
        if variant.precision == "fp32":
            return save_openvino(ov_model, target, runtime_options=runtime_options)
        if variant.precision in ("fp16", "bf16"):
            # bf16: fp16 weights (half the file; their 11 significant bits cover bf16's 8), bf16 compute
            return save_openvino(ov_model, target, compress_to_fp16=True, runtime_options=runtime_options)
        quantization = variant.resolved_quantization
        if quantization.method == "static" and quantization.exclude == "auto":
            from exporter.export.exclusion_search import openvino_search

            feeds = self.calibration_feeds(calibration.texts, spec)
            search_feeds, steps, search_target = self.search_setup(variant, spec, thresholds, calibration)
            ov_model, result = openvino_search(ov_model, feeds, search_feeds, steps, spec.output, search_target,
                                               quantization.smooth_quant, self.progress)
            self._record_search(variant, record, result, search_target)
        elif quantization.method == "static" and quantization.exclude == "sensitive":
            feeds = self.calibration_feeds(calibration.texts, spec)
            ov_model = self._openvino_rule(variant, ov_model, source, spec, record, calibration, thresholds, feeds,
                                           quantization.smooth_quant)
        elif quantization.method == "static":
            feeds = self.calibration_feeds(calibration.texts, spec)
            ov_model = quantize_openvino_static(ov_model, feeds, quantization.exclude, quantization.smooth_quant)
        else:
            ov_model = compress_openvino_weights(ov_model, quantization.exclude)
        return save_openvino(ov_model, target, runtime_options=runtime_options)


def _heads_and_hidden_size(config) -> tuple[int, int]:
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    return int(heads), int(hidden)


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
