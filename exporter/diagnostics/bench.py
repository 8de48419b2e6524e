"""``bench``: throughput, latency and memory of an artifact folder's variants against the torch model.

Every model runs in one process with the same thread count, warmed up, and interleaved: each round runs
every model once over the text set, in an order rotated from round to round, so drift (turbo, other
processes, thermal) hits all of them alike. Throughput is texts / median round time; latency is measured
at batch 1 on short and medium texts (p50/p95); the memory a model adds is the resident-memory delta of
loading and running it, measured in a fresh child process per model so models do not pollute each other.

Models:

* ``torch``: the source model (``manifest.source.location`` or ``--source``) in sentence-transformers,
  fp32 on CPU. Without it the run goes on without ratios, and the result says why.
* ``variant``: ``graph: transformer`` variants through ``SentenceTransformer(folder, backend=...)``;
  ``graph: sentence`` variants through plain onnxruntime / OpenVINO with the model's tokenizer, tokenised
  inside the timed region (sentence-transformers' ``encode`` includes tokenisation too).
* ``compare``: any other sentence-transformers-loadable ONNX / OpenVINO file (``FOLDER:FILE``).

The result is saved as ``bench.json`` in the artifact folder, and manifest.json is updated: bench.json
joins ``shared_files`` and each measured variant gets a ``bench`` summary.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exporter.errors import BadInputError, ExporterError, ExternalError, first_line
from exporter.artifact.manifest import file_entry, read_manifest, variant_entry, write_manifest
from exporter.texts import builtin_texts, parse_jsonl

BENCH_NAME = "bench.json"
BENCH_SCHEMA_VERSION = 1
BUILTIN_TEXTS = "data/validation.jsonl"  # inside the ``exporter`` package
DEFAULT_BATCH_SIZE = 32
DEFAULT_NUM_TEXTS = 256
DEFAULT_ROUNDS = 5
DEFAULT_WARMUP_ROUNDS = 1
DEFAULT_LATENCY_TEXTS = 50
LATENCY_MAX_CHARS = 400  # "short and medium" texts for the batch-1 latency
# Before each model's timed block: a pause, so the thread pools of the model before (ONNX Runtime and
# OpenMP spin after a run) are idle and do not steal cores from it; batch-1 blocks also start with one
# untimed encode. Measured here: without it torch's batch-1 latency right after ONNX Runtime doubled.
SWITCH_PAUSE_S = 0.05
NOISY_SPREAD = 1.5  # slowest / fastest measured round of one model above this: the result says the host was busy
MEMORY_WORKERS = 2  # memory children may run side by side: resident memory is per process
MEMORY_TIMEOUT_S = 900
COMPARE_BACKENDS = {".onnx": "onnx", ".xml": "openvino"}
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")


# --------------------------------------------------------------------------------------------- results


@dataclass
class Target:
    """One model to measure; plain data, so the memory child can rebuild it."""

    name: str
    kind: str  # torch | variant | compare
    backend: str  # torch | onnx | openvino
    precision: str | None
    graph: str  # transformer | sentence
    folder: str
    file_name: str | None
    size_bytes: int | None
    inputs: list[str] | None = None  # graph: sentence only
    output: str | None = None  # graph: sentence only
    max_seq_length: int | None = None
    trust_remote_code: bool = False


@dataclass
class ModelResult:
    """What was measured for one model."""

    target: Target
    throughput: float
    ratio_to_torch: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    rss_delta_mb: float | None
    runtime: dict[str, Any]
    round_seconds: list[float]
    latency_samples: int
    cosine_mean: float | None = None  # against the torch model's embeddings of the same texts
    cosine_min: float | None = None

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "name": t.name,
            "kind": t.kind,
            "backend": t.backend,
            "precision": t.precision,
            "graph": t.graph,
            "file_name": t.file_name,
            "size_bytes": t.size_bytes,
            "throughput": _round(self.throughput, 2),
            "ratio_to_torch": _round(self.ratio_to_torch, 3),
            "latency_p50_ms": _round(self.latency_p50_ms, 3),
            "latency_p95_ms": _round(self.latency_p95_ms, 3),
            "rss_delta_mb": _round(self.rss_delta_mb, 1),
            "cosine_mean": _round(self.cosine_mean, 5),
            "cosine_min": _round(self.cosine_min, 5),
            "runtime": self.runtime,
            "round_seconds": [_round(s, 4) for s in self.round_seconds],
            "latency_samples": self.latency_samples,
        }

    def summary(self) -> dict[str, Any]:
        """The short form stored on the variant's manifest entry."""
        full = self.to_dict()
        return {key: full[key] for key in ("throughput", "ratio_to_torch", "latency_p50_ms", "latency_p95_ms",
                                          "rss_delta_mb")}


