"""``exporter doctor`` on this machine, with the real runtimes: what it reports and when it fails.

The CPU features it reports are compared with /proc/cpuinfo (this machine kind may or may not have
AVX-512 VNNI: the report must tell the truth either way). A broken runtime is a real broken install: a
folder on PYTHONPATH whose ``openvino`` package fails to import, in a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_fetch import built_artifact

from exporter.cli import main
from exporter.diagnostics.doctor import doctor


def cpuinfo_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def run_doctor(*args: str, env_path: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if env_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run([sys.executable, "-m", "exporter", "doctor", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_doctor_on_this_machine_with_the_demo_model():
    """The acceptance: torch, onnx and openvino usable, each encoding the demo model; CPU features true."""
    process = run_doctor("--json", "--backend", "torch", "--backend", "onnx", "--backend", "openvino")
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout)
    for name in ("torch", "onnx", "openvino"):
        backend = report["backends"][name]
        assert backend["status"] == "ok" and backend["usable"], backend
        encodes = [smoke for smoke in backend["smoke"] if "2 texts" in smoke["what"]]
        assert encodes and all(smoke["passed"] for smoke in encodes), backend["smoke"]
        assert "shape (2, 384)" in encodes[0]["detail"]
    assert report["model"] == "demo export"
    for package in ("torch", "onnxruntime", "openvino", "nncf", "optimum", "sentence-transformers"):
        assert report["packages"][package]["version"], package
    assert "CPUExecutionProvider" in report["onnxruntime"]["providers"]
    assert "CPU" in report["openvino"]["devices"]
    flags = cpuinfo_flags()
    reported = report["host"]["cpu_flags"]
    for flag in ("avx2", "avx512f", "avx512_vnni", "amx_int8"):
        assert reported[flag] == (flag in flags), flag
    assert report["host"]["features"]["vnni"] == bool(flags & {"avx512_vnni", "avx_vnni"})
    assert report["gpu"]["summary"]


def test_doctor_human_report_names_every_section():
    result = CliRunner().invoke(main, ["doctor", "--quick"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for needle in ("Host:", "CPU features:", "avx512_vnni", "GPU:", "Packages:", "onnxruntime", "openvino",
                   "nncf", "Backends:", "torch     ok", "onnx      ok", "openvino  ok"):
        assert needle in text, needle
    assert "demo export" not in text


def test_doctor_on_an_artifact_uses_its_best_variant_per_backend(tiny_model, tmp_path_factory):
    artifact = built_artifact(tiny_model, tmp_path_factory)
    report = doctor(artifact)
    onnx_smoke = report.backends["onnx"].smoke[-1]
    openvino_smoke = report.backends["openvino"].smoke[-1]
    assert onnx_smoke.passed and onnx_smoke.what.startswith("onnx-"), onnx_smoke
    assert openvino_smoke.passed and openvino_smoke.what.startswith("openvino-"), openvino_smoke
    assert report.choice is not None and report.choice.get("variant"), report.choice
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
