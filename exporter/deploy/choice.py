"""Which variant of an artifact suits a host.

``choose_variant(manifest, profile, ...)`` is a pure function of the manifest and a profile, so the choice
for any host (AVX2-only, VNNI, ARM, CUDA...) is tested by writing the profile down, with no runtime faked.

How ``auto`` chooses, in order:

1. Only variants whose validation passed (``parity.passed`` true in the manifest) are candidates, then the
   constraints (``backend``, ``precision``, ``graph``, ``min_cosine`` on ``parity.cosine_min``).
2. A variant whose runtime is not installed is excluded: ``onnx`` needs onnxruntime, ``openvino`` needs
   openvino. Both graph kinds run in the deploy runtime (``exporter.load``), so nothing else is needed.
   ``torch`` variants (weights for sentence-transformers, ``load_sentence_transformer``) need torch and
   sentence-transformers, and ``auto`` excludes them unless ``backend="torch"`` is asked for.
3. Each remaining variant gets a fit for this host: ``good``, ``check`` (works, but this host's numerics or
   kernels differ from where it was validated: check it once, ``fetch(..., check=True)``) or ``poor`` (known to
   misbehave here). Check: a bf16 variant on a CPU without AVX512_BF16 / AMX-BF16 (OpenVINO falls back to f32
   or emulates bf16 there), and likewise an int8 variant whose float layers run bf16 (``quantization.
   float_precision: bf16``). Poor: an ONNX int8 graph quantised without the reduced 7-bit weight range
   (``quantization.isa`` ``avx512_vnni`` / ``arm64``, or ``static``) on an x86 CPU without VNNI, where the
   uint8 x int8 kernels can saturate; an unsupported CPU architecture. Check: OpenVINO int8 on ARM, unknown
   CPUs. OpenVINO fp32/fp16 on ARM is good (the reason still says to check it once).
4. Ranking: fit, then variants whose recorded parity numbers meet the tool's precision defaults before
   those that passed only thresholds their recipe loosened (``meets_defaults``; the reason names what fell
   short, e.g. "cosine_min 0.93 < default 0.95"), then ``graph: transformer`` before ``graph: sentence`` (it
   also loads in sentence-transformers), then variants that run on the GPU (ONNX fp32/fp16 with onnxruntime's
   CUDAExecutionProvider on an NVIDIA host; int8 ONNX graphs run on the CPU there), then speed, then
   ``parity.cosine_min``, then the name.
   Speed on the CPU (x torch fp32) comes from the shipped speed table (``exporter.deploy.speed_table``):
   the row for this CPU's ISA class (``HostProfile.isa_class``: ``amx``, ``avx512_vnni_bf16``,
   ``avx512_vnni``, ``avx_vnni``, ``avx2``, ``arm64``) and the variant's backend, precision and quantisation
   kind (``none``, or the int8 method), its ``mixed`` length class (else the one measured). Rows are measured
   (on a named CPU, through ``exporter bench`` or sentence-transformers), simulated (a newer CPU limited
   to the class's ISA) or estimated; the reason says which.
   The manifest's bench numbers (``bench.ratio_to_torch``, else ``bench.throughput``) replace the table only
   when every CPU candidate has them and the manifest records that they were measured on a CPU of this ISA
   class (``bench.measured_on``, the bench host's ``HostProfile.cpu_line()``, written by ``exporter bench``):
   otherwise they describe another CPU than the deploy host's. Where the table has
   no row (a CPU outside the classes, int8 ``weight_only``...) and on the GPU, an estimate: int8 x2.0 with
   VNNI / AMX / ARM dot-product, x1.3 without, bf16 x1.6 with AVX512_BF16 / AMX-BF16, x0.9 without, fp16 x0.95
   (half the file, fp32 compute on CPUs), fp32 x1.0; on the GPU fp16 x4.0, fp32 x3.0.
   ``Candidate.speed_source`` says which (``table amx measured``, ``table avx2 estimated``, ``bench on this
   ISA class``, ``estimate``).

The manifest comes in typed (``exporter.artifact.manifest.Manifest``) and the choice hands back its
``Variant``. Messages name the parameters (``backend=``, ``min_cosine=``), not the CLI's flags. Nothing here
imports a runtime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from exporter.artifact.manifest import BenchSummary, Manifest, QuantizationRecord, Variant
from exporter.constants import BACKENDS, DEFAULT_METHOD, GRAPHS, PRECISIONS, TORCH_EXTRA
from exporter.deploy.speed_table import DEFAULT_LENGTH_CLASS, shipped_speed_table
from exporter.errors import BadInputError, ExporterError, ExternalError, NotValidatedError
from exporter.runtime.host import ISA_CLASSES, HostProfile
from exporter.runtime.packages import install_hint
from exporter.validators.thresholds import THRESHOLD_KEYS, default_thresholds

RUNTIME_OF = {"onnx": "onnxruntime", "openvino": "openvino", "torch": "torch"}
# torch variants load in sentence-transformers (``load_sentence_transformer``), not in the deploy runtime: an
# automatic choice never lands on one unless torch is asked for.
TORCH_NOT_AUTO = "torch variant: chosen only with backend='torch' (it loads through load_sentence_transformer)"
FITS = ("good", "check", "poor")
CHECK_HINT = "check it once on this host (fetch with check=True)"


@dataclass
class Candidate:
    """One variant as this host sees it. ``excluded`` says why it cannot be chosen (``exclusion`` is the kind:
    ``validation``, ``constraint`` or ``runtime``); otherwise ``fit``, ``device`` and ``speed`` rank it.
    ``speed_source`` says where the speed comes from, ``speed_text`` says it as the reason does."""

    name: str
    backend: str
    precision: str
    graph: str
    validated: bool
    cosine_min: float | None
    float_precision: str = "f32"  # what its float ops compute in: bf16 for bf16 variants and int8 + bf16 float
    fit: str = "good"
    device: str = "cpu"
    speed: float = 1.0
    speed_source: str = "estimate"
    speed_text: str = ""
    notes: list[str] = field(default_factory=list)
    excluded: str | None = None
    exclusion: str | None = None
    meets_defaults: bool = True  # its recorded parity numbers meet the precision defaults
    below_defaults: list[str] = field(default_factory=list)  # e.g. "cosine_min 0.93 < default 0.95"

    def rank_key(self) -> tuple:
        return (FITS.index(self.fit), 0 if self.meets_defaults else 1, 0 if self.graph == "transformer" else 1,
                0 if self.device == "cuda" else 1, -self.speed,
                -(self.cosine_min if self.cosine_min is not None else -2.0), self.name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Choice:
    """The chosen variant (its manifest entry), where it runs, and one line saying why."""

    variant: Variant
    device: str
    reason: str
    candidates: list[Candidate]
    auto: bool = True

    @property
    def name(self) -> str:
        return self.variant.name

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.name, "device": self.device, "auto": self.auto, "reason": self.reason,
                "candidates": [candidate.to_dict() for candidate in self.candidates]}


def assess(variant: Variant, host: HostProfile) -> Candidate:
    """How ``variant`` would run on ``host``: runtime present, fit, device, speed (table or estimate)."""
    backend, precision, graph = variant.backend, variant.precision, variant.graph
    parity = variant.parity
    candidate = Candidate(name=variant.name, backend=backend, precision=precision, graph=graph,
                          validated=variant.validated, cosine_min=parity.cosine_min if parity is not None else None,
                          float_precision=float_precision_of(variant))
    if backend not in BACKENDS:
        candidate.excluded, candidate.exclusion = f"unknown backend {backend!r}", "constraint"
        return candidate
    needed = [RUNTIME_OF[backend]] + (["sentence-transformers"] if backend == "torch" else [])
    missing = [component for component in needed if not host.has(component)]
    if missing:
        fixes = [TORCH_EXTRA] if backend == "torch" else sorted({install_hint(component) for component in missing})
        candidate.excluded = f"needs {', '.join(missing)} ({'; '.join(fixes)})"
        candidate.exclusion = "runtime"
    if backend == "onnx" and precision in ("fp32", "fp16") and host.onnx_cuda:
        candidate.device = "cuda"
    _judge_fit(candidate, variant.quantization or QuantizationRecord(), host)
    _judge_bf16_float_int8(candidate, variant, host)
    candidate.below_defaults = below_defaults(variant)
    if candidate.below_defaults:
        candidate.meets_defaults = False
        candidate.notes.append("passed only loosened thresholds: " + ", ".join(candidate.below_defaults))
    _rate_speed(candidate, variant, host)
    return candidate


def below_defaults(variant: Variant) -> list[str]:
    """The recorded parity numbers of ``variant`` that miss its precision's default thresholds (numbers not
    recorded are not held against it), e.g. ``["cosine_min 0.9312 < default 0.95"]``."""
    if variant.parity is None:
        return []
    try:
        defaults = default_thresholds(variant.precision).model_dump()
    except ValueError:
        return [f"no default thresholds for precision {variant.precision!r}"]
    short = []
    for key in THRESHOLD_KEYS:
        value = getattr(variant.parity, key)
        if value is not None and defaults[key] is not None and value < defaults[key]:
            # as many decimals as it takes for the printed value to read below the default
            text = next((f"{value:.{d}f}" for d in range(4, 13) if float(f"{value:.{d}f}") < defaults[key]),
                        repr(value))
            short.append(f"{key} {text} < default {defaults[key]:g}")
    return short


def _demote(candidate: Candidate, fit: str, note: str) -> None:
    """Lower the candidate's fit to ``fit`` (never raise it) and say why."""
    if FITS.index(fit) > FITS.index(candidate.fit):
        candidate.fit = fit
    candidate.notes.append(note)


