"""Fault injection with real processes and real files: every failure is a clean exit with one line on
stderr, nothing is half-written, and nothing is left behind.

Each case asserts the exit code, the one-line message, and that the previous state is intact."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import write_recipe

from exporter.cli.common import handle_errors

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


# The last variant (NNCF calibration) keeps a run going long enough to be interrupted after the others.
SLOW_RUN = ("  - {backend: onnx}\n  - {backend: openvino}\n"
            "  - {backend: openvino, precision: int8, quantization: {calibration: {samples: 300}}}\n")


def _recipe(folder: Path, model_dir: Path, variants: str = SLOW_RUN) -> Path:
    return write_recipe(folder, f"name: tiny\nmodel:\n  path: {model_dir}\nvariants:\n{variants}")


def _run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _litter(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "exporter", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _wait_for_staging(parent: Path, name: str, process: subprocess.Popen, marker: str | None = None,
                      timeout: float = 300) -> None:
    """Until the run has a staging folder (and, with ``marker``, that file exists inside it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for staging in parent.glob(f".{name}.partial-*"):
            if marker is None or list(staging.glob(marker)):
                return
        time.sleep(0.05)
    raise AssertionError(f"no staging folder for {name} within {timeout} s")


@pytest.fixture()
def previous(tmp_path, tiny_model):
    """A placed artifact folder from a first, complete run, and its content."""
    recipe = _recipe(tmp_path, tiny_model("bert", "mean", False, True))
    result = _run("run", str(recipe), "--output", "out", "--no-validate", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return recipe, tmp_path / "out", _tree(tmp_path / "out")


@pytest.mark.parametrize("marker", [None, "onnx/*.onnx", "openvino/*.xml"],
                         ids=["loading", "after-onnx", "after-openvino"])
def test_sigkill_during_a_build_then_rerun(tmp_path, previous, marker):
    recipe, out, before = previous
    process = _start(["run", str(recipe), "--output", "out", "--no-validate", "-q"], tmp_path)
    _wait_for_staging(tmp_path, "out", process, marker)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert _tree(out) == before  # the previous folder is intact
    assert any(name.startswith(".out.partial-") for name in _litter(tmp_path, "out"))  # what kill -9 leaves
    rerun = _run("run", str(recipe), "--output", "out", "--no-validate", "-q", cwd=tmp_path)
    assert rerun.returncode == 0 and rerun.stdout == rerun.stderr == ""
    assert _litter(tmp_path, "out") == []  # the stale staging folder and the lock are gone
    assert set(_tree(out)) == set(before)


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_and_sigterm_exit_after_removing_their_staging(tmp_path, previous, sig, code, word):
    recipe, out, before = previous
    process = _start(["run", str(recipe), "--output", "out", "--no-validate", "-q"], tmp_path)
    _wait_for_staging(tmp_path, "out", process, "onnx/*.onnx")
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert _one_line(stderr).startswith(f"{word}: nothing was placed")
    assert _tree(out) == before and _litter(tmp_path, "out") == []


def test_a_second_concurrent_run_exits_2_naming_the_first(tmp_path, previous):
    recipe, out, before = previous
    first = _start(["run", str(recipe), "--output", "out", "--no-validate", "-q"], tmp_path)
    _wait_for_staging(tmp_path, "out", first)
    second = _run("run", str(recipe), "--output", "out", "--no-validate", "-q", cwd=tmp_path, timeout=120)
    assert second.returncode == 2
    line = _one_line(second.stderr)
    assert f"another run (pid {first.pid}) is building it" in line and "--wait" in line
    first.wait(timeout=600)
    assert first.returncode == 0
    waited = _start(["run", str(recipe), "--output", "out", "--no-validate", "-q", "--wait"], tmp_path)
    blocker = _start(["run", str(recipe), "--output", "out", "--no-validate", "-q"], tmp_path)
    assert waited.wait(timeout=600) == 0 or blocker.wait(timeout=600) == 0
    blocker.wait(timeout=600)
    waited.wait(timeout=600)
    assert sorted([waited.returncode, blocker.returncode]) in ([0, 0], [0, 2])
    assert _litter(tmp_path, "out") == []


def test_disk_full_is_exit_3_and_the_previous_folder_stays(tmp_path, tiny_model):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root and a machine that allows it")
    try:
        recipe = _recipe(tmp_path, tiny_model("bert", "mean", False, True), "  - {backend: onnx}\n")
        (mount / "out").mkdir()
        (mount / "out" / "manifest.json").write_text('{"schema_version": 1, "variants": []}\n')
        before = _tree(mount / "out")
        result = _run("run", str(recipe), "--output", str(mount / "out"), "--no-validate", "-q", cwd=tmp_path)
        assert result.returncode == 3, result.stderr
        assert _one_line(result.stderr).startswith("error: disk full")
        assert _tree(mount / "out") == before and _litter(mount, "out") == []
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_read_only_output_is_exit_2(tmp_path, tiny_model):
    mount = tmp_path / "ro"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a read-only mount needs root and a machine that allows it (root ignores chmod)")
    try:
        recipe = _recipe(tmp_path, tiny_model("bert", "mean", False, True), "  - {backend: onnx}\n")
        result = _run("run", str(recipe), "--output", str(mount / "out"), "--no-validate", "-q", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "read-only" in _one_line(result.stderr).lower() or "not writable" in result.stderr
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


BOMB = "name: bomb\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefg", "bcdefgh", strict=True))


@pytest.mark.parametrize(("text", "fragment"), [
    (BOMB, "aliases expand to more than"),
    ("name: &a [*a]\n", "recursive alias"),
    ("name: x\n" + "# padding\n" * 120_000, "a recipe may have at most"),
    ("name: t\nmodel: {id: 'not a valid id!!'}\nvariants: [{backend: onnx}]\n", "model.id"),
])
def test_malformed_recipes_are_exit_2_quickly(tmp_path, text, fragment):
    (tmp_path / "recipe.yaml").write_text(text, encoding="utf-8")
    started = time.perf_counter()
    result = _run("recipe", "check", "recipe.yaml", cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert fragment in _one_line(result.stderr)
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda m: m.update(shared_files=None), "shared_files"),
    (lambda m: m["variants"][0]["files"][0].update(size=10**30), "size"),
    (lambda m: m["variants"][0]["files"][0].update(path="../../etc/passwd"), "unsafe path"),
    (lambda m: m["variants"][0].update(file_name="/etc/passwd"), "unsafe path"),
    (lambda m: m.update(variants="all of them"), "variants"),
])
def test_malformed_manifests_are_exit_2_for_every_command(tmp_path, previous, change, fragment):
    _, out, _ = previous
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    for command in (["validate", "out"], ["fetch", "out"], ["bench", "out", "--no-save"], ["push", "out"]):
        result = _run(*command, cwd=tmp_path, timeout=300)
        assert result.returncode == 2, (command, result.stderr)
        assert fragment in _one_line(result.stderr), command


