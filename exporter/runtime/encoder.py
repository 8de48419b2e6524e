"""The deploy runtime: ``Encoder`` runs one variant of an artifact folder with plain ONNX Runtime or OpenVINO,
the folder's tokenizer (Rust ``tokenizers``) and numpy — no torch, transformers or sentence-transformers.

* ``graph: sentence`` variants run as they are (output ``sentence_embedding``);
* ``graph: transformer`` variants output token embeddings, followed by the model's own Pooling, Dense and
  Normalize computed in numpy from the folder's module configs (``exporter.runtime.pooling``).

Numerics are pinned to what was validated: the manifest's ``runtime_options`` (OpenVINO's
``INFERENCE_PRECISION_HINT``; ONNX Runtime's execution provider and graph optimisation level) are applied at
compile time, and artifacts that record none get f32 on CPU. Speed-only settings (threads, streams,
performance hints, the async queue) are free. ``encoder.settings`` says everything in force, read back
from the compiled model where the runtime can tell.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporter.artifact import model_folder
from exporter.constants import NATIVE_BF16_FLAGS, OPENVINO_NUMERICS
from exporter.errors import BadInputError, ExternalError, RuntimeUnavailableError, first_line
from exporter.runtime.pooling import has_normalize, l2_normalize, pipeline_after_transformer, run_steps, truncate
from exporter.runtime.tokenization import TextTokenizer

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest, Variant

SENTENCE_OUTPUT = "sentence_embedding"
TOKEN_OUTPUT = "last_hidden_state"
MODES = ("latency", "throughput")
DEVICES = ("auto", "cpu", "cuda", "gpu")
# Numerics for artifacts that record none: what every validation of this tool has used.
DEFAULT_NUMERICS = {
    "openvino": dict(OPENVINO_NUMERICS),
    "onnx": {"execution_provider": "CPUExecutionProvider", "graph_optimization_level": "ORT_ENABLE_ALL"},
}


def numerics_settings(variant: Variant) -> dict[str, str]:
    """The settings that change a variant's numerics: its manifest record, else the CPU defaults."""
    recorded = dict(variant.runtime_options)
    defaults = DEFAULT_NUMERICS.get(variant.backend, {})
    return {**defaults, **recorded}


def bf16_support(compiled_precision: str) -> str:
    """How a variant compiled with bf16 inference precision runs on this CPU: ``native`` (AVX512_BF16 or
    AMX-BF16), ``emulated`` (OpenVINO kept bf16 without the instructions: slow) or ``f32`` (it fell back)."""
    from exporter.runtime.host import cpu_flags

    if compiled_precision != "bf16":
        return "f32"
    return "native" if cpu_flags() & NATIVE_BF16_FLAGS else "emulated"


def torch_variant_error(name: str) -> BadInputError:
    """What ``exporter.load`` / the Encoder say about a torch variant: it is loaded by sentence-transformers."""
    return BadInputError(f"variant {name!r} is a torch variant (safetensors weights for sentence-transformers): the "
                         "deploy runtime (exporter.load, Encoder) runs onnx and openvino variants only; load it with "
                         f"exporter.load_sentence_transformer(..., variant={name!r})")


