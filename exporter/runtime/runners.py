"""The one way to load and encode a model, shared by validate, bench, doctor and ``fetch --check``.

* Variants (``onnx`` / ``openvino``, either graph kind) run through the deploy runtime, ``exporter.runtime.
  encoder.Encoder``: plain ONNX Runtime / OpenVINO, the folder's tokenizer and numpy pooling, with the
  numerics settings the manifest records. What is validated and benchmarked is what deploy hosts run.
* ``loader="sentence-transformers"`` runs a ``graph: transformer`` variant the way the card's
  sentence-transformers snippet loads it (``SentenceTransformer(folder, backend=..., model_kwargs=...)``), for
  the validator's separate check of that path and for ``bench --via sentence-transformers``.
* The torch source model (the reference) always goes through ``SentenceTransformer``.

``runner.settings`` says what was in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from exporter.artifact import model_folder
from exporter.constants import BACKENDS, OPENVINO_NUMERICS, TORCH_DTYPES, TORCH_EXTRA
from exporter.errors import BadInputError, ExporterError, ExternalError, RuntimeUnavailableError, first_line
from exporter.progress import quiet_loading
from exporter.runtime.packages import BUILD_EXTRA

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest, Variant

SENTENCE_OUTPUT = "sentence_embedding"
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
    trust_remote_code: bool = False  # the caller's opt-in; a manifest's record of it is never obeyed
    precision: str | None = None
    loader: str = "encoder"  # encoder | sentence-transformers (torch always loads through sentence-transformers)
    truncate_dim: int | None = None  # Matryoshka: the first N dimensions (a sentence graph outputs them already)
    renormalize: bool = False  # L2-normalise after truncating (the model has a Normalize module)
    tokenizer_folder: str | None = None  # torch: tokenise with this model folder's tokenizer files (an artifact's)

    @classmethod
    def for_variant(cls, folder: Path, manifest: Manifest, variant: Variant, *,
                    trust_remote_code: bool = False) -> RunSpec:
        """A manifest variant of the artifact in ``folder``, with the numerics settings it was validated with."""
        if variant.backend not in BACKENDS:
            raise BadInputError(f"variant {variant.name!r}: unknown backend {variant.backend!r} in the manifest")
        if variant.graph not in ("transformer", "sentence"):
            raise BadInputError(f"variant {variant.name!r}: unknown graph {variant.graph!r} in the manifest")
        if variant.backend == "torch" and variant.precision not in TORCH_DTYPES:
            raise BadInputError(f"variant {variant.name!r}: torch precision {variant.precision!r} in the manifest "
                                f"(expected {' | '.join(TORCH_DTYPES)})")
        options = dict(variant.runtime_options)
        if variant.backend == "openvino" and not options:
            options = dict(OPENVINO_NUMERICS)
        truncate_dim = variant.truncate_dim if variant.graph == "transformer" else None
        from exporter.runtime.pooling import has_normalize

        return cls(name=variant.name, backend=variant.backend, graph=variant.graph, folder=str(folder),
                   file_name=variant.file_name, inputs=tuple(variant.inputs), output=variant.output,
                   max_seq_length=model_folder.max_seq_length(folder, manifest), runtime_options=options,
                   trust_remote_code=trust_remote_code, precision=variant.precision,
                   loader="sentence-transformers" if variant.backend == "torch" else "encoder",
                   truncate_dim=truncate_dim, renormalize=truncate_dim is not None and has_normalize(folder))

    def via(self, loader: str) -> RunSpec:
        """The same model through another loader (``encoder`` or ``sentence-transformers``; torch variants load
        through sentence-transformers only)."""
        from dataclasses import replace

        return replace(self, loader="sentence-transformers" if self.is_torch_variant else loader)

    @property
    def is_torch_variant(self) -> bool:
        """An artifact's torch variant (``model.<precision>.safetensors``), not the torch source model."""
        return self.backend == "torch" and self.file_name is not None

    @classmethod
    def for_torch(
        cls, directory: Path, manifest: Manifest | None = None, *, trust_remote_code: bool = False,
        tokenizer_folder: Path | None = None,
    ) -> RunSpec:
        """The torch source model, with the artifact's max_seq_length (which carries a recipe override) and,
        given ``tokenizer_folder``, the artifact's tokenizer (what every client of the artifact tokenises with)."""
        length = manifest.source.max_seq_length if manifest is not None else None
        return cls(name="torch", backend="torch", graph="transformer", folder=str(directory), max_seq_length=length,
                   trust_remote_code=trust_remote_code,
                   tokenizer_folder=str(tokenizer_folder) if tokenizer_folder is not None else None)

    def to_dict(self) -> dict[str, Any]:
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**{**data, "inputs": tuple(data.get("inputs") or ())})


