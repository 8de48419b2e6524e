"""OpenVINO's and NNCF's usage telemetry, declined for this process unless the user opted in.

OpenVINO (on ``import openvino``, which imports its conversion API, and on every ``convert_model``) and NNCF
send Google Analytics events through the ``openvino_telemetry`` package, which counts a missing consent file
(``~/intel/openvino_telemetry``) as consent unless ``CI=true``. So a build sent usage data without asking, wrote
a client id and a usage counter under ``~/intel``, and forked a child process per event from a worker thread
(dozens for one tiny int8 build): on an offline host each child waits on DNS and a run can hang at exit, and a fork
from a thread can deadlock a process whose BLAS threads hold locks.

Both treat the package as optional: when ``import openvino_telemetry`` fails, OpenVINO uses its own
``telemetry_stub`` and NNCF a no-op stub. So :func:`decline_openvino_telemetry` makes that import fail in
this process (a ``None`` entry in ``sys.modules``, which Python's import system reads as "not importable"):
nothing is sent, forked or written, nothing is patched, and the environment, and with it every child process,
is left alone. The package's ``__init__`` calls it, before anything of ours can import openvino or nncf.
A user who opted in with Intel's own ``opt_in_out --opt_in`` (the consent file then reads ``1``) keeps it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TELEMETRY_MODULE = "openvino_telemetry"


def decline_openvino_telemetry() -> bool:
    """Make ``import openvino_telemetry`` fail in this process unless the consent file says the user opted in;
    return whether the telemetry is declined. Does nothing once the module is imported (a program that imported
    openvino before ``exporter`` keeps OpenVINO's own behaviour): it can only be declined before it starts."""
    if TELEMETRY_MODULE in sys.modules:
        return sys.modules[TELEMETRY_MODULE] is None
    if _opted_in():
        return False
    sys.modules[TELEMETRY_MODULE] = None
    return True


def _opted_in() -> bool:
    """Whether openvino_telemetry's consent file (where its ``OptInChecker`` keeps it) reads ``1``. Only read."""
    try:
        if sys.platform == "win32":
            base, folder = Path(os.path.expandvars("$LOCALAPPDATA")), "Intel Corporation"
        else:
            base, folder = Path.home(), "intel"
        with open(base / folder / "openvino_telemetry", encoding="utf-8") as file:
            return file.readline().strip() == "1"
    except (OSError, RuntimeError, UnicodeDecodeError):  # no file, no home directory, not text
        return False