def physical_cores() -> int:
    """Cores this process may use (the affinity mask, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Encoder:
    """One variant of an artifact folder, ready to encode texts like ``SentenceTransformer.encode``.

    Build it with ``exporter.load(...)`` (which fetches and verifies) or directly from a verified folder.
    An Encoder may be shared across threads: calls are serialised by a lock (ONNX Runtime sessions and
    OpenVINO infer requests are not re-entrant), so for parallel throughput use ``mode="throughput"``, which
    runs the batches of one call concurrently inside the runtime.
    """

    def __init__(self, folder: str | os.PathLike, manifest: Manifest, variant: Variant, *, device: str = "auto",
                 mode: str = "latency", threads: int | None = None):
        if mode not in MODES:
            raise BadInputError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if device not in DEVICES:
            raise BadInputError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
        if variant.backend == "torch":
            raise torch_variant_error(variant.name)
        self.folder = Path(folder)
        self.manifest = manifest
        self.variant = variant
        self.mode = mode
        self._lock = threading.Lock()
        self.tokens_encoded = 0  # tokens (truncated, unpadded) of every text encoded so far: throughput figures
        self.tokenizer = TextTokenizer(self.folder, model_folder.max_seq_length(self.folder, manifest))
        self.max_seq_length = self.tokenizer.max_length  # the folder's, else the tokenizer's fallback rule
        self.steps = pipeline_after_transformer(self.folder) if variant.graph == "transformer" else []
        # Matryoshka: a sentence graph outputs the truncated embedding itself; after pooling it is applied here
        self.truncate_dim = variant.truncate_dim if variant.graph == "transformer" else None
        self.renormalize = self.truncate_dim is not None and has_normalize(self.folder)
        self.prompts, self.default_prompt_name = _prompts(self.folder)
        if not variant.inputs:
            raise BadInputError(f"variant {variant.name!r}: the manifest lists no graph inputs")
        numerics = numerics_settings(variant)
        runtime_device = "cpu" if device == "auto" else device
        path = self.folder / variant.file_name
        if variant.backend == "onnx":
            self.session: _Session = _OnnxSession(path, variant, numerics, runtime_device, mode, threads)
        elif variant.backend == "openvino":
            self.session = _OpenVinoSession(path, variant, numerics, runtime_device, mode, threads)
        else:
            raise BadInputError(f"variant {variant.name!r}: unknown backend {variant.backend!r}")
        self.settings: dict[str, Any] = {
            "variant": variant.name, "backend": variant.backend, "precision": variant.precision,
            "graph": variant.graph, "file_name": variant.file_name, "device": runtime_device,
            "validated_device": "cpu", "validated": runtime_device == "cpu",
            "numerics": numerics, "numerics_source": "manifest" if variant.runtime_options else "default (f32 on CPU)",
            "speed": self.session.speed_settings, "mode": mode,
            "tokenizer": "tokenizers", "max_seq_length": self.max_seq_length, "padding": "longest",
            "batch_order": "token_count",
            "lower_case": self.tokenizer.lower_case, "strip": True,
            "pipeline": [type(step).__name__ for step in self.steps] or ["in the graph"],
            "truncate_dim": variant.truncate_dim,
        }
        self.settings.update(self.session.read_back)

    # -- what the model is --------------------------------------------------------------------------

    @property
    def dimension(self) -> int | None:
        return self.variant.dimension(self.manifest.source.dimension)

    def __repr__(self) -> str:
        return f"Encoder({str(self.folder)!r}, variant={self.variant.name!r}, device={self.settings['device']!r})"

    # -- encoding -----------------------------------------------------------------------------------

    def encode(self, texts: str | Sequence[str], batch_size: int = 32, prompt_name: str | None = None,
               prompt: str | None = None, normalize_embeddings: bool | None = None,
               show_progress_bar: bool = False) -> np.ndarray:
        """Embeddings of ``texts`` as float32 ``(n, dim)`` (a single string gives ``(dim,)``), in input order.

        ``prompt_name`` picks one of the model's prompts (``config_sentence_transformers.json``), ``prompt``
        gives one directly; without either the model's default prompt applies, if it has one.
        ``normalize_embeddings=True`` L2-normalises the result (models with a Normalize module already are).
        """
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if any(not isinstance(text, str) for text in items):
            raise BadInputError("texts: expected a string or a list of strings")
        if batch_size < 1:
            raise BadInputError(f"batch_size {batch_size}: expected at least 1")
        chosen = self._prompt(prompt_name, prompt)
        prompt_length = self.tokenizer.prompt_length(chosen) if chosen else None
        if chosen:
            items = [chosen + text for text in items]
        # Batches of texts of similar token counts: padding (compute spent on nothing) stays small. Sorting by
        # characters, as sentence-transformers does, leaves batches of short texts padded to 2x their tokens.
        encodings = self.tokenizer.encode(items)
        self.tokens_encoded += sum(len(encoding.ids) for encoding in encodings)
        order = np.argsort([-len(encoding.ids) for encoding in encodings], kind="stable")
        with self._lock:
            feeds = [self._feeds([encodings[i] for i in order[start:start + batch_size]])
                     for start in range(0, len(items), batch_size)]
            outputs = self.session.run_all(feeds, _progress(show_progress_bar, len(feeds)))
        embeddings = [self._finish(output, feed["attention_mask"], prompt_length)
                      for output, feed in zip(outputs, feeds, strict=True)]
        if not embeddings:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        result = np.concatenate(embeddings)[np.argsort(order, kind="stable")]
        result = truncate(result, self.truncate_dim, self.renormalize)
        if normalize_embeddings:
            result = l2_normalize(result)
        result = result.astype(np.float32, copy=False)
        return result[0] if single else result

    def encode_query(self, texts: str | Sequence[str], **options: Any) -> np.ndarray:
        """``encode`` with the model's ``query`` prompt."""
        return self.encode(texts, prompt_name=self._named_prompt("query"), **options)

    def encode_document(self, texts: str | Sequence[str], **options: Any) -> np.ndarray:
        """``encode`` with the model's ``document`` (or ``passage``) prompt."""
        name = "document" if "document" in self.prompts else "passage"
        return self.encode(texts, prompt_name=self._named_prompt(name), **options)

    def _named_prompt(self, name: str) -> str:
        if name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise BadInputError(f"{self.folder}: the model defines no {name!r} prompt (prompts: {known})")
        return name

    def _prompt(self, prompt_name: str | None, prompt: str | None) -> str | None:
        if prompt is not None:
            return prompt
        name = prompt_name or self.default_prompt_name
        if name is None:
            return None
        if name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise BadInputError(f"prompt_name {name!r}: not one of the model's prompts ({known})")
        return self.prompts[name]

    def _feeds(self, batch: list[Any]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer.pad(batch)
        missing = [name for name in self.variant.inputs if name not in encoded]
        if missing:
            raise BadInputError(f"variant {self.variant.name!r}: the graph takes {missing}, which the tokenizer "
                                "does not produce")
        return {name: encoded[name] for name in self.variant.inputs}

    def _finish(self, output: np.ndarray, attention_mask: np.ndarray, prompt_length: int | None) -> np.ndarray:
        return run_steps(self.steps, output, attention_mask, prompt_length)


def _prompts(folder: Path) -> tuple[dict[str, str], str | None]:
    return model_folder.prompts(folder)


def _progress(show: bool, total: int) -> Callable[[], None]:
    if not show or total < 2:
        return lambda: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("Encoding", total=total)
    bar.start()

    def advance() -> None:
        bar.advance(task)
        if bar.finished:
            bar.stop()

    return advance


# --- runtimes -------------------------------------------------------------------------------------


class _Session:
    speed_settings: dict[str, Any]
    read_back: dict[str, Any]

    def run_all(self, feeds: list[dict[str, np.ndarray]], advance: Callable[[], None]) -> list[np.ndarray]:
        raise NotImplementedError


def _output_name(variant: Variant) -> str:
    return variant.output or (SENTENCE_OUTPUT if variant.graph == "sentence" else TOKEN_OUTPUT)


class _OnnxSession(_Session):
    def __init__(self, path: Path, variant: Variant, numerics: dict[str, str], device: str, mode: str,
                 threads: int | None):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise RuntimeUnavailableError(f"variant {variant.name}: onnxruntime is not installed ({error})",
                                          fix='pip install "embedding-exporter[onnx]"') from None
        options = ort.SessionOptions()
        level = numerics.get("graph_optimization_level", "ORT_ENABLE_ALL")
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level,
                                                   ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        cores = threads or physical_cores()
        options.intra_op_num_threads = cores
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        provider = numerics.get("execution_provider", "CPUExecutionProvider")
        if device == "cuda":
            provider = "CUDAExecutionProvider"
        if provider not in ort.get_available_providers():
            raise RuntimeUnavailableError(f"variant {variant.name}: onnxruntime here has no {provider} "
                                          f"(available: {', '.join(ort.get_available_providers())})",
                                          fix="pip install onnxruntime-gpu" if device == "cuda" else None)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=[provider])
        except Exception as error:  # noqa: BLE001 - a graph the runtime rejects: one line
            raise ExternalError(f"{path}: onnxruntime cannot load it: {first_line(error)}") from None
        self.output = _output_name(variant)
        self.speed_settings = {"intra_op_num_threads": cores, "inter_op_num_threads": 1, "execution_mode": "sequential"}
        self.read_back = {"providers": self.session.get_providers()}

    def run_all(self, feeds: list[dict[str, np.ndarray]], advance: Callable[[], None]) -> list[np.ndarray]:
        outputs = []
        for feed in feeds:
            outputs.append(self.session.run([self.output], feed)[0])
            advance()
        return outputs