class VariantRunner(Protocol):
    """Encodes texts into float32 embeddings ``[len(texts), dim]``, in input order."""

    settings: dict[str, Any]

    def encode(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE, prompt: str | None = None
               ) -> np.ndarray: ...


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


# --- runners --------------------------------------------------------------------------------------


class SentenceTransformerRunner:
    """torch, or an ONNX / OpenVINO transformer graph, through ``SentenceTransformer.encode``.

    sentence-transformers imports the module classes a folder's ``modules.json`` names (from a local folder
    even without ``trust_remote_code``): unless ``spec.trust_remote_code``, a folder naming custom classes is
    refused first, and an artifact folder holding code or pickles too (``exporter.artifact.safety``; a
    torch source model's weights may be ``pytorch_model.bin``)."""

    def __init__(self, spec: RunSpec, threads: int | None = None):
        if not spec.trust_remote_code:
            from exporter.artifact import safety

            if spec.backend == "torch" and not spec.is_torch_variant:
                safety.check_modules(Path(spec.folder) / safety.MODULES_FILE, subject="the source model")
            else:
                safety.check_folder(spec.folder)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:  # a deploy install: the deploy runtime (loader "encoder") still runs variants
            raise RuntimeUnavailableError(f"{spec.name}: sentence-transformers cannot be imported here "
                                          f"({first_line(error)}): {BUILD_EXTRA}", fix=BUILD_EXTRA) from None

        self.renormalize = spec.renormalize

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
        elif spec.is_torch_variant:
            kwargs = torch_model_kwargs(str(spec.precision))
        elif spec.backend != "torch":
            raise BadInputError(f"{spec.name}: unknown backend {spec.backend!r}")
        self.model = SentenceTransformer(spec.folder, device="cpu", backend=spec.backend, local_files_only=True,
                                         trust_remote_code=spec.trust_remote_code, model_kwargs=kwargs or None,
                                         truncate_dim=spec.truncate_dim)
        if spec.truncate_dim is None:
            self.model.truncate_dim = None  # a source model's own config value never truncates the reference
        self.settings["truncate_dim"] = spec.truncate_dim
        if spec.backend == "torch":
            import torch

            if spec.tokenizer_folder:
                use_folder_tokenizer(self.model, Path(spec.tokenizer_folder))
            if spec.max_seq_length:
                self.model.max_seq_length = spec.max_seq_length
            config = getattr(self.model[0].auto_model, "config", None)
            dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
            self.settings.update({"torch_num_threads": torch.get_num_threads(), "dtype": dtype,
                                  "attn_implementation": getattr(config, "_attn_implementation", None)})
        self.model.eval()
        self.settings["max_seq_length"] = self.model.max_seq_length

    def encode(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE, prompt: str | None = None
               ) -> np.ndarray:
        embeddings = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                                       normalize_embeddings=self.renormalize, prompt=prompt)
        return np.asarray(embeddings, dtype=np.float32)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The ids the model feeds its transformer for each text (its own tokenisation, truncated)."""
        rows: list[list[int]] = []
        for start in range(0, len(texts), DEFAULT_BATCH_SIZE):
            method = getattr(self.model, "preprocess", None) or self.model.tokenize  # preprocess: 5.7+
            features = method(list(texts[start:start + DEFAULT_BATCH_SIZE]))
            for ids, mask in zip(features["input_ids"].tolist(), features["attention_mask"].tolist(), strict=True):
                rows.append([token for token, keep in zip(ids, mask, strict=True) if keep])
        return rows


class EncoderRunner:
    """A variant through the deploy runtime (``Encoder``), built from the spec alone: the manifest entry's
    inputs and output, or — for a peer's export that has no manifest — the graph's own."""

    def __init__(self, spec: RunSpec, threads: int | None = None, mode: str = "latency"):
        from exporter.artifact.manifest import Manifest, SourceRecord, Variant
        from exporter.runtime.encoder import Encoder

        inputs, output = (list(spec.inputs), spec.output) if spec.inputs else graph_signature(spec)
        variant = Variant(name=spec.name, backend=spec.backend, precision=spec.precision or "fp32", graph=spec.graph,
                          file_name=str(spec.file_name), inputs=inputs, output=output,
                          runtime_options=dict(spec.runtime_options), files=[], truncate_dim=spec.truncate_dim)
        manifest = Manifest(variants=[variant], source=SourceRecord(max_seq_length=spec.max_seq_length))
        self.encoder = Encoder(spec.folder, manifest, variant, mode=mode, threads=threads)
        self.settings: dict[str, Any] = {"loader": "encoder", **self.encoder.settings}

    def encode(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE, prompt: str | None = None
               ) -> np.ndarray:
        return self.encoder.encode(list(texts), batch_size=batch_size, prompt=prompt)


def require_torch(name: str) -> None:
    """``RuntimeUnavailableError`` naming the ``torch`` extra when torch variants cannot run here."""
    from exporter.runtime.packages import import_problem

    for package in ("torch", "sentence-transformers"):
        problem = import_problem(package)
        if problem is not None:
            raise RuntimeUnavailableError(f"variant {name}: torch variants run through sentence-transformers, and "
                                          f"{package} cannot be imported here ({problem}): {TORCH_EXTRA}",
                                          fix=TORCH_EXTRA)


def torch_model_kwargs(precision: str) -> dict[str, Any]:
    """sentence-transformers' ``model_kwargs`` for a torch variant: transformers loads
    ``model.<precision>.safetensors`` (``variant``) into a model of that ``dtype``."""
    import torch

    return {"variant": precision, "dtype": getattr(torch, TORCH_DTYPES[precision])}


def use_folder_tokenizer(model, folder: Path) -> None:
    """Let ``model``'s Transformer module tokenise with the tokenizer files of the model folder ``folder`` (an
    artifact's): the build's torch model and the validator's torch reference tokenise as the artifact does."""
    from transformers import AutoTokenizer

    transformer = model[0]
    with quiet_loading():
        module = folder / model_folder.transformer_module_path(folder)
        tokenizer = AutoTokenizer.from_pretrained(str(module), local_files_only=True)
    old = transformer.tokenizer
    tokenizer.padding_side = getattr(old, "padding_side", tokenizer.padding_side)
    if isinstance(getattr(type(transformer), "tokenizer", None), property):  # sentence-transformers 6: a processor
        if getattr(transformer, "processor", None) is old:
            transformer.processor = tokenizer
        else:
            transformer.processor.tokenizer = tokenizer
    else:
        transformer.tokenizer = tokenizer


