"""This host, as a plain profile, and which variant of an artifact suits it.

``HostProfile.detect()`` reads what is installed (runtimes and their versions, ONNX Runtime's execution
providers, OpenVINO's devices), the CPU's architecture and features, and whether an NVIDIA GPU is present.
``choose_variant(manifest, profile, ...)`` is a pure function of the manifest and a profile, so the choice
for any host (AVX2-only, VNNI, ARM, CUDA...) is tested by writing the profile down, with no runtime faked.

How ``auto`` chooses, in order:

1. Only variants whose validation passed (``parity.passed`` true in the manifest) are candidates, then the
   constraints (``backend``, ``precision``, ``graph``, ``min_cosine`` on ``parity.cosine_min``).
2. A variant whose runtime is not installed is excluded: ``onnx`` needs onnxruntime, ``openvino`` needs
   openvino; ``graph: transformer`` also needs sentence-transformers and its optimum backend (optimum-onnx,
   optimum-intel), which load it.
3. Each remaining variant gets a fit for this host: ``good``, ``check`` (works, but this host's numerics or
   kernels differ from where it was validated: run ``exporter fetch --check`` once) or ``poor`` (known to
   misbehave here). Poor: an ONNX int8 graph quantised without the reduced 7-bit weight range
   (``quantization.isa`` ``avx512_vnni`` / ``arm64``, or ``static``) on an x86 CPU without VNNI, where the
   uint8 x int8 kernels can saturate; an unsupported CPU architecture. Check: OpenVINO int8 on ARM, unknown
   CPUs. OpenVINO fp32/fp16 on ARM is good (the reason still says to run ``--check``).
4. Ranking: fit, then ``graph: transformer`` before ``graph: sentence`` (what sentence-transformers loads),
   then variants that run on the GPU (ONNX fp32/fp16 with onnxruntime's CUDAExecutionProvider on an NVIDIA
   host; int8 ONNX graphs run on the CPU there), then speed, then ``parity.cosine_min``, then the name.
   Speed is the manifest's bench numbers (``bench.ratio_to_torch``, else ``bench.throughput``) when every
   CPU candidate has them (they were measured on the build host), else an estimate from the precision and
   this CPU: int8 x2.0 with VNNI / AMX / ARM dot-product, x1.3 without, fp16 x0.95 (half the file, fp32
   compute on CPUs), fp32 x1.0; on the GPU fp16 x4.0, fp32 x3.0.

Nothing here imports torch, onnxruntime or openvino except ``HostProfile.detect(probe=True)``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exporter.errors import BadInputError, CheckFailedError, ExternalError

# component -> (module to find, distributions that provide it, pip install fix)
COMPONENTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "onnxruntime": ("onnxruntime", ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml",
                                    "onnxruntime-silicon"), "pip install onnxruntime"),
    "openvino": ("openvino", ("openvino",), "pip install openvino"),
    "sentence-transformers": ("sentence_transformers", ("sentence-transformers",), "pip install sentence-transformers"),
    "optimum-onnx": ("optimum.onnxruntime", ("optimum-onnx", "optimum"), 'pip install "sentence-transformers[onnx]"'),
    "optimum-intel": ("optimum.intel", ("optimum-intel",), 'pip install "sentence-transformers[openvino]"'),
    "torch": ("torch", ("torch",), "pip install torch"),
    "transformers": ("transformers", ("transformers",), "pip install transformers"),
    "optimum": ("optimum", ("optimum",), "pip install optimum"),
    "nncf": ("nncf", ("nncf",), "pip install nncf"),
}
BACKENDS = ("onnx", "openvino")
GRAPHS = ("transformer", "sentence")
PRECISIONS = ("fp32", "fp16", "int8")
RUNTIME_OF = {"onnx": "onnxruntime", "openvino": "openvino"}
LOADER_OF = {"onnx": "optimum-onnx", "openvino": "optimum-intel"}
FITS = ("good", "check", "poor")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx512vnni", "avx_vnni", "avxvnni", "avx_vnni_int8"})
AMX_FLAGS = frozenset({"amx_int8", "amx_tile"})
ARM_DOT_FLAGS = frozenset({"asimddp", "dotprod"})
# The flags doctor reports (and a profile keeps): what decides int8 and fp16 speed.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                  "amx_tile", "amx_int8", "amx_bf16", "f16c", "fma", "asimd", "asimddp", "i8mm", "sve", "fphp")
_NUMPY_FLAGS = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512BW": "avx512bw", "AVX512VNNI": "avx512_vnni",
                "AVX512BF16": "avx512_bf16", "AVX512FP16": "avx512_fp16", "F16C": "f16c", "FMA3": "fma",
                "ASIMD": "asimd", "ASIMDDP": "asimddp", "SVE": "sve", "FPHP": "fphp"}


# ------------------------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class HostProfile:
    """What decides which variant suits a host. Build one by hand for tests, or ``HostProfile.detect()``.

    ``runtimes``: installed components (``onnxruntime``, ``openvino``, ``sentence-transformers``,
    ``optimum-onnx``, ``optimum-intel``, ``torch``...) and their versions. ``cpu_flags``: lower-case CPU
    feature names as /proc/cpuinfo spells them (``avx2``, ``avx512_vnni``, ``amx_int8``, ``asimddp``...).
    ``cuda``: an NVIDIA GPU with a driver is present; ONNX runs on it only when ``onnx_providers`` has
    ``CUDAExecutionProvider``.
    """

    arch: str
    cpu_flags: frozenset[str] = frozenset()
    runtimes: Mapping[str, str] = field(default_factory=dict)
    onnx_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    openvino_devices: tuple[str, ...] = ("CPU",)
    cuda: bool = False
    cpu_name: str | None = None
    gpus: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", normalise_arch(self.arch))
        object.__setattr__(self, "cpu_flags", frozenset(flag.lower() for flag in self.cpu_flags))
        object.__setattr__(self, "runtimes", dict(self.runtimes))
        object.__setattr__(self, "onnx_providers", tuple(self.onnx_providers))
        object.__setattr__(self, "openvino_devices", tuple(self.openvino_devices))
        object.__setattr__(self, "gpus", tuple(self.gpus))

    # -- derived features ---------------------------------------------------------------------------

    @property
    def avx2(self) -> bool:
        return "avx2" in self.cpu_flags

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.cpu_flags

    @property
    def vnni(self) -> bool:
        """uint8 x int8 dot products without saturation on x86: AVX-512 VNNI or AVX-VNNI."""
        return bool(self.cpu_flags & VNNI_FLAGS)

    @property
    def amx(self) -> bool:
        return bool(self.cpu_flags & AMX_FLAGS)

    @property
    def arm_dot(self) -> bool:
        return bool(self.cpu_flags & ARM_DOT_FLAGS)

    @property
    def int8_accelerated(self) -> bool:
        """int8 matrix products run natively fast: VNNI or AMX on x86, the dot-product extension on ARM."""
        return self.vnni or self.amx or (self.arch == "arm64" and self.arm_dot)

    @property
    def onnx_cuda(self) -> bool:
        return self.cuda and "CUDAExecutionProvider" in self.onnx_providers

    def has(self, component: str) -> bool:
        return component in self.runtimes

    def int8_isa(self) -> str:
        """The ``quantization.isa`` a build on this host would pick for ``isa: auto``."""
        if self.arch == "arm64":
            return "arm64"
        if self.cpu_flags & {"avx512_vnni", "avx512vnni"}:
            return "avx512_vnni"
        return "avx512" if self.avx512 else "avx2"

    def summary(self) -> str:
        """A few words: "x86_64, AVX2 (no AVX-512, no VNNI, no AMX), no CUDA"."""
        if self.arch == "x86_64":
            have = [name for name, present in (("AVX2", self.avx2), ("AVX-512", self.avx512), ("VNNI", self.vnni),
                                               ("AMX", self.amx)) if present]
            lacking = [name for name, present in (("AVX-512", self.avx512), ("VNNI", self.vnni), ("AMX", self.amx))
                       if not present]
            cpu = "x86_64, " + ("/".join(have) or "no AVX2") + (f" (no {', no '.join(lacking)})" if lacking else "")
        elif self.arch == "arm64":
            cpu = "arm64, " + ("dot-product" if self.arm_dot else "no dot-product extension")
        else:
            cpu = f"{self.arch} CPU"
        if self.onnx_cuda:
            gpu = "CUDA (onnxruntime CUDAExecutionProvider)"
        elif self.cuda:
            gpu = "NVIDIA GPU, but onnxruntime has no CUDAExecutionProvider"
        else:
            gpu = "no CUDA"
        return f"{cpu}, {gpu}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpu_flags"] = sorted(self.cpu_flags)
        data["runtimes"] = dict(sorted(self.runtimes.items()))
        data.update(onnx_providers=list(self.onnx_providers), openvino_devices=list(self.openvino_devices),
                    gpus=list(self.gpus))
        data["features"] = {"avx2": self.avx2, "avx512": self.avx512, "vnni": self.vnni, "amx": self.amx,
                            "arm_dot_product": self.arm_dot, "int8_accelerated": self.int8_accelerated,
                            "onnx_cuda": self.onnx_cuda, "int8_isa": self.int8_isa()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostProfile:
        names = {"arch", "cpu_flags", "runtimes", "onnx_providers", "openvino_devices", "cuda", "cpu_name", "gpus"}
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def detect(cls, probe: bool = True) -> HostProfile:
        """This host. ``probe`` imports onnxruntime and openvino (when installed) to read their providers
        and devices; without it the providers and devices are assumed to be CPU only."""
        runtimes = {name: version for name in COMPONENTS if (version := component_version(name)) is not None}
        providers: tuple[str, ...] = ("CPUExecutionProvider",)
        devices: tuple[str, ...] = ("CPU",)
        if probe and "onnxruntime" in runtimes:
            try:
                import onnxruntime

                providers = tuple(onnxruntime.get_available_providers())
            except Exception:  # noqa: BLE001 - a broken install: no provider usable
                providers = ()
                runtimes.pop("onnxruntime")
        if probe and "openvino" in runtimes:
            try:
                import openvino

                devices = tuple(openvino.Core().available_devices)
            except Exception:  # noqa: BLE001
                devices = ()
                runtimes.pop("openvino")
        return cls(arch=platform.machine(), cpu_flags=cpu_flags(), runtimes=runtimes, onnx_providers=providers,
                   openvino_devices=devices, cuda=nvidia_present(), cpu_name=cpu_name(), gpus=nvidia_gpus())


def normalise_arch(machine: str) -> str:
    machine = (machine or "").lower()
    if machine in ("x86_64", "amd64", "x64"):
        return "x86_64"
    if machine in ("arm64", "aarch64", "armv8", "armv8l"):
        return "arm64"
    return machine or "unknown"


def component_version(name: str) -> str | None:
    """The installed version of a component of ``COMPONENTS`` (None when its module cannot be found)."""
    module, distributions, _ = COMPONENTS[name]
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return None
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def install_hint(component: str) -> str:
    return COMPONENTS[component][2] if component in COMPONENTS else f"pip install {component}"


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_flags() -> frozenset[str]:
    """CPU features: /proc/cpuinfo's ``flags`` (x86) or ``Features`` (ARM); elsewhere numpy's runtime
    detection (which knows AVX2/AVX-512/VNNI/ARM dot-product, not AMX). Apple Silicon has dot-product."""
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    flags: set[str] = set()
    try:
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            from numpy.core._multiarray_umath import __cpu_features__ as features  # numpy 1.x
        flags = {_NUMPY_FLAGS[name] for name, present in features.items() if present and name in _NUMPY_FLAGS}
    except Exception:  # noqa: BLE001 - no numpy, or a layout it does not have: no flags known
        pass
    if platform.system() == "Darwin" and normalise_arch(platform.machine()) == "arm64":
        flags |= {"asimd", "asimddp"}
    return frozenset(flags)


def cpu_name() -> str | None:
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or None


def nvidia_present() -> bool:
    """An NVIDIA driver is loaded (Linux) or ``nvidia-smi`` is on the PATH. Cheap: no CUDA library is loaded."""
    return (os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")
            or shutil.which("nvidia-smi") is not None)


def nvidia_gpus() -> tuple[str, ...]:
    """GPU names the NVIDIA driver lists in /proc (Linux); empty elsewhere."""
    names = []
    root = Path("/proc/driver/nvidia/gpus")
    try:
        for information in sorted(root.glob("*/information")):
            for line in information.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.lower().startswith("model:"):
                    names.append(line.split(":", 1)[1].strip())
    except OSError:
        pass
    return tuple(names)


# -------------------------------------------------------------------------------------------- choice


@dataclass
class Candidate:
    """One variant as this host sees it. ``excluded`` says why it cannot be chosen (``exclusion`` is the kind:
    ``validation``, ``constraint`` or ``runtime``); otherwise ``fit``, ``device`` and ``speed`` rank it."""

    name: str
    backend: str
    precision: str
    graph: str
    validated: bool
    cosine_min: float | None
    fit: str = "good"
    device: str = "cpu"
    speed: float = 1.0
    speed_source: str = "estimate"
    notes: list[str] = field(default_factory=list)
    excluded: str | None = None
    exclusion: str | None = None

    def rank_key(self) -> tuple:
        return (FITS.index(self.fit), 0 if self.graph == "transformer" else 1, 0 if self.device == "cuda" else 1,
                -self.speed, -(self.cosine_min if self.cosine_min is not None else -2.0), self.name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Choice:
    """The chosen variant (its manifest entry), where it runs, and one line saying why."""

    variant: dict[str, Any]
    device: str
    reason: str
    candidates: list[Candidate]
    auto: bool = True

    @property
    def name(self) -> str:
        return self.variant["name"]

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.name, "device": self.device, "auto": self.auto, "reason": self.reason,
                "candidates": [candidate.to_dict() for candidate in self.candidates]}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def assess(variant: dict[str, Any], host: HostProfile) -> Candidate:
    """How ``variant`` would run on ``host``: runtime present, fit, device, estimated speed."""
    backend, precision = str(variant.get("backend")), str(variant.get("precision", "fp32"))
    graph = str(variant.get("graph", "transformer"))
    parity = variant.get("parity") if isinstance(variant.get("parity"), dict) else {}
    candidate = Candidate(name=str(variant["name"]), backend=backend, precision=precision, graph=graph,
                          validated=parity.get("passed") is True, cosine_min=_number(parity.get("cosine_min")))
    if backend not in BACKENDS:
        candidate.excluded, candidate.exclusion = f"unknown backend {backend!r}", "constraint"
        return candidate
    needed = [RUNTIME_OF[backend]] + (["sentence-transformers", LOADER_OF[backend]] if graph == "transformer" else [])
    missing = [component for component in needed if not host.has(component)]
    if missing:
        fixes = sorted({install_hint(component) for component in missing})
        candidate.excluded = f"needs {', '.join(missing)} ({'; '.join(fixes)})"
        candidate.exclusion = "runtime"
    quantization = variant.get("quantization") if isinstance(variant.get("quantization"), dict) else {}
    if backend == "onnx" and precision in ("fp32", "fp16") and host.onnx_cuda:
        candidate.device = "cuda"
    _judge_fit(candidate, quantization, host)
    candidate.speed = _estimate_speed(candidate, host)
    return candidate


def _judge_fit(candidate: Candidate, quantization: dict[str, Any], host: HostProfile) -> None:
    def demote(fit: str, note: str) -> None:
        if FITS.index(fit) > FITS.index(candidate.fit):
            candidate.fit = fit
        candidate.notes.append(note)

    if host.arch not in ("x86_64", "arm64"):
        if candidate.backend == "openvino":
            demote("poor", f"OpenVINO runs on x86-64 and ARM64 CPUs, not {host.arch}")
        else:
            demote("check", f"untested CPU architecture {host.arch}")
    if candidate.backend == "onnx" and candidate.precision == "int8":
        method = quantization.get("method", "dynamic")
        isa = quantization.get("isa")
        full_range = method == "static" or isa in ("avx512_vnni", "arm64")
        if host.onnx_cuda:
            candidate.notes.append("int8 ONNX runs on the CPU (CUDA has no kernels for its integer ops)")
        if host.arch == "x86_64" and not (host.vnni or host.amx) and full_range:
            what = f"quantised for {isa}" if method == "dynamic" else "statically quantised (uint8 x int8)"
            demote("poor", f"{what} without the reduced weight range: this CPU has no VNNI, so its uint8 x int8 "
                           "kernels can saturate and the numerics differ from validation")
        elif host.arch == "x86_64" and method == "dynamic" and isa in ("avx2", "avx512") and host.vnni:
            candidate.notes.append(f"reduced-range weights for {isa}: works here, a build with isa avx512_vnni "
                                   "would be slightly more accurate")
    if candidate.backend == "openvino" and host.arch == "arm64":
        if candidate.precision == "int8":
            demote("check", "OpenVINO's ARM CPU plugin lacks int8 kernels for many ops: run --check")
        else:
            candidate.notes.append("OpenVINO on ARM: run --check once on this host")


def _estimate_speed(candidate: Candidate, host: HostProfile) -> float:
    if candidate.device == "cuda":
        return 4.0 if candidate.precision == "fp16" else 3.0
    if candidate.precision == "int8":
        return 2.0 if host.int8_accelerated else 1.3
    return 0.95 if candidate.precision == "fp16" else 1.0


def _check_constraint(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise BadInputError(f"--{name} {value!r}: expected one of {', '.join(allowed)}")


def choose_variant(
    manifest: dict[str, Any],
    host: HostProfile,
    *,
    variant: str | None = "auto",
    backend: str | None = None,
    precision: str | None = None,
    graph: str | None = None,
    min_cosine: float | None = None,
) -> Choice:
    """The variant of ``manifest`` to use on ``host`` (see the module docstring for how ``auto`` ranks).

    ``variant`` names one explicitly (then the constraints must be unset): it must exist, not have failed
    validation, and have its runtime installed. Raises ``BadInputError`` for an unknown name or constraint
    value, or when the constraints leave nothing; ``CheckFailedError`` when no variant passed validation
    (or the named one failed it); ``ExternalError`` when the runtimes the remaining variants need are missing.
    """
    _check_constraint("backend", backend, BACKENDS)
    _check_constraint("precision", precision, PRECISIONS)
    _check_constraint("graph", graph, GRAPHS)
    if min_cosine is not None and not -1.0 <= min_cosine <= 1.0:
        raise BadInputError(f"--min-cosine {min_cosine}: expected a number between -1 and 1")
    variants = [v for v in manifest["variants"] if isinstance(v, dict)]
    if not variants:
        raise BadInputError("the manifest lists no variants")
    candidates = [assess(v, host) for v in variants]
    by_name = {str(v["name"]): v for v in variants}
    if variant not in (None, "", "auto"):
        return _explicit(variant, by_name, candidates, host, (backend, precision, graph, min_cosine))

    for candidate in candidates:
        if candidate.excluded and candidate.exclusion == "runtime":
            continue
        reason = _constraint_miss(candidate, backend, precision, graph, min_cosine)
        if not candidate.validated:
            parity = by_name[candidate.name].get("parity")
            candidate.excluded = "failed validation" if isinstance(parity, dict) else "not validated"
            candidate.exclusion = "validation"
        elif reason:
            candidate.excluded, candidate.exclusion = reason, "constraint"
    # A variant lacking its runtime but also failing validation or a constraint is reported for those.
    for candidate in candidates:
        if candidate.exclusion == "runtime":
            if not candidate.validated:
                candidate.exclusion = "validation"
                candidate.excluded = "not validated; " + str(candidate.excluded)
            elif reason := _constraint_miss(candidate, backend, precision, graph, min_cosine):
                candidate.exclusion, candidate.excluded = "constraint", reason

    eligible = [c for c in candidates if c.excluded is None]
    if not eligible:
        raise _nothing_left(candidates)
    cpu_side = [c for c in eligible if c.device == "cpu"]
    _apply_bench(cpu_side, by_name)
    eligible.sort(key=Candidate.rank_key)
    best = eligible[0]
    candidates.sort(key=lambda c: (c.excluded is not None, c.rank_key()))
    return Choice(variant=by_name[best.name], device=best.device, reason=_reason(best, eligible, candidates, host),
                  candidates=candidates)


def _constraint_miss(candidate: Candidate, backend, precision, graph, min_cosine) -> str | None:
    if backend is not None and candidate.backend != backend:
        return f"backend {candidate.backend}, not {backend}"
    if precision is not None and candidate.precision != precision:
        return f"precision {candidate.precision}, not {precision}"
    if graph is not None and candidate.graph != graph:
        return f"graph: {candidate.graph}, not {graph}"
    if min_cosine is not None:
        if candidate.cosine_min is None:
            return "no parity cosine_min recorded"
        if candidate.cosine_min < min_cosine:
            return f"cosine_min {candidate.cosine_min:.4f} < {min_cosine}"
    return None


def _apply_bench(candidates: list[Candidate], by_name: dict[str, dict[str, Any]]) -> None:
    """Use the manifest's bench numbers as the speed when every CPU candidate has them."""
    if not candidates:
        return
    benches = [by_name[c.name].get("bench") if isinstance(by_name[c.name].get("bench"), dict) else {} for c in candidates]
    for key in ("ratio_to_torch", "throughput"):
        values = [_number(bench.get(key)) for bench in benches]
        if all(value is not None and value > 0 for value in values):
            for candidate, value in zip(candidates, values):
                candidate.speed, candidate.speed_source = float(value), f"bench {key}"
            return


