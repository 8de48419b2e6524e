"""OpenVINO's and NNCF's usage telemetry is declined in-process (exporter.telemetry), with no CI variable set and
nothing written to the user's home: a real `exporter run` of an OpenVINO int8 recipe sends nothing, forks
nothing and exits 0; an explicit opt-in through Intel's consent file is kept.

The children run with the CI variables that openvino_telemetry and NNCF honour removed and HOME pointed at an
empty folder (no consent file: the case where the telemetry is on by default). An audit hook, installed before
anything is imported, records every network attempt and every fork; the telemetry forks a child per event,
which opens a URL, so the record is empty only if no event was sent."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest
from conftest import write_recipe

# openvino_telemetry's CI check (CI, TF_BUILD, JENKINS_URL) and NNCF's own switches
CI_VARIABLES = ("CI", "TF_BUILD", "JENKINS_URL", "NNCF_CI", "NNCF_DEV")
# the CLI under an audit hook that records every network attempt and every fork into AUDIT_LOG
HOOKED_CLI = """
import json, os, sys
LOG, WATCHED = os.environ["AUDIT_LOG"], ("os.fork", "socket.getaddrinfo", "socket.connect", "urllib.Request")
def hook(event, args):
    if event in WATCHED:
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps([event, repr(args)[:200]]) + "\\n")
sys.addaudithook(hook)
from exporter.cli import main
sys.argv = ["exporter", *sys.argv[1:]]
main()
"""


def _no_ci_env(home) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in CI_VARIABLES}
    return {**env, "HOME": str(home), "HF_HUB_OFFLINE": "1"}


def test_a_build_sends_no_telemetry_without_ci(tmp_path, tiny_model):
    home = tmp_path / "home"
    home.mkdir()
    recipe = write_recipe(tmp_path, f"""
        name: tiny-ov-int8
        model: {{path: {tiny_model("bert", "mean", False, True)}}}
        variants:
          - {{backend: openvino, precision: int8, quantization: {{calibration: {{samples: 8}}}}}}
        """)
    log = tmp_path / "audit.jsonl"
    completed = subprocess.run([sys.executable, "-c", HOOKED_CLI, "run", str(recipe), "--output", str(tmp_path / "out"),
                                "--quiet"], env={**_no_ci_env(home), "AUDIT_LOG": str(log)}, cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (tmp_path / "out" / "openvino" / "openvino_model_int8_static.xml").is_file()
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    assert events == [], f"network attempts or forks during an offline build: {events[:5]}"
    assert not (home / "intel").exists(), sorted(p.name for p in (home / "intel").iterdir())


@pytest.mark.skipif(not importlib.metadata.packages_distributions().get("openvino_telemetry"),
                    reason="openvino-telemetry is not installed")
@pytest.mark.parametrize(("consent", "importable"), [(None, False), ("0", False), ("1", True)])
def test_only_an_explicit_opt_in_keeps_the_telemetry(tmp_path, consent, importable):
    home = tmp_path / "home"
    (home / "intel").mkdir(parents=True)
    if consent is not None:
        (home / "intel" / "openvino_telemetry").write_text(consent, encoding="utf-8")
    probe = "import exporter\ntry:\n    import openvino_telemetry\nexcept ImportError:\n    print('declined')\n" \
            "else:\n    print('kept')\n"
    completed = subprocess.run([sys.executable, "-c", probe], env=_no_ci_env(home), capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == ("kept" if importable else "declined")