@dataclass
class BenchResult:
    """A benchmark run: ``to_dict()`` is what bench.json holds."""

    folder: Path
    created_at: str
    host: dict[str, Any]
    settings: dict[str, Any]
    versions: dict[str, str | None]
    results: list[ModelResult]
    reference: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    bench_file: Path | None = None

    def result(self, name: str) -> ModelResult:
        for result in self.results:
            if result.target.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": BENCH_SCHEMA_VERSION,
            "created_at": self.created_at,
            "host": self.host,
            "settings": self.settings,
            "versions": self.versions,
            "reference": self.reference,
            "results": [result.to_dict() for result in self.results],
            "notes": list(self.notes),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


# -------------------------------------------------------------------------------------------- progress


class SilentBenchProgress:
    """Reports nothing. A progress object has ``step`` and ``log`` (as ``exporter.progress.Progress``) and,
    optionally, ``track(description, total)``: a context manager yielding a function to call once per tick."""

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        yield

    def log(self, message: str) -> None:
        pass

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        yield lambda: None


@contextlib.contextmanager
def _track(progress, description: str, total: int) -> Iterator[Callable[[], None]]:
    track = getattr(progress, "track", None)
    if track is None:
        with progress.step(description):
            yield lambda: None
        return
    with track(description, total) as advance:
        yield advance


# ------------------------------------------------------------------------------------------------ texts


def load_texts(texts_file: str | Path | None = None) -> tuple[list[str], str]:
    """The text set: ``texts_file`` (.jsonl with "text", else one text per line) or the built-in one.
    Returns the texts and where they came from."""
    if texts_file is None:
        return [text.text for text in builtin_texts()], f"builtin:{BUILTIN_TEXTS}"
    path = Path(texts_file)
    if not path.is_file():
        raise BadInputError(f"--texts {path}: no such file")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"--texts {path}: cannot read: {error}") from None
    if path.suffix.lower() == ".jsonl":
        texts = [row["text"] for row in parse_jsonl(content, str(path)) if row["text"].strip()]
    else:
        texts = [line for line in content.splitlines() if line.strip()]
    if not texts:
        raise BadInputError(f"--texts {path}: no texts in it")
    return texts, str(path)