def test_an_internal_error_is_exit_4_with_a_log_file(tmp_path, monkeypatch):
    """A bug of ours: one line naming a log file that holds the traceback, tokens redacted."""
    monkeypatch.setenv("EXPORTER_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecret")

    @click.command()
    @handle_errors
    def broken() -> None:
        raise RuntimeError("something we did not expect with hf_secretsecretsecret inside")

    result = CliRunner().invoke(broken, [])
    assert result.exit_code == 4
    line = _one_line(result.stderr)
    assert line.startswith("internal error: RuntimeError: something we did not expect") and "hf_secret" not in line
    logs = list((tmp_path / "logs").glob("exporter-*.log"))
    assert len(logs) == 1 and str(logs[0]) in line
    text = logs[0].read_text()
    assert "Traceback" in text and "raise RuntimeError" in text and "hf_secretsecretsecret" not in text


def test_quiet_runs_print_nothing(tmp_path, tiny_model):
    recipe = _recipe(tmp_path, tiny_model("bert", "mean", False, True),
                     "  - {backend: onnx, precision: int8}\n  - {backend: openvino, precision: int8, "
                     "quantization: {calibration: {samples: 8}}}\n")
    result = _run("run", str(recipe), "--output", "out", "-q", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # tiny random models may miss the int8 gate
    if result.returncode == 0:
        assert result.stdout == "" and result.stderr == ""
    else:
        assert result.stdout == "" and _one_line(result.stderr).startswith("error: parity validation failed")


@pytest.fixture()
def validated(tmp_path, tiny_model):
    """A validated artifact folder (one ONNX variant) and its content."""
    recipe = _recipe(tmp_path, tiny_model("bert", "mean", False, True), "  - {backend: onnx}\n")
    result = _run("run", str(recipe), "--output", "out", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "out", _tree(tmp_path / "out")


def test_a_killed_validate_changes_nothing_in_the_folder(tmp_path, validated):
    out, before = validated
    process = _start(["validate", "out", "-q"], tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:  # until the torch reference is being computed
        if "torch" in Path(f"/proc/{process.pid}/maps").read_text(errors="replace"):
            break
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert _tree(out) == before  # parity/, parity_report.json and manifest.json are written only at the end
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_symlink_out_of_the_folder_is_refused(tmp_path, validated):
    out, _ = validated
    shutil.move(str(out / "onnx"), str(tmp_path / "elsewhere"))
    (out / "onnx").symlink_to(tmp_path / "elsewhere")
    for command in (["fetch", "out", "--dest", "copy"], ["validate", "out"]):
        result = _run(*command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert "resolves outside the folder" in _one_line(result.stderr)
    assert not (tmp_path / "copy" / "onnx").exists()


def test_validate_and_bench_never_write_into_a_cache_snapshot(tmp_path, validated):
    """A folder from the huggingface_hub cache is a set of links into its blobs: results go to --report-dir."""
    out, _ = validated
    snapshot = tmp_path / "cache" / "models--org--name" / "snapshots" / ("0" * 40)
    blobs = tmp_path / "cache" / "models--org--name" / "blobs"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            blob = blobs / f"{len(list(blobs.iterdir())):04d}"
            shutil.copyfile(path, blob)
            link = snapshot / path.relative_to(out)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    blobs_before = _tree(blobs)
    result = _run("validate", str(snapshot), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cache snapshot" in result.stderr and "nothing was written there" in result.stderr
    reported = _run("validate", str(snapshot), "-q", "--report-dir", "reports", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    report = json.loads((tmp_path / "reports" / "parity_report.json").read_text())
    assert report["passed"] is True and (tmp_path / "reports" / "manifest.json").is_file()
    bench = _run("bench", str(snapshot), "--rounds", "1", "--warmup", "0", "--num-texts", "8", "--latency-texts", "2",
                 "--no-memory", "--json", cwd=tmp_path)
    assert bench.returncode == 0, bench.stderr
    assert any("cache snapshot" in note for note in json.loads(bench.stdout)["notes"])
    assert _tree(blobs) == blobs_before and not list(snapshot.parent.glob("*/bench.json"))


def test_log_file_option_names_where_the_traceback_goes(tmp_path, monkeypatch):
    from exporter.cli import main

    log = tmp_path / "logs" / "mine.log"
    monkeypatch.setenv("EXPORTER_LOG_DIR", str(tmp_path / "elsewhere"))

    @main.command("explode-for-test", hidden=True)
    @handle_errors
    def explode() -> None:
        raise ValueError("boom")

    try:
        result = CliRunner().invoke(main, ["--log-file", str(log), "explode-for-test"])
    finally:
        main.commands.pop("explode-for-test", None)
        os.environ.pop("EXPORTER_LOG_FILE", None)
    assert result.exit_code == 4 and str(log) in result.stderr
    assert "ValueError: boom" in log.read_text()