def graph_signature(spec: RunSpec) -> tuple[list[str], str]:
    """(input names the tokenizer must feed, the embedding output) read from the graph file itself."""
    path = str(Path(spec.folder) / str(spec.file_name))
    if spec.backend == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inputs = [node.name for node in session.get_inputs()]
        outputs = [node.name for node in session.get_outputs()]
    else:
        import openvino as ov

        model = ov.Core().read_model(path)
        inputs = [port.get_any_name() for port in model.inputs]
        outputs = [port.get_any_name() for port in model.outputs]
    preferred = ("sentence_embedding", "last_hidden_state", "token_embeddings")
    output = next((name for name in preferred if name in outputs), outputs[0])
    return inputs, output


def load_runner(spec: RunSpec, *, threads: int | None = None, mode: str = "latency") -> VariantRunner:
    """Load ``spec``. A runtime that fails to load it is an ``ExternalError`` naming it; bad manifest data a
    ``BadInputError``; a torch variant where torch or sentence-transformers is missing a
    ``RuntimeUnavailableError`` naming the ``torch`` extra."""
    if spec.is_torch_variant:
        require_torch(spec.name)
    try:
        with quiet_loading():
            if spec.backend == "torch" or spec.loader == "sentence-transformers":
                if spec.graph != "transformer":
                    raise BadInputError(f"{spec.name}: sentence-transformers loads graph: transformer variants only")
                return SentenceTransformerRunner(spec, threads)
            return EncoderRunner(spec, threads, mode)
    except ExporterError:
        raise
    except Exception as error:  # noqa: BLE001 - any runtime failure to load is reported as one line
        what = f"torch model {spec.folder}" if spec.backend == "torch" else f"{spec.name} ({spec.file_name})"
        raise ExternalError(f"{what}: {spec.backend} could not load it: {first_line(error)}") from None