def _judge_fit(candidate: Candidate, quantization: QuantizationRecord, host: HostProfile) -> None:
    if host.arch not in ("x86_64", "arm64"):
        if candidate.backend == "openvino":
            _demote(candidate, "poor", f"OpenVINO runs on x86-64 and ARM64 CPUs, not {host.arch}")
        else:
            _demote(candidate, "check", f"untested CPU architecture {host.arch}")
    if candidate.backend == "onnx" and candidate.precision == "int8":
        method = quantization.method or "dynamic"
        isa = quantization.isa
        full_range = method == "static" or isa in ("avx512_vnni", "arm64")
        if host.onnx_cuda:
            candidate.notes.append("int8 ONNX runs on the CPU (CUDA has no kernels for its integer ops)")
        if host.arch == "x86_64" and not (host.vnni or host.amx) and full_range:
            what = f"quantised for {isa}" if method == "dynamic" else "statically quantised (uint8 x int8)"
            _demote(candidate, "poor", f"{what} without the reduced weight range: this CPU has no VNNI, so its "
                                       "uint8 x int8 kernels can saturate and the numerics differ from validation")
        elif host.arch == "x86_64" and method == "dynamic" and isa in ("avx2", "avx512") and host.vnni:
            candidate.notes.append(f"reduced-range weights for {isa}: works here, a build with isa avx512_vnni "
                                   "would be slightly more accurate")
    if candidate.float_precision == "bf16" and not host.native_bf16:
        what = "bf16" if candidate.precision == "bf16" else "its float layers' bf16"
        _demote(candidate, "check", f"{what} runs natively only on CPUs with AVX512_BF16 or AMX-BF16: on this one "
                                    f"OpenVINO falls back to f32 or emulates bf16 (slower than the f32 variant); "
                                    f"{CHECK_HINT}")
    if candidate.backend == "openvino" and host.arch == "arm64":
        if candidate.precision == "int8":
            _demote(candidate, "check", f"OpenVINO's ARM CPU plugin lacks int8 kernels for many ops: {CHECK_HINT}")
        else:
            candidate.notes.append(f"OpenVINO on ARM: {CHECK_HINT}")