def _speed_text(candidate: Candidate) -> str:
    if candidate.speed_source == "bench ratio_to_torch":
        return f"{candidate.speed:.2f}x torch in the manifest's bench"
    if candidate.speed_source == "bench throughput":
        return f"{candidate.speed:.1f} texts/s in the manifest's bench"
    return f"estimated x{candidate.speed:g} for {candidate.precision} on {'this GPU' if candidate.device == 'cuda' else 'this CPU'}"


def _reason(best: Candidate, eligible: list[Candidate], candidates: list[Candidate], host: HostProfile) -> str:
    cosine = f"cosine_min {best.cosine_min:.5f}" if best.cosine_min is not None else "validated"
    parts = [f"{best.backend} {best.precision} (graph: {best.graph}) on {best.device}",
             f"validated ({cosine})", _speed_text(best)]
    if best.fit != "good":
        parts.append(f"fit: {best.fit}")
    parts.extend(best.notes)
    others = [c for c in eligible if c is not best]
    summary = f"best of {len(eligible)} usable validated variant{'s' if len(eligible) != 1 else ''}"
    demoted = [c for c in others if c.fit != "good"]
    if demoted:
        summary += "; demoted: " + "; ".join(f"{c.name} ({c.fit}: {c.notes[0] if c.notes else c.fit})" for c in demoted[:2])
    excluded = [c for c in candidates if c.excluded]
    if excluded:
        summary += "; excluded: " + ", ".join(f"{c.name} ({c.excluded})" for c in excluded[:3]) + (
            f" and {len(excluded) - 3} more" if len(excluded) > 3 else "")
    return f"{best.name} for this host ({host.summary()}): " + ", ".join(parts) + f"; {summary}"


