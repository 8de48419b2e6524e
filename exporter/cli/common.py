"""What every ``exporter`` subcommand shares: the exit-code epilog, the error handler, shared options,
JSON on stdout and rich output on stderr. Imports nothing heavy."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from exporter.errors import ExporterError

EPILOG = "Exit codes: 0 success, 1 a check failed, 2 bad input, 3 external failure (network, Hub, runtime)."


def stderr_console():
    """A rich console on stderr: progress and tables never mix with ``--json`` on stdout."""
    from rich.console import Console

    return Console(stderr=True)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``ExporterError`` into a one-line message and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ExporterError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was placed", err=True)
            sys.exit(130)

    return wrapper


def progress_for(quiet: bool):
    """Silent when ``quiet`` (or ``--json``), else rich progress on stderr."""
    from exporter.progress import RichProgress, SilentProgress

    return SilentProgress() if quiet else RichProgress(stderr_console())


def print_json(data: Any) -> None:
    """One machine-readable result on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))