def float_precision_of(variant: Variant) -> str:
    """What the variant's float ops compute in, from the numerics it was validated with: bf16 or f32."""
    bf16 = variant.precision == "bf16" or variant.runtime_options.get("INFERENCE_PRECISION_HINT") == "bf16"
    return "bf16" if bf16 else "f32"


def _judge_bf16_float_int8(candidate: Candidate, variant: Variant, host: HostProfile) -> None:
    """int8 with bf16 float ops: OpenVINO picks different kernels per CPU class, and they are not equally
    right (2026.4 on AMX gave MiniLM cosine 0.67 at batch 8, 0.99 at batch 32; the same IR without AMX was
    right at every batch size). Good only on the class of CPU it was validated on."""
    if candidate.precision != "int8" or candidate.float_precision != "bf16" or not host.native_bf16:
        return  # without native bf16 the bf16 check of _judge_fit applies
    validated_class = isa_class_of(variant.parity.validated_on if variant.parity is not None else None)
    if validated_class == host.isa_class:
        return
    where = ISA_CLASSES[validated_class] if validated_class else "an unrecorded CPU"
    _demote(candidate, "check", f"int8 with bf16 float ops was validated on {where}, and OpenVINO runs other "
                                f"kernels on {ISA_CLASSES.get(host.isa_class or '', 'this CPU')} (on AMX they gave "
                                f"wrong embeddings for small batches of MiniLM): {CHECK_HINT}")


def quantization_kind(variant: Variant) -> str:
    """The speed table's quantisation kind of ``variant``: ``none`` for float variants, else its int8 method
    (the backend's default method when the manifest records none)."""
    if variant.precision != "int8":
        return "none"
    method = variant.quantization.method if variant.quantization is not None else None
    return method or DEFAULT_METHOD.get(variant.backend, "dynamic")