def select_texts(texts: Sequence[str], count: int) -> list[str]:
    """``count`` texts: evenly spread over the set when it is larger, cycled when it is smaller."""
    if count <= len(texts):
        return [texts[i * len(texts) // count] for i in range(count)]
    return [texts[i % len(texts)] for i in range(count)]


def latency_texts(texts: Sequence[str], count: int) -> list[str]:
    """Short and medium texts for the batch-1 latency (the whole set when it has none)."""
    if count <= 0:
        return []
    pool = [text for text in texts if len(text) <= LATENCY_MAX_CHARS] or list(texts)
    return select_texts(pool, count)


# --------------------------------------------------------------------------------------------- targets


def parse_compare(spec: str) -> Target:
    """``FOLDER:FILE`` → a compare target; the backend follows the file extension."""
    folder_text, sep, file_name = spec.rpartition(":")
    if not sep or not folder_text or not file_name:
        raise BadInputError(f"--compare {spec!r}: expected FOLDER:FILE, e.g. my-model:onnx/model_qint8.onnx")
    backend = COMPARE_BACKENDS.get(Path(file_name).suffix.lower())
    if backend is None:
        raise BadInputError(f"--compare {spec!r}: cannot tell the backend of {file_name!r} "
                            f"(expected a .onnx or an OpenVINO .xml file)")
    folder = Path(folder_text).expanduser()
    if not folder.is_dir():
        raise BadInputError(f"--compare {spec!r}: folder {folder} does not exist")
    if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
        raise BadInputError(f"--compare {spec!r}: FILE must be relative to FOLDER, inside it")
    model_file = folder / file_name
    if not model_file.is_file():
        raise BadInputError(f"--compare {spec!r}: no file {file_name} in {folder}")
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise BadInputError(f"--compare {spec!r}: {folder} is not a sentence-transformers model "
                            "(no modules.json or config.json)")
    sidecars = [model_file.with_suffix(".bin")] if backend == "openvino" else [
        Path(f"{model_file}_data"), model_file.with_suffix(".onnx_data")]
    size = model_file.stat().st_size + sum(p.stat().st_size for p in set(sidecars) if p.is_file())
    return Target(name=f"{folder.resolve().name}/{Path(file_name).as_posix()}", kind="compare", backend=backend,
                  precision=None, graph="transformer", folder=str(folder.resolve()),
                  file_name=Path(file_name).as_posix(), size_bytes=size)


def variant_target(folder: Path, manifest: dict[str, Any], variant: dict[str, Any]) -> Target:
    return Target(
        name=variant["name"], kind="variant", backend=variant.get("backend", "?"), precision=variant.get("precision"),
        graph=variant.get("graph", "transformer"), folder=str(folder), file_name=variant.get("file_name"),
        size_bytes=sum(int(entry.get("size", 0)) for entry in variant["files"]),
        inputs=list(variant.get("inputs") or []) or None, output=variant.get("output"),
        max_seq_length=manifest.get("source", {}).get("max_seq_length"),
        trust_remote_code=bool(manifest.get("source", {}).get("trust_remote_code", False)),
    )


def resolve_reference(manifest: dict[str, Any], source_dir: str | Path | None) -> tuple[Path | None, str, str | None]:
    """The torch reference's folder, where it came from, and why it is missing (None when found).

    ``source_dir`` (``--source``) must be a model folder; ``manifest.source.location`` is resolved like the
    recipe's ``model.path`` (``package:`` or a path relative to the working directory); ``hub:<id>`` only
    from the local Hugging Face cache: a benchmark never downloads.
    """
    from exporter.export.source import check_sentence_transformers_dir, resolve_source

    if source_dir is not None:
        directory = Path(source_dir).expanduser().resolve()
        if not directory.is_dir():
            raise BadInputError(f"--source {source_dir}: not a folder")
        check_sentence_transformers_dir(directory, "--source")
        return directory, str(source_dir), None
    source = manifest.get("source") or {}
    location = source.get("location")
    if not location:
        return None, "", "the manifest names no source model (source.location); pass --source DIR"
    try:
        if location.startswith("hub:"):
            from huggingface_hub import snapshot_download

            directory = Path(snapshot_download(location[4:], revision=source.get("revision"), local_files_only=True))
            check_sentence_transformers_dir(directory, location)
            return directory, location, None
        from exporter.recipe import ModelSource

        resolved = resolve_source(ModelSource(id=source.get("id"), path=location), Path.cwd())
        return resolved.directory, location, None
    except ExporterError as error:
        reason = str(error)
    except Exception as error:  # noqa: BLE001 - a cache miss or a bad path: benchmark without the reference
        reason = f"{location}: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
    return None, location, f"no torch reference ({reason}); pass --source DIR for ratios"


def torch_target(directory: Path, location: str, manifest: dict[str, Any]) -> Target:
    source = manifest.get("source") or {}
    return Target(name="torch", kind="torch", backend="torch", precision="fp32", graph="transformer",
                  folder=str(directory), file_name=None, size_bytes=_torch_weights_size(directory),
                  max_seq_length=source.get("max_seq_length"),
                  trust_remote_code=bool(source.get("trust_remote_code", False)))


def _torch_weights_size(directory: Path) -> int | None:
    """Bytes of the weights torch loads: safetensors (else .bin) of each module folder in modules.json."""
    try:
        modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
        folders = sorted({m.get("path", "") for m in modules})
    except (OSError, ValueError):
        folders = [""]
    total = 0
    for relative in folders:
        module_dir = directory / relative
        files = sorted(module_dir.glob("*.safetensors")) or sorted(module_dir.glob("pytorch_model*.bin"))
        total += sum(path.stat().st_size for path in files if path.is_file())
    return total or None


# --------------------------------------------------------------------------------------------- runners


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
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
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def configure_threads(threads: int) -> int:
    """Set torch's intra-op threads (ONNX Runtime and OpenVINO get theirs per model); returns the previous."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


class _SentenceTransformerRunner:
    """torch, or an ONNX / OpenVINO transformer graph, through SentenceTransformer.encode."""

    def __init__(self, target: Target, threads: int):
        from sentence_transformers import SentenceTransformer

        self.runtime: dict[str, Any] = {"loader": "sentence-transformers"}
        kwargs: dict[str, Any] = {}
        if target.backend == "torch":
            import torch

            self.runtime.update({"torch_num_threads": torch.get_num_threads(), "device": "cpu", "dtype": "float32"})
        elif target.backend == "onnx":
            options = _ort_session_options(threads)
            kwargs = {"file_name": target.file_name, "provider": "CPUExecutionProvider", "session_options": options}
            self.runtime.update(_ort_settings(options))
        elif target.backend == "openvino":
            config = _ov_config(threads)
            kwargs = {"file_name": target.file_name, "ov_config": dict(config)}
            self.runtime.update({"device": "CPU", **config})
        else:
            raise ValueError(f"unknown backend {target.backend!r}")
        backend = "torch" if target.backend == "torch" else target.backend
        self.model = SentenceTransformer(target.folder, device="cpu", backend=backend, local_files_only=True,
                                         trust_remote_code=target.trust_remote_code, model_kwargs=kwargs or None)
        if target.kind == "torch" and target.max_seq_length:
            self.model.max_seq_length = target.max_seq_length
        self.model.eval()
        if target.backend == "torch":
            config = getattr(self.model[0].auto_model, "config", None)
            self.runtime["attn_implementation"] = getattr(config, "_attn_implementation", None)
        elif target.backend == "onnx":
            session = getattr(self.model[0].auto_model, "model", None)
            if session is not None and hasattr(session, "get_providers"):
                self.runtime["providers"] = session.get_providers()

    def encode(self, texts: list[str], batch_size: int):
        return self.model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)


class _PlainRunner:
    """A graph: sentence variant in plain onnxruntime / OpenVINO, tokenised like sentence-transformers:
    texts sorted by length, stripped, padded to the batch's longest, truncated to max_seq_length."""

    def __init__(self, target: Target, threads: int):
        import numpy as np
        from transformers import AutoTokenizer

        self._np = np
        folder = Path(target.folder)
        transformer_dir, lower_case = _transformer_settings(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir), local_files_only=True)
        self.lower_case = lower_case
        self.max_length = target.max_seq_length or min(self.tokenizer.model_max_length, 512)
        self.inputs = target.inputs or ["input_ids", "attention_mask"]
        self.output = target.output or "sentence_embedding"
        path = str(folder / str(target.file_name))
        self.runtime: dict[str, Any] = {"loader": "plain", "max_length": self.max_length}
        if target.backend == "onnx":
            import onnxruntime as ort

            options = _ort_session_options(threads)
            self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
            self.runtime.update(_ort_settings(options))
            self.runtime["providers"] = self.session.get_providers()
            self._run = lambda feeds: self.session.run([self.output], feeds)[0]
        elif target.backend == "openvino":
            import openvino as ov

            config = _ov_config(threads)
            compiled = ov.Core().compile_model(path, "CPU", dict(config))
            request = compiled.create_infer_request()
            self.runtime.update({"device": "CPU", **config,
                                 "compiled_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS"))})
            self._run = lambda feeds: request.infer(feeds)[self.output].copy()
        else:
            raise ValueError(f"unknown backend {target.backend!r}")

    def encode(self, texts: list[str], batch_size: int):
        np = self._np
        order = np.argsort([-len(text) for text in texts], kind="stable")
        outputs = []
        for start in range(0, len(texts), batch_size):
            batch = [texts[i].strip() for i in order[start : start + batch_size]]
            if self.lower_case:
                batch = [text.lower() for text in batch]
            encoded = self.tokenizer(batch, padding=True, truncation="longest_first", max_length=self.max_length,
                                     return_tensors="np")
            outputs.append(self._run({name: encoded[name].astype(np.int64) for name in self.inputs}))
        embeddings = np.concatenate(outputs)
        return embeddings[np.argsort(order, kind="stable")]


