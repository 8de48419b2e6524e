"""``exporter doctor`` on this machine, with the real runtimes: what it reports and when it fails.

The CPU features it reports are compared with /proc/cpuinfo (this machine kind may or may not have
AVX-512 VNNI: the report must tell the truth either way). A broken runtime is a real broken install: a
folder on PYTHONPATH whose ``openvino`` package fails to import, in a child process.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SENTENCE_TRANSFORMERS_ONNX, write_recipe

from exporter import HostProfile, build, read_manifest
from exporter.cli import main
from exporter.diagnostics.doctor import doctor

SHOWN_FLAGS = ("avx2", "avx512f", "avx512_vnni", "amx_int8")  # listed in the human report, present or not


def cpuinfo_field(*names: str) -> str | None:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return None


def cpuinfo_flags() -> set[str]:
    return set((cpuinfo_field("flags", "Features") or "").split())


def nvidia_here() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists() or bool(
        shutil.which("nvidia-smi"))


def run_doctor(*args: str, env_path: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if env_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run([sys.executable, "-m", "exporter", "doctor", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def expected_status(backend: str) -> str:
    """Every backend is ok here, except ONNX where this sentence-transformers cannot load it (6.x has no
    optimum-onnx): partial, naming optimum-onnx."""
    return "partial" if backend == "onnx" and not SENTENCE_TRANSFORMERS_ONNX else "ok"


def test_doctor_on_this_machine_with_the_demo_model():
    """The acceptance: torch, onnx and openvino usable, each encoding the demo model; CPU features true."""
    process = run_doctor("--json", "--backend", "torch", "--backend", "onnx", "--backend", "openvino")
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout)
    for name in ("torch", "onnx", "openvino"):
        backend = report["backends"][name]
        assert backend["status"] == expected_status(name) and backend["usable"], backend
        if backend["status"] == "partial":
            assert "optimum-onnx" in backend["reason"] and "deploy runtime" in backend["reason"], backend
        encodes = [smoke for smoke in backend["smoke"] if "2 texts" in smoke["what"]]
        assert encodes and all(smoke["passed"] for smoke in encodes), backend["smoke"]
        assert "shape (2, 384)" in encodes[0]["detail"]
    assert report["model"] == "demo export"
    for package in ("torch", "onnxruntime", "openvino", "nncf", "optimum", "sentence-transformers"):
        assert report["packages"][package] == {"version": importlib.metadata.version(package), "importable": True,
                                               "error": None}, package
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    assert "CPU" in report["openvino"]["devices"]
    flags = cpuinfo_flags()
    reported = report["host"]["cpu_flags"]
    for flag in ("avx2", "avx512f", "avx512_vnni", "amx_int8"):
        assert reported[flag] == (flag in flags), flag
    assert report["host"]["features"]["vnni"] == bool(flags & {"avx512_vnni", "avx_vnni"})
    assert report["host"]["cpu"] == cpuinfo_field("model name", "Hardware", "cpu model")
    if nvidia_here():
        assert "NVIDIA GPU" in report["gpu"]["summary"] or "CUDA usable" in report["gpu"]["summary"], report["gpu"]
    else:
        assert report["gpu"]["summary"] == "no NVIDIA GPU / CUDA"
        assert report["gpu"]["torch_cuda"] is False and report["gpu"]["onnxruntime_cuda"] is False


def test_doctor_human_report_tells_this_host():
    """--quick: the CPU features /proc/cpuinfo has (and lacks), the installed versions, every backend ok."""
    result = CliRunner().invoke(main, ["doctor", "--quick"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    features = next(line for line in lines if line.strip().startswith("CPU features:"))
    flags = cpuinfo_flags()
    for flag in SHOWN_FLAGS:
        assert f"{flag} {'yes' if flag in flags else 'no'}" in features, (flag, features)
    isa_class = HostProfile.detect(probe=False).isa_class
    assert f"speed-table class: {isa_class or 'none (fetch estimates)'}" in features  # what fetch's choice reads
    for package in ("onnxruntime", "openvino", "nncf"):
        line = next(line for line in lines if line.split()[:1] == [package])
        assert line.split()[1].rstrip(";") == importlib.metadata.version(package), line
    import onnxruntime

    providers = f"providers: {', '.join(onnxruntime.get_available_providers())}"
    assert providers in next(line for line in lines if line.split()[:1] == ["onnxruntime"])
    backends = {line.split()[0]: line.split()[1] for line in lines[lines.index("Backends:") + 1:]
                if line.startswith("  ") and not line.startswith("   ")}
    assert backends == {name: expected_status(name).upper() + ":" if expected_status(name) != "ok" else "ok"
                        for name in ("torch", "onnx", "openvino")}, backends
    assert "loaded with" not in result.stdout  # --quick: no exported model, tiny in-memory graphs for the runtimes


def test_doctor_on_an_artifact_uses_its_best_variant_per_backend(tiny_model, tmp_path):
    """A validated artifact: each runtime backend encodes with its validated graph: transformer variant (ranked
    before graph: sentence), and the auto choice is reported."""
    variants = "".join(f"  - {{{variant}}}\n" for variant in ("backend: onnx", "backend: onnx, graph: sentence",
                                                              "backend: openvino"))
    recipe = write_recipe(tmp_path, f"name: tiny-doctor\nmodel:\n  path: {tiny_model('bert')}\nvariants:\n{variants}")
    artifact = build(recipe, output=tmp_path / "artifact").output
    manifest = read_manifest(artifact)
    assert all(variant.validated for variant in manifest.variants)
    report = doctor(artifact)
    shape = f"shape (2, {manifest.source.dimension})"
    for backend, chosen in (("onnx", "onnx-fp32"), ("openvino", "openvino-fp32")):
        status = report.backends[backend]
        smoke = status.smoke[-1]
        assert status.status == expected_status(backend), status
        assert smoke.passed and smoke.what.startswith(f"{chosen} ({manifest.variant(chosen).file_name}) loaded with "
                                                      "the deploy runtime"), smoke
        assert smoke.detail == f"{shape}, finite", smoke
    assert report.choice is not None and report.choice["variant"] in manifest.variant_names, report.choice
    assert report.to_dict()["model"] == str(artifact)


def test_a_broken_runtime_named_with_backend_fails_with_reason_and_fix(tmp_path):
    broken = tmp_path / "broken-site" / "openvino"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libopenvino.so.2026: cannot open shared object file')\n")
    process = run_doctor("--quick", "--json", "--backend", "openvino", env_path=broken.parent)
    assert process.returncode == 3, process.stderr
    report = json.loads(process.stdout)
    assert report["backends"]["openvino"]["status"] == "unusable"
    assert report["backends"]["onnx"]["usable"] and report["backends"]["torch"]["usable"]
    error = process.stderr.strip().splitlines()[-1]
    assert "openvino" in error and "cannot open shared object file" in error and "pip install" in error
    assert "Traceback" not in process.stderr
    # The same broken install, but only onnx asked for: exit 0.
    assert run_doctor("--quick", "--backend", "onnx", env_path=broken.parent).returncode == 0


@pytest.mark.parametrize("args, message", [(["--model", "no-such-folder"], "not a folder"),
                                           (["--backend", "tensorrt"], "tensorrt")])
def test_doctor_bad_input_is_exit_2(args, message):
    result = CliRunner().invoke(main, ["doctor", "--quick", *args])
    assert result.exit_code == 2
    assert message in result.output