def _rate_speed(candidate: Candidate, variant: Variant, host: HostProfile) -> None:
    """Set the candidate's speed, speed_source and speed_text: the speed table's row for this CPU's class on
    the CPU, else (no row, or on the GPU) the estimate."""
    table = shipped_speed_table()
    row = None
    if candidate.device == "cpu" and host.isa_class is not None:
        # the table tells int8 rows apart by their float ops' precision; a bf16 row is precision bf16
        float_ops = candidate.float_precision if candidate.precision == "int8" else "f32"
        row = table.lookup(host.isa_class, candidate.backend, candidate.precision, quantization_kind(variant),
                           float_ops)
    if row is None:
        candidate.speed, candidate.speed_source = _estimate_speed(candidate, host), "estimate"
        where = "this GPU" if candidate.device == "cuda" else "this CPU"
        candidate.speed_text = f"estimated x{candidate.speed:g} for {candidate.precision} on {where}"
        return
    source = table.source_of(row)
    length, candidate.speed = row.speed_for(DEFAULT_LENGTH_CLASS)
    candidate.speed_source = f"table {row.isa_class} {source.status}"
    cpus = ISA_CLASSES[row.isa_class]
    if source.status == "estimated":
        candidate.speed_text = f"estimated x{candidate.speed:g} for {candidate.precision} on {cpus} (no measurement)"
        return
    texts = "" if length == DEFAULT_LENGTH_CLASS else f" ({length} texts)"
    when = f", {source.date}" if source.date else ""
    candidate.speed_text = (f"{candidate.speed:.2f}x torch{texts} on {cpus} "
                            f"({source.status}: {source.how} on {source.cpu}{when})")


def _estimate_speed(candidate: Candidate, host: HostProfile) -> float:
    if candidate.device == "cuda":
        return 4.0 if candidate.precision == "fp16" else 3.0
    if candidate.precision == "int8":
        return 2.0 if host.int8_accelerated else 1.3
    if candidate.precision == "bf16":
        return 1.6 if host.native_bf16 else 0.9
    return 0.95 if candidate.precision == "fp16" else 1.0


