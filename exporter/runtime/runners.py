"""The one way to load and encode a variant, shared by validate, bench, doctor and ``fetch --check``.

A variant runs the way its users run it:

* ``graph: transformer`` through ``SentenceTransformer(folder, backend=..., model_kwargs={"file_name": ...})``,
  so the artifact folder's own sentence-transformers configs (pooling, Dense, Normalize) are part of what
  is measured;
* ``graph: sentence`` through plain ``onnxruntime.InferenceSession`` / ``openvino.Core().compile_model``
  fed by the folder's tokenizer, tokenised as sentence-transformers does (texts stripped, lower-cased when
  the model says so, truncated at max_seq_length, padded to the longest text of the batch), with the
  input names the manifest lists and the ``sentence_embedding`` output;
* the torch source model (bench's and the validator's reference) through ``SentenceTransformer`` too.

Numerics are pinned: the variant's ``runtime_options`` from the manifest (OpenVINO's
``INFERENCE_PRECISION_HINT``) are passed at compile time, and OpenVINO variants without them run f32 on
CPU; otherwise CPUs with AVX512_BF16 or AMX would run "fp32" variants in bf16. Thread counts only change
speed. ``runner.settings`` says what was in force.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from exporter.artifact import model_folder
from exporter.errors import BadInputError, ExporterError, ExternalError, first_line

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest, Variant

SENTENCE_OUTPUT = "sentence_embedding"
# What OpenVINO variants run with when their manifest entry records no runtime_options (older artifacts).
DEFAULT_OPENVINO_OPTIONS = {"INFERENCE_PRECISION_HINT": "f32"}
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class RunSpec:
    """What to run: plain data (a memory-measuring child process rebuilds it from a dict)."""

    name: str
    backend: str  # torch | onnx | openvino
    graph: str  # transformer | sentence
    folder: str
    file_name: str | None = None
    inputs: tuple[str, ...] = ()
    output: str | None = None
    max_seq_length: int | None = None
    runtime_options: dict[str, str] = field(default_factory=dict)
    trust_remote_code: bool = False

    @classmethod
    def for_variant(cls, folder: Path, manifest: Manifest, variant: Variant, *,
                    trust_remote_code: bool = False) -> RunSpec:
        """A manifest variant of the artifact in ``folder``, with the numerics settings it was validated with."""
        if variant.backend not in ("onnx", "openvino"):
            raise BadInputError(f"variant {variant.name!r}: unknown backend {variant.backend!r} in the manifest")
        if variant.graph not in ("transformer", "sentence"):
            raise BadInputError(f"variant {variant.name!r}: unknown graph {variant.graph!r} in the manifest")
        options = dict(variant.runtime_options)
        if variant.backend == "openvino" and not options:
            options = dict(DEFAULT_OPENVINO_OPTIONS)
        return cls(name=variant.name, backend=variant.backend, graph=variant.graph, folder=str(folder),
                   file_name=variant.file_name, inputs=tuple(variant.inputs), output=variant.output,
                   max_seq_length=model_folder.max_seq_length(folder, manifest), runtime_options=options,
                   trust_remote_code=trust_remote_code)

    @classmethod
    def for_torch(cls, directory: Path, manifest: Manifest | None = None, *, trust_remote_code: bool = False) -> RunSpec:
        """The torch source model, with the artifact's max_seq_length (which carries a recipe override)."""
        length = manifest.source.max_seq_length if manifest is not None else None
        return cls(name="torch", backend="torch", graph="transformer", folder=str(directory), max_seq_length=length,
                   trust_remote_code=trust_remote_code)

    def to_dict(self) -> dict[str, Any]:
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**{**data, "inputs": tuple(data.get("inputs") or ())})


