"""This host as a plain profile: CPU architecture and features, installed runtimes, devices, GPUs.

``HostProfile.detect()`` reads what is installed (runtimes and their versions, ONNX Runtime's execution
providers, OpenVINO's devices), the CPU's architecture and features, and whether an NVIDIA GPU is present.
A profile can also be written down by hand, so anything that depends on the host (the variant choice in
``exporter.deploy.choice``, ``isa: auto``) is tested for any CPU without faking a runtime.

Nothing here imports torch, onnxruntime or openvino except ``HostProfile.detect(probe=True)``.
"""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exporter.constants import NATIVE_BF16_FLAGS
from exporter.runtime.packages import COMPONENTS, component_version

AVX512_VNNI_FLAGS = frozenset({"avx512_vnni", "avx512vnni"})
VNNI_FLAGS = AVX512_VNNI_FLAGS | {"avx_vnni", "avxvnni", "avx_vnni_int8"}
AMX_FLAGS = frozenset({"amx_int8", "amx_tile"})
ARM_DOT_FLAGS = frozenset({"asimddp", "dotprod"})
# The flags doctor reports (and a profile keeps): what decides int8 and fp16 speed.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                  "amx_tile", "amx_int8", "amx_bf16", "f16c", "fma", "asimd", "asimddp", "i8mm", "sve", "fphp")
ARM_REPORTED_FLAGS = frozenset({"asimd", "asimddp", "i8mm", "sve", "fphp"})
_NUMPY_FLAGS = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512BW": "avx512bw", "AVX512VNNI": "avx512_vnni",
                "AVX512BF16": "avx512_bf16", "AVX512FP16": "avx512_fp16", "F16C": "f16c", "FMA3": "fma",
                "ASIMD": "asimd", "ASIMDDP": "asimddp", "SVE": "sve", "FPHP": "fphp"}
# The CPU classes that run embedding models at different speeds relative to torch (what the variant choice's
# speed table, exporter/data/speed_table.json, is keyed by), each with how a reason names it.
ISA_CLASSES: dict[str, str] = {
    "amx": "AMX CPUs",  # AMX-INT8 + AMX-BF16: Intel Xeon Sapphire Rapids and later
    "avx512_vnni_bf16": "AVX-512 VNNI + BF16 CPUs without AMX",  # AMD Zen 4/5, Intel Cooper Lake
    "avx512_vnni": "AVX-512 VNNI CPUs without BF16",  # Intel Cascade Lake, Ice Lake
    "avx_vnni": "AVX-VNNI CPUs without AVX-512",  # Intel Alder Lake and later client and E-core CPUs
    "avx2": "AVX2 CPUs without VNNI",  # Haswell to Skylake (Skylake-SP's AVX-512 too), AMD Zen 1-3
    "arm64": "ARM64 CPUs with dot-product",  # Graviton 2 and later, Ampere, Apple M
}


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
    def native_bf16(self) -> bool:
        """bf16 matrix products in hardware (AVX512_BF16 or AMX-BF16): where OpenVINO's bf16 pays off."""
        return bool(self.cpu_flags & NATIVE_BF16_FLAGS)

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

    @property
    def isa_class(self) -> str | None:
        """This CPU's speed class (a key of ``ISA_CLASSES``); ``None`` for a CPU in none of them (x86 without
        AVX2, ARM without the dot-product extension, another architecture)."""
        if self.arch == "arm64":
            return "arm64" if self.arm_dot else None
        if self.arch != "x86_64":
            return None
        if self.amx:
            return "amx"
        if self.cpu_flags & AVX512_VNNI_FLAGS:
            return "avx512_vnni_bf16" if self.native_bf16 else "avx512_vnni"
        if self.vnni:
            return "avx_vnni"
        return "avx2" if self.avx2 else None

    def int8_isa(self) -> str:
        """The ``quantization.isa`` a build on this host would pick for ``isa: auto``."""
        if self.arch == "arm64":
            return "arm64"
        if self.cpu_flags & AVX512_VNNI_FLAGS:
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

    def cpu_line(self) -> str:
        """The CPU's name and the reported flags it has: "Intel(R) Xeon(R) ... (avx2, avx512f, avx512_bf16)"."""
        flags = [flag for flag in REPORTED_FLAGS if flag in self.cpu_flags]
        return f"{self.cpu_name or self.arch} ({', '.join(flags) or 'no reported flags'})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpu_flags"] = sorted(self.cpu_flags)
        data["runtimes"] = dict(sorted(self.runtimes.items()))
        data.update(onnx_providers=list(self.onnx_providers), openvino_devices=list(self.openvino_devices),
                    gpus=list(self.gpus))
        data["features"] = {"avx2": self.avx2, "avx512": self.avx512, "vnni": self.vnni, "amx": self.amx,
                            "arm_dot_product": self.arm_dot, "int8_accelerated": self.int8_accelerated,
                            "onnx_cuda": self.onnx_cuda, "int8_isa": self.int8_isa(),
                            "isa_class": self.isa_class}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostProfile:
        names = {"arch", "cpu_flags", "runtimes", "onnx_providers", "openvino_devices", "cuda", "cpu_name", "gpus"}
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def from_cpu_line(cls, line: str) -> HostProfile:
        """The CPU a ``cpu_line()`` describes (as a manifest records the host it was validated on): its name,
        its reported flags, and its architecture (ARM when an ARM flag or the name says so, else x86-64)."""
        name, _, listed = line.rpartition(" (")
        if not name or not listed.endswith(")"):
            name, listed = line, ")"
        flags = frozenset(listed[:-1].split(", ")) & set(REPORTED_FLAGS)
        arm = bool(flags & ARM_REPORTED_FLAGS) or normalise_arch(name) == "arm64"
        return cls(arch="arm64" if arm else "x86_64", cpu_flags=flags, cpu_name=name)

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


def detect_isa() -> str:
    """The best int8 instruction set of this host, for ``isa: auto`` (one of ``constants.ISAS``)."""
    return HostProfile(arch=platform.machine(), cpu_flags=cpu_flags()).int8_isa()