def _check_constraint(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise BadInputError(f"{name}={value!r}: expected one of {', '.join(allowed)}")


def choose_variant(
    manifest: Manifest,
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
    value, or when the constraints leave nothing (``ManifestError`` for an unknown name); ``NotValidatedError``
    when no variant passed validation (or the named one failed it); ``ExternalError`` when the runtimes the
    remaining variants need are missing.
    """
    _check_constraint("backend", backend, BACKENDS)
    _check_constraint("precision", precision, PRECISIONS)
    _check_constraint("graph", graph, GRAPHS)
    if min_cosine is not None and not -1.0 <= min_cosine <= 1.0:
        raise BadInputError(f"min_cosine={min_cosine}: expected a number between -1 and 1")
    if not manifest.variants:
        raise BadInputError("the manifest lists no variants")
    candidates = [assess(v, host) for v in manifest.variants]
    if variant not in (None, "", "auto"):
        return _explicit(variant, manifest, candidates, host, (backend, precision, graph, min_cosine))

    for candidate in candidates:
        if candidate.backend == "torch" and backend != "torch":
            candidate.excluded, candidate.exclusion = TORCH_NOT_AUTO, "constraint"
            continue
        if candidate.excluded and candidate.exclusion == "runtime":
            continue
        reason = _constraint_miss(candidate, backend, precision, graph, min_cosine)
        if not candidate.validated:
            recorded = manifest.variant(candidate.name).parity is not None
            candidate.excluded = "failed validation" if recorded else "not validated"
            candidate.exclusion = "validation"
        elif reason:
            candidate.excluded, candidate.exclusion = reason, "constraint"
    # A variant lacking its runtime but also failing validation or a constraint is reported for those.
    for candidate in candidates:
        if candidate.exclusion == "runtime" and candidate.excluded != TORCH_NOT_AUTO:
            if not candidate.validated:
                candidate.exclusion = "validation"
                candidate.excluded = "not validated; " + str(candidate.excluded)
            elif reason := _constraint_miss(candidate, backend, precision, graph, min_cosine):
                candidate.exclusion, candidate.excluded = "constraint", reason

    eligible = [c for c in candidates if c.excluded is None]
    if not eligible:
        raise _nothing_left(candidates)
    cpu_side = [c for c in eligible if c.device == "cpu"]
    _apply_bench(cpu_side, manifest, host)
    eligible.sort(key=Candidate.rank_key)
    best = eligible[0]
    candidates.sort(key=lambda c: (c.excluded is not None, c.rank_key()))
    return Choice(variant=manifest.variant(best.name), device=best.device,
                  reason=_reason(best, eligible, candidates, host), candidates=candidates)


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


def _apply_bench(candidates: list[Candidate], manifest: Manifest, host: HostProfile) -> None:
    """Use the manifest's bench numbers as the speed when every CPU candidate has them and each was measured
    on a CPU of this host's ISA class (one run's numbers compare only with each other, so all or none)."""
    if not candidates or host.isa_class is None:
        return
    benches = [manifest.variant(c.name).bench for c in candidates]
    if any(bench_isa_class(bench) != host.isa_class for bench in benches):
        return
    cpus = ISA_CLASSES[host.isa_class]
    for key, text in (("ratio_to_torch", "{:.2f}x torch"), ("throughput", "{:.1f} texts/s")):
        values = [getattr(bench, key) if bench is not None else None for bench in benches]
        if all(value is not None and value > 0 for value in values):
            for candidate, value in zip(candidates, values, strict=True):
                candidate.speed, candidate.speed_source = float(value), "bench on this ISA class"
                candidate.speed_text = text.format(candidate.speed) + f" in the manifest's bench (run on {cpus})"
            return


def isa_class_of(cpu_line: str | None) -> str | None:
    """The ISA class of the CPU a manifest records (``parity.validated_on``, ``bench.measured_on``: a
    ``HostProfile.cpu_line()``); ``None`` when it records none."""
    return HostProfile.from_cpu_line(cpu_line).isa_class if cpu_line else None


def bench_isa_class(bench: BenchSummary | None) -> str | None:
    """The ISA class of the CPU a bench summary was measured on, when the manifest records it."""
    return isa_class_of(bench.measured_on if bench is not None else None)


def _reason(best: Candidate, eligible: list[Candidate], candidates: list[Candidate], host: HostProfile) -> str:
    cosine = f"cosine_min {best.cosine_min:.5f}" if best.cosine_min is not None else "validated"
    parts = [f"{best.backend} {best.precision} (graph: {best.graph}) on {best.device}",
             f"validated ({cosine})", best.speed_text]
    if best.fit != "good":
        parts.append(f"fit: {best.fit}")
    parts.extend(best.notes)
    others = [c for c in eligible if c is not best]
    summary = f"best of {len(eligible)} usable validated variant{'s' if len(eligible) != 1 else ''}"
    demoted = [c for c in others if c.fit != "good"]
    if demoted:
        summary += "; demoted: " + "; ".join(f"{c.name} ({c.fit}: {c.notes[0] if c.notes else c.fit})"
                                             for c in demoted[:2])
    excluded = [c for c in candidates if c.excluded]
    if excluded:
        summary += "; excluded: " + ", ".join(f"{c.name} ({c.excluded})" for c in excluded[:3]) + (
            f" and {len(excluded) - 3} more" if len(excluded) > 3 else "")
    return f"{best.name} for this host ({host.summary()}): " + ", ".join(parts) + f"; {summary}"


def _nothing_left(candidates: list[Candidate]) -> ExporterError:
    kinds = {c.exclusion for c in candidates}
    listing = "; ".join(f"{c.name}: {c.excluded}" for c in candidates)
    if "runtime" in kinds:
        return ExternalError(f"no usable variant: {listing}")
    if kinds == {"validation"}:
        return NotValidatedError(f"no variant passed validation ({listing}); validate the artifact first",
                                 variants=[c.name for c in candidates])
    return BadInputError(f"no variant matches: {listing}")


def _explicit(name: str, manifest: Manifest, candidates: list[Candidate], host: HostProfile,
              constraints: tuple) -> Choice:
    if any(value is not None for value in constraints):
        raise BadInputError(f"variant={name!r} chooses one variant: leave out backend=, precision=, graph= and "
                            "min_cosine= (or pass variant='auto')")
    chosen = manifest.variant(name)
    candidate = next(c for c in candidates if c.name == name)
    if chosen.parity is not None and not chosen.parity.passed:
        raise NotValidatedError(f"variant {name} failed validation; refusing to fetch it (see parity in "
                                "manifest.json)", variants=[name])
    if candidate.exclusion == "runtime":
        raise ExternalError(f"variant {name} cannot run here: {candidate.excluded}")
    notes = ([] if candidate.validated else ["NOT validated"]) + candidate.notes
    reason = (f"{name} as asked: {candidate.backend} {candidate.precision} (graph: {candidate.graph}) on "
              f"{candidate.device}, fit for this host ({host.summary()}): {candidate.fit}"
              + (f"; {'; '.join(notes)}" if notes else ""))
    return Choice(variant=chosen, device=candidate.device, reason=reason, candidates=candidates, auto=False)