class VariantRunner(Protocol):
    """Encodes texts into float32 embeddings ``[len(texts), dim]``, in input order."""

    settings: dict[str, Any]

    def encode(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray: ...


# --- runtime settings -----------------------------------------------------------------------------


def ort_session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def _ort_settings(options, providers: list[str] | None = None) -> dict[str, Any]:
    return {"intra_op_num_threads": options.intra_op_num_threads, "inter_op_num_threads": options.inter_op_num_threads,
            "graph_optimization_level": str(options.graph_optimization_level).split(".")[-1],
            "providers": providers or ["CPUExecutionProvider"]}


def openvino_config(spec: RunSpec, threads: int | None) -> dict[str, Any]:
    """The compile-time config: the variant's numerics settings, plus speed-only settings."""
    config: dict[str, Any] = dict(spec.runtime_options)
    if threads:
        config.update({"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    return config


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence the libraries' load-time chatter (optimum's 'could not infer ... export' and the like)."""
    # transformers and optimum set their root logger's level when first used: have that happen first.
    with contextlib.suppress(Exception):
        from transformers.utils import logging as transformers_logging

        transformers_logging.get_logger("transformers")
    with contextlib.suppress(Exception):
        from optimum.utils import logging as optimum_logging

        optimum_logging.get_logger("optimum")
    loggers = [logging.getLogger(name) for name in ("optimum", "transformers", "sentence_transformers", "nncf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# --- runners --------------------------------------------------------------------------------------


class SentenceTransformerRunner:
    """torch, or an ONNX / OpenVINO transformer graph, through ``SentenceTransformer.encode``."""

    def __init__(self, spec: RunSpec, threads: int | None = None):
        from sentence_transformers import SentenceTransformer

        self.settings: dict[str, Any] = {"loader": "sentence-transformers", "device": "cpu"}
        kwargs: dict[str, Any] = {}
        if spec.backend == "onnx":
            options = ort_session_options(threads)
            kwargs = {"file_name": spec.file_name, "provider": "CPUExecutionProvider", "session_options": options}
            self.settings.update(_ort_settings(options))
        elif spec.backend == "openvino":
            config = openvino_config(spec, threads)
            kwargs = {"file_name": spec.file_name, "ov_config": config}
            self.settings.update(config)
        elif spec.backend != "torch":
            raise BadInputError(f"{spec.name}: unknown backend {spec.backend!r}")
        self.model = SentenceTransformer(spec.folder, device="cpu", backend=spec.backend, local_files_only=True,
                                         trust_remote_code=spec.trust_remote_code, model_kwargs=kwargs or None)
        if spec.backend == "torch":
            import torch

            if spec.max_seq_length:
                self.model.max_seq_length = spec.max_seq_length
            config = getattr(self.model[0].auto_model, "config", None)
            self.settings.update({"torch_num_threads": torch.get_num_threads(), "dtype": "float32",
                                  "attn_implementation": getattr(config, "_attn_implementation", None)})
        self.model.eval()
        self.settings["max_seq_length"] = self.model.max_seq_length

    def encode(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        embeddings = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(embeddings)


class PlainRunner:
    """A ``graph: sentence`` variant in plain onnxruntime / OpenVINO on CPU, tokenised like sentence-transformers."""

    def __init__(self, spec: RunSpec, threads: int | None = None):
        from transformers import AutoTokenizer

        folder = Path(spec.folder)
        if not spec.inputs:
            raise BadInputError(f"variant {spec.name!r}: the manifest lists no graph inputs")
        transformer_dir = folder / model_folder.transformer_module_path(folder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir), local_files_only=True)
        except Exception as error:  # noqa: BLE001 - any failure means the folder has no usable tokenizer
            raise BadInputError(f"{folder}: cannot load the tokenizer: {first_line(error)}") from None
        self.lower_case = model_folder.do_lower_case(folder)
        self.max_length = spec.max_seq_length or min(int(self.tokenizer.model_max_length), 512)
        self.inputs = list(spec.inputs)
        self.output = spec.output or SENTENCE_OUTPUT
        path = str(folder / str(spec.file_name))
        self.settings: dict[str, Any] = {"loader": "plain", "device": "cpu", "max_seq_length": self.max_length}
        if spec.backend == "onnx":
            import onnxruntime as ort

            options = ort_session_options(threads)
            session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
            self.settings.update(_ort_settings(options, session.get_providers()))
            self._run = lambda feeds: session.run([self.output], feeds)[0]
        elif spec.backend == "openvino":
            import openvino as ov

            config = openvino_config(spec, threads)
            compiled = ov.Core().compile_model(path, "CPU", config)
            request = compiled.create_infer_request()
            self.settings.update(config)
            self.settings["compiled_inference_precision"] = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
            self.settings["compiled_num_threads"] = int(compiled.get_property("INFERENCE_NUM_THREADS"))
            self._run = lambda feeds: request.infer(feeds)[self.output].copy()
        else:
            raise BadInputError(f"{spec.name}: unknown backend {spec.backend!r}")

    def feeds(self, texts: list[str]) -> dict[str, np.ndarray]:
        batch = [text.strip() for text in texts]
        if self.lower_case:
            batch = [text.lower() for text in batch]
        encoded = self.tokenizer(batch, padding=True, truncation="longest_first", max_length=self.max_length,
                                 return_tensors="np")
        missing = [name for name in self.inputs if name not in encoded]
        if missing:
            raise ValueError(f"the tokenizer does not produce the graph inputs {missing}")
        return {name: np.asarray(encoded[name], dtype=np.int64) for name in self.inputs}

    def encode(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Batches formed by length (as sentence-transformers does); the result keeps input order."""
        order = np.argsort([-len(text) for text in texts], kind="stable")
        outputs = [self._run(self.feeds([texts[i] for i in order[start : start + batch_size]]))
                   for start in range(0, len(texts), batch_size)]
        embeddings = np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)
        return embeddings[np.argsort(order, kind="stable")]


def load_runner(spec: RunSpec, *, threads: int | None = None) -> VariantRunner:
    """Load ``spec``. A runtime that fails to load it is an ``ExternalError`` naming it; bad manifest data a
    ``BadInputError``."""
    try:
        with quiet_loading():
            if spec.graph == "sentence":
                return PlainRunner(spec, threads)
            return SentenceTransformerRunner(spec, threads)
    except ExporterError:
        raise
    except Exception as error:  # noqa: BLE001 - any runtime failure to load is reported as one line
        what = f"torch model {spec.folder}" if spec.backend == "torch" else f"{spec.name} ({spec.file_name})"
        raise ExternalError(f"{what}: {spec.backend} could not load it: {first_line(error)}") from None


def load_tokenizer(folder: Path):
    """The artifact folder's tokenizer (its Transformer module's, as sentence-transformers loads it)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    try:
        return AutoTokenizer.from_pretrained(str(folder / model_folder.transformer_module_path(folder)),
                                             local_files_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means the folder has no usable tokenizer
        raise BadInputError(f"{folder}: cannot load the tokenizer: {first_line(error)}") from None