def _transformer_settings(folder: Path) -> tuple[Path, bool]:
    """The Transformer module's folder (for the tokenizer) and its do_lower_case setting."""
    relative = ""
    with contextlib.suppress(OSError, ValueError):
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        relative = next((m.get("path", "") for m in modules if m.get("type", "").endswith(".Transformer")), "")
    lower_case = False
    with contextlib.suppress(OSError, ValueError):
        config = json.loads((folder / relative / "sentence_bert_config.json").read_text(encoding="utf-8"))
        lower_case = bool(config.get("do_lower_case", False))
    return folder / relative, lower_case


def _ort_session_options(threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def _ort_settings(options) -> dict[str, Any]:
    return {"intra_op_num_threads": options.intra_op_num_threads, "inter_op_num_threads": options.inter_op_num_threads,
            "execution_mode": "sequential", "graph_optimization_level": str(options.graph_optimization_level).split(".")[-1],
            "provider": "CPUExecutionProvider"}


def _ov_config(threads: int) -> dict[str, Any]:
    return {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}


def load_runner(target: Target, threads: int):
    """Load a model for ``target``; a runtime failure is an ``ExternalError`` naming it."""
    try:
        with _quiet_loading():
            if target.graph == "sentence":
                return _PlainRunner(target, threads)
            return _SentenceTransformerRunner(target, threads)
    except ExporterError:
        raise
    except Exception as error:  # noqa: BLE001 - any runtime failure to load is reported as one line
        raise ExternalError(f"{_describe(target)}: {target.backend} could not load it: {first_line(error)}") from None


def _describe(target: Target) -> str:
    if target.kind == "torch":
        return f"torch reference {target.folder}"
    where = f" ({target.file_name})" if target.file_name else ""
    return f"{'variant' if target.kind == 'variant' else '--compare'} {target.name}{where}"


# ------------------------------------------------------------------------------------------------ host


def available_cores() -> int:
    """Physical cores this process may use: physical cores, capped by the CPU affinity and a cgroup quota."""
    import psutil

    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    cores = physical
    with contextlib.suppress(AttributeError, OSError):
        allowed = len(os.sched_getaffinity(0))
        # Only part of the machine allowed: count the allowed logical CPUs as cores, scaled by SMT.
        cores = min(cores, max(1, allowed * physical // logical))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cores)


def host_info(threads: int) -> dict[str, Any]:
    import psutil

    cpu, flags = None, set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu is None:
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "cores": psutil.cpu_count(logical=False),
        "logical_cpus": psutil.cpu_count(logical=True),
        "available_cores": available_cores(),
        "threads": threads,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "load_average": _load_average(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
    }


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def versions() -> dict[str, str | None]:
    import importlib.metadata

    found: dict[str, str | None] = {}
    for key, dist in (("torch", "torch"), ("onnxruntime", "onnxruntime"), ("openvino", "openvino"),
                      ("sentence_transformers", "sentence-transformers"), ("transformers", "transformers"),
                      ("optimum", "optimum"), ("optimum_intel", "optimum-intel"), ("exporter", "embedding-exporter")):
        try:
            found[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
    return found


# ---------------------------------------------------------------------------------------------- memory


def _memory_child() -> int:
    """Entry of a memory child: reads {target, threads, texts, batch_size} on stdin, prints the RSS delta."""
    request = json.loads(sys.stdin.read())
    target = Target(**request["target"])
    threads = int(request["threads"])
    import psutil
    import sentence_transformers  # noqa: F401 - the libraries are the baseline, not what the model adds
    import torch  # noqa: F401
    import transformers  # noqa: F401

    with _quiet_loading():
        if target.backend == "onnx":
            import onnxruntime  # noqa: F401
            if target.graph != "sentence":
                import optimum.onnxruntime  # noqa: F401
        elif target.backend == "openvino":
            import openvino  # noqa: F401
            if target.graph != "sentence":
                import optimum.intel.openvino  # noqa: F401
    configure_threads(threads)
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    runner = load_runner(target, threads)
    runner.encode(request["texts"], int(request["batch_size"]))
    runner.encode(request["texts"][:1], 1)
    gc.collect()
    after = process.memory_info().rss
    print(json.dumps({"rss_delta_mb": (after - before) / 2**20}))
    return 0


def measure_memory(target: Target, threads: int, texts: list[str], batch_size: int) -> tuple[float | None, str | None]:
    """RSS delta (MiB) of loading and running ``target`` in a fresh child process; (None, reason) on failure."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    request = json.dumps({"target": asdict(target), "threads": threads, "texts": texts, "batch_size": batch_size})
    code = "import sys; from exporter.diagnostics.bench import _memory_child; sys.exit(_memory_child())"
    try:
        completed = subprocess.run([sys.executable, "-c", code], input=request, capture_output=True, text=True,
                                   env=env, timeout=MEMORY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"memory of {target.name}: the child process ran past {MEMORY_TIMEOUT_S} s"
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        errors = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        return None, f"memory of {target.name}: the child process failed: {errors[-1] if errors else completed.returncode}"
    return float(json.loads(lines[-1])["rss_delta_mb"]), None


# ----------------------------------------------------------------------------------------------- bench


def bench(
    folder: str | Path,
    *,
    variants: Sequence[str] | None = None,
    compare: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_texts: int = DEFAULT_NUM_TEXTS,
    threads: int | None = None,
    rounds: int = DEFAULT_ROUNDS,
    warmup_rounds: int = DEFAULT_WARMUP_ROUNDS,
    latency_count: int = DEFAULT_LATENCY_TEXTS,
    texts_file: str | Path | None = None,
    source_dir: str | Path | None = None,
    measure_memory: bool = True,
    save: bool = True,
    progress=None,
) -> BenchResult:
    """Benchmark an artifact folder's variants (all, or ``variants``) against the torch reference and the
    ``compare`` models (``FOLDER:FILE``). Saves bench.json and updates manifest.json when ``save``.

    Raises ``BadInputError`` for a missing folder or manifest, an unknown variant, a bad ``compare`` spec or
    texts file; ``ExternalError`` naming the model when a runtime cannot load or run it.
    """
    progress = progress or SilentBenchProgress()
    for name, value, low in (("batch_size", batch_size, 1), ("num_texts", num_texts, 1), ("rounds", rounds, 1),
                             ("warmup_rounds", warmup_rounds, 0), ("latency_count", latency_count, 0)):
        if value < low:
            raise BadInputError(f"{name} must be at least {low}, got {value}")
    if threads is not None and threads < 1:
        raise BadInputError(f"threads must be at least 1, got {threads}")
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise BadInputError(f"{folder}: no such artifact folder")
    root = root.resolve()
    manifest = read_manifest(root)
    chosen = [variant_entry(manifest, name) for name in dict.fromkeys(variants)] if variants else list(manifest["variants"])
    targets = [variant_target(root, manifest, variant) for variant in chosen]
    for target in targets:
        if not (root / str(target.file_name)).is_file():
            raise BadInputError(f"{root}: variant {target.name}'s file {target.file_name} is missing")
    compares = [parse_compare(spec) for spec in compare]
    _dedupe_names(targets + compares)
    all_texts, texts_source = load_texts(texts_file)
    texts = select_texts(all_texts, num_texts)
    single = latency_texts(texts, latency_count)
    threads = threads or available_cores()

    notes: list[str] = []
    reference_dir, location, missing = resolve_reference(manifest, source_dir)
    if missing:
        notes.append(missing)
    targets = ([torch_target(reference_dir, location, manifest)] if reference_dir else []) + targets + compares

    host = host_info(threads)  # before measuring: its load average is the one the run started with
    previous_threads = configure_threads(threads)
    try:
        runners = []
        for target in targets:
            with progress.step(f"Loading {target.name}"):
                runners.append(load_runner(target, threads))
        round_times, embeddings = _throughput_rounds(targets, runners, texts, batch_size, rounds, warmup_rounds,
                                                     progress)
        latencies = _latency_rounds(targets, runners, single, rounds, progress)
        runtimes = [runner.runtime for runner in runners]
    finally:
        runners = []  # the models go before the memory children start
        gc.collect()
        configure_threads(previous_threads)
    host["load_average_end"] = _load_average()
    memory: dict[str, float | None] = {}
    if measure_memory:
        memory = _memory_all(targets, threads, texts, batch_size, notes, progress)

    load_before = host["load_average"]
    spread = max(max(times) / min(times) for times in round_times)
    if rounds > 1 and spread > NOISY_SPREAD:
        notes.append(f"round times of one model varied up to {spread:.1f}x (load average {load_before[0] if load_before else '?'}"
                     f" at the start): the host was busy, so the numbers are noisy; rerun on a quiet machine, with "
                     f"more --rounds, or with fewer --threads")
    torch_throughput = None
    if reference_dir:
        torch_throughput = num_texts / statistics.median(round_times[0])
    results = []
    for index, target in enumerate(targets):
        throughput = num_texts / statistics.median(round_times[index])
        samples = latencies[index]
        cosines = _cosines(embeddings[index], embeddings[0]) if reference_dir else None
        results.append(ModelResult(
            target=target,
            throughput=throughput,
            ratio_to_torch=throughput / torch_throughput if torch_throughput else None,
            latency_p50_ms=_percentile(samples, 50),
            latency_p95_ms=_percentile(samples, 95),
            rss_delta_mb=memory.get(target.name),
            runtime=runtimes[index],
            round_seconds=round_times[index],
            latency_samples=len(samples),
            cosine_mean=float(cosines.mean()) if cosines is not None else None,
            cosine_min=float(cosines.min()) if cosines is not None else None,
        ))
    result = BenchResult(
        folder=root,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        host=host,
        settings={"batch_size": batch_size, "num_texts": num_texts, "rounds": rounds, "warmup_rounds": warmup_rounds,
                  "latency_texts": len(single), "threads": threads, "texts": texts_source,
                  "memory": "rss delta of load + run in a child process (MiB)" if measure_memory else None,
                  "order": "interleaved, rotated each round; throughput = texts / median round time",
                  "cosine": "per-text cosine with the torch model's embeddings of the first measured round"},
        versions=versions(),
        results=results,
        reference={"available": reference_dir is not None, "location": location or None},
        notes=notes,
    )
    if save:
        result.bench_file = save_result(root, result)
    return result


def _dedupe_names(targets: list[Target]) -> None:
    seen: dict[str, int] = {"torch": 1}
    for target in targets:
        if target.name in seen:
            seen[target.name] += 1
            target.name = f"{target.name}#{seen[target.name]}"
        else:
            seen[target.name] = 1


def _rotation(count: int, round_index: int) -> list[int]:
    shift = round_index % count if count else 0
    return list(range(shift, count)) + list(range(shift))


def _throughput_rounds(targets, runners, texts, batch_size, rounds, warmup_rounds, progress):
    """(round times per model, each model's embeddings from its first measured round)."""
    times: list[list[float]] = [[] for _ in runners]
    embeddings: list[Any] = [None for _ in runners]
    total = (warmup_rounds + rounds) * len(runners)
    with _track(progress, f"Throughput: {len(texts)} texts × {rounds} rounds (+{warmup_rounds} warm-up)", total) as tick:
        for round_index in range(warmup_rounds + rounds):
            gc.collect()
            for index in _rotation(len(runners), round_index):
                time.sleep(SWITCH_PAUSE_S)
                started = time.perf_counter()
                output = _encode(targets[index], runners[index], texts, batch_size)
                elapsed = time.perf_counter() - started
                if round_index >= warmup_rounds:
                    times[index].append(elapsed)
                if round_index == warmup_rounds:
                    embeddings[index] = output
                tick()
    return times, embeddings


def _cosines(embeddings, reference):
    """Per-text cosine similarity of two [texts, dim] arrays (float64)."""
    import numpy as np

    a = np.asarray(embeddings, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def _latency_rounds(targets, runners, single, rounds, progress) -> list[list[float]]:
    """Batch-1 latency: the texts split into chunks, each chunk run by every model in a rotated order,
    each model's block led by a pause and one untimed encode."""
    samples: list[list[float]] = [[] for _ in runners]
    if not single:
        return samples
    warm = single[: min(3, len(single))]
    chunks = max(1, min(rounds, len(single)))
    bounds = [len(single) * i // chunks for i in range(chunks + 1)]
    with _track(progress, f"Latency: {len(single)} single texts", (len(single) + len(warm)) * len(runners)) as tick:
        for index in range(len(runners)):
            for text in warm:
                _encode(targets[index], runners[index], [text], 1)
                tick()
        for chunk in range(chunks):
            for index in _rotation(len(runners), chunk):
                time.sleep(SWITCH_PAUSE_S)
                _encode(targets[index], runners[index], [single[bounds[chunk]]], 1)
                for text in single[bounds[chunk] : bounds[chunk + 1]]:
                    started = time.perf_counter()
                    _encode(targets[index], runners[index], [text], 1)
                    samples[index].append(time.perf_counter() - started)
                    tick()
    return samples


def _encode(target: Target, runner, texts: list[str], batch_size: int):
    try:
        return runner.encode(texts, batch_size)
    except Exception as error:  # noqa: BLE001 - a runtime failing mid-run is named, one line
        raise ExternalError(f"{_describe(target)}: {target.backend} failed while encoding: {first_line(error)}") from None


def _memory_all(targets, threads, texts, batch_size, notes, progress) -> dict[str, float | None]:
    from concurrent.futures import ThreadPoolExecutor

    memory: dict[str, float | None] = {}
    with _track(progress, f"Memory: {len(targets)} child processes", len(targets)) as tick:
        with ThreadPoolExecutor(max_workers=MEMORY_WORKERS) as pool:
            futures = {target.name: pool.submit(measure_memory, target, threads, texts, batch_size) for target in targets}
            for name, future in futures.items():
                value, problem = future.result()
                memory[name] = value
                if problem:
                    notes.append(problem)
                tick()
    return memory


def _percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(samples) * 1000.0, q))


# ------------------------------------------------------------------------------------------------ save


def save_result(root: Path, result: BenchResult) -> Path:
    """Write bench.json and record it in manifest.json: a shared file, and a summary on each measured variant
    (variants not measured in this run lose a previous summary, so the manifest agrees with bench.json)."""
    path = root / BENCH_NAME
    _write_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
    manifest = read_manifest(root)
    shared = [entry for entry in manifest.get("shared_files", []) if entry.get("path") != BENCH_NAME]
    shared.append(file_entry(root, BENCH_NAME))
    manifest["shared_files"] = sorted(shared, key=lambda entry: entry["path"])
    summaries = {r.target.name: r.summary() for r in result.results if r.target.kind == "variant"}
    for variant in manifest["variants"]:
        if variant["name"] in summaries:
            variant["bench"] = summaries[variant["name"]]
        else:
            variant.pop("bench", None)
    write_manifest(root, manifest)
    return path


def _write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


__all__ = ["BENCH_NAME", "BenchResult", "ModelResult", "Target", "bench", "load_texts", "parse_compare",
           "save_result"]