class _OpenVinoSession(_Session):
    def __init__(self, path: Path, variant: Variant, numerics: dict[str, str], device: str, mode: str,
                 threads: int | None):
        try:
            import openvino as ov
        except ImportError as error:
            raise RuntimeUnavailableError(f"variant {variant.name}: openvino is not installed ({error})",
                                          fix='pip install "embedding-exporter[openvino]"') from None
        ov_device = "GPU" if device in ("gpu", "cuda") else "CPU"
        config: dict[str, Any] = dict(numerics)
        speed: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT" if mode == "throughput" else "LATENCY"}
        if threads:
            speed["INFERENCE_NUM_THREADS"] = threads
        config.update(speed)
        try:
            self.compiled = ov.Core().compile_model(str(path), ov_device, config)
        except Exception as error:  # noqa: BLE001 - a graph or device the runtime rejects: one line
            raise ExternalError(f"{path}: OpenVINO cannot compile it for {ov_device}: {first_line(error)}") from None
        self.output = self.compiled.output(_output_name(variant))
        self.mode = mode
        self.request = self.compiled.create_infer_request()
        self.queue = None
        if mode == "throughput":
            self.queue = ov.AsyncInferQueue(self.compiled, int(self.compiled.get_property(
                "OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.speed_settings = speed
        compiled_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.read_back = {
            "compiled_inference_precision": compiled_precision,
            "compiled_num_threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "compiled_num_streams": int(self.compiled.get_property("NUM_STREAMS")),
            "openvino_device": ov_device,
        }
        if ov_device == "CPU" and numerics.get("INFERENCE_PRECISION_HINT") == "bf16":
            self.read_back["bf16"] = bf16_support(compiled_precision)

    def run_all(self, feeds: list[dict[str, np.ndarray]], advance: Callable[[], None]) -> list[np.ndarray]:
        if self.queue is None or len(feeds) < 2:
            outputs = []
            for feed in feeds:
                outputs.append(self.request.infer(feed)[self.output].copy())
                advance()
            return outputs
        results: list[np.ndarray | None] = [None] * len(feeds)

        def done(request, index: int) -> None:
            results[index] = request.get_output_tensor(self.output.index).data.copy()
            advance()

        self.queue.set_callback(done)
        for index, feed in enumerate(feeds):
            self.queue.start_async(feed, index)
        self.queue.wait_all()
        return results  # type: ignore[return-value]


def choose_variant(manifest: Manifest, variant: str | Variant | None) -> Variant:
    """The manifest entry ``variant`` names (a name or an entry); default: the first validated one, else the first."""
    if variant is None:
        return next((v for v in manifest.variants if v.validated), None) or manifest.variants[0]
    return manifest.variant(variant) if isinstance(variant, str) else variant


def load_encoder(folder: str | os.PathLike, variant: str | Variant | None = None, *, manifest: Manifest | None = None,
                 device: str = "auto", mode: str = "latency", threads: int | None = None) -> Encoder:
    """An Encoder for ``variant`` (a name or manifest entry; default: the first validated one) of the verified
    artifact folder ``folder``. Use ``exporter.load`` to fetch and verify first."""
    from exporter.artifact.manifest import read_manifest

    manifest = manifest or read_manifest(folder)
    chosen = choose_variant(manifest, variant)
    return Encoder(folder, manifest, chosen, device=device, mode=mode, threads=threads)
