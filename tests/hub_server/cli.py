"""The command-line entry point: ``main`` parses ``--root``, ``--port``, ``--host``, ``--token``,
``--username`` and ``--verbose``, starts a ``HubServer`` and serves until Ctrl-C or SIGTERM. It runs as
``python tests/hub_server --root DIR --port 8080 --token hf_test`` or, from ``tests/``, ``python -m
hub_server ...`` (both through ``hub_server/__main__.py``); kept apart so that the library modules hold
no process-level code (argument parsing, signal handlers).
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

from .common import DEFAULT_USERNAME
from .server import HubServer

# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: serve a root directory until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Local Hugging Face Hub-compatible server for tests.")
    parser.add_argument("--root", type=Path, required=True, help="directory holding repos and blobs")
    parser.add_argument("--port", type=int, default=8080, help="port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--token", required=True, help="the token clients must send (Bearer)")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="user that the token belongs to")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = HubServer(args.root, args.token, args.port, host=args.host, username=args.username, verbose=args.verbose)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # `kill` stops it as cleanly as Ctrl-C
    with server:
        print(f"Hub server for {args.root} listening on {server.url}", flush=True)
        print(f"Use: export HF_ENDPOINT={server.url}  (or --endpoint {server.url}), token {args.token}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("Stopping.", flush=True)
    return 0