def _nothing_left(candidates: list[Candidate]) -> Exception:
    kinds = {c.exclusion for c in candidates}
    listing = "; ".join(f"{c.name}: {c.excluded}" for c in candidates)
    if "runtime" in kinds:
        return ExternalError(f"no usable variant: {listing}")
    if kinds == {"validation"}:
        return CheckFailedError(f"no variant passed validation ({listing}); validate the artifact first")
    return BadInputError(f"no variant matches: {listing}")


def _explicit(name: str, by_name: dict[str, dict[str, Any]], candidates: list[Candidate], host: HostProfile,
              constraints: tuple) -> Choice:
    if any(value is not None for value in constraints):
        raise BadInputError("--variant NAME chooses one variant: leave out --backend/--precision/--graph/--min-cosine "
                            "(or use --variant auto)")
    if name not in by_name:
        raise BadInputError(f"no variant {name!r} in the manifest (variants: {', '.join(by_name)})")
    candidate = next(c for c in candidates if c.name == name)
    parity = by_name[name].get("parity")
    if isinstance(parity, dict) and parity.get("passed") is not True:
        raise CheckFailedError(f"variant {name} failed validation; refusing to fetch it (see parity in manifest.json)")
    if candidate.exclusion == "runtime":
        raise ExternalError(f"variant {name} cannot run here: {candidate.excluded}")
    notes = ([] if candidate.validated else ["NOT validated"]) + candidate.notes
    reason = (f"{name} as asked: {candidate.backend} {candidate.precision} (graph: {candidate.graph}) on "
              f"{candidate.device}, fit for this host ({host.summary()}): {candidate.fit}"
              + (f"; {'; '.join(notes)}" if notes else ""))
    return Choice(variant=by_name[name], device=candidate.device, reason=reason, candidates=candidates, auto=False)

