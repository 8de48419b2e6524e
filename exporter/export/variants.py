"""Building one variant from the fp32 ONNX graph: optimise → convert → fp16 / int8.

``VariantBuilder`` holds what variants share within one run (the source model, the fp32 graphs, optimised
graphs, calibration samples), so nothing is computed twice; ``build`` writes one variant's files and
returns what the manifest records about how they were made.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporter.artifact.manifest import CalibrationRecord, QuantizationRecord
from exporter.constants import openvino_numerics
from exporter.export.calibration import CalibrationTexts, calibration_texts
from exporter.export.graphs import GraphSpec, tokenize
from exporter.export.onnx_backend import (
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

    def __init__(self, model, recipe_dir: Path, scratch: Path, progress: Progress):
        self.model = model
        self.recipe_dir = recipe_dir
        self.scratch = scratch
        self.progress = progress
        self._graphs: dict[tuple[str, str], tuple[Path, GraphSpec]] = {}
        self._calibration: dict[tuple, CalibrationTexts] = {}

    # -- shared intermediate results ------------------------------------------------------------------

    def fp32_graph(self, graph: str, optimize: str = "none") -> tuple[Path, GraphSpec]:
        """The fp32 ONNX graph of this kind, optimised at ``optimize`` level; built once per run."""
        key = (graph, optimize)
        if key not in self._graphs:
            if optimize == "none":
                path = self.scratch / graph / "model.onnx"
                with self.progress.step(f"Exporting the {graph} graph to ONNX"):
                    self._graphs[key] = (path, export_onnx_graph(self.model, graph, path))
            else:
                source, spec = self.fp32_graph(graph)
                path = self.scratch / graph / f"model_{optimize}.onnx"
                config = self.model[0].auto_model.config
                with self.progress.step(f"Optimising the {graph} graph ({optimize})"):
                    optimize_onnx(source, path, optimize, config.model_type, *_heads_and_hidden_size(config))
                self._graphs[key] = (path, spec)
        return self._graphs[key]

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

    # -- one variant ----------------------------------------------------------------------------------

    def build(self, variant: Variant, target: Path) -> BuiltFiles:
        """Write ``variant`` to ``target`` (its model file inside the staging folder)."""
        source, spec = self.fp32_graph(variant.graph, variant.optimize)
        quantization = variant.resolved_quantization
        record = None
        calibration = None
        if quantization:
            record = QuantizationRecord(**quantization.model_dump(exclude_none=True, exclude={"calibration"}))
            if quantization.isa == "auto":
                record.isa = detect_isa()
                record.isa_requested = "auto"
        if quantization and quantization.method == "static":
            calibration = self.calibration(quantization.calibration)
        if variant.backend == "onnx":
            files = self._build_onnx(variant, source, spec, target, record, calibration)
            runtime_options: dict[str, str] = {}
        else:
            runtime_options = openvino_numerics(variant.precision)
            files = self._build_openvino(variant, source, spec, target, calibration, runtime_options)
        return BuiltFiles(
            files=files, spec=spec, optimize=variant.optimize, quantization=record,
            calibration=CalibrationRecord(
                corpus=calibration.corpus, corpus_sha256=calibration.corpus_sha256,
                corpus_size=calibration.corpus_size, samples=calibration.samples, seed=calibration.seed,
            ) if calibration is not None else None,
            runtime_options=runtime_options,
        )

    def _build_onnx(self, variant: Variant, source: Path, spec: GraphSpec, target: Path,
                    record: QuantizationRecord | None, calibration: CalibrationTexts | None) -> list[Path]:
        target.parent.mkdir(parents=True, exist_ok=True)
        if variant.precision == "fp32":
            return copy_onnx(source, target)
        if variant.precision == "fp16":
            onnx_fp16_weights(source, target)
            return onnx_files(target)
        quantization = variant.resolved_quantization
        if quantization.method == "dynamic":
            quantize_onnx_dynamic(source, target, record.isa, quantization.per_channel,
                                  quantization.exclude)
        else:
            feeds = self.calibration_feeds(calibration.texts, spec)
            quantize_onnx_static(source, target, feeds, quantization.per_channel, quantization.exclude)
        return onnx_files(target)

    def _build_openvino(self, variant: Variant, source: Path, spec: GraphSpec, target: Path,
                        calibration: CalibrationTexts | None, runtime_options: dict[str, str]) -> list[Path]:
        ov_model = read_onnx_as_openvino(source)
        if variant.precision == "fp32":
            return save_openvino(ov_model, target, runtime_options=runtime_options)
        if variant.precision in ("fp16", "bf16"):
            # bf16: fp16 weights (half the file; their 11 significant bits cover bf16's 8), bf16 compute
            return save_openvino(ov_model, target, compress_to_fp16=True, runtime_options=runtime_options)
        quantization = variant.resolved_quantization
        if quantization.method == "static":
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
