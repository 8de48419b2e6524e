"""Progress reporting for long steps.

The Python API takes any object with a ``step(description)`` context manager; ``SilentProgress`` is the
default there, and the CLI passes ``RichProgress``, which draws on stderr so stdout stays clean for
``--json``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Protocol


class Progress(Protocol):
    def step(self, description: str) -> contextlib.AbstractContextManager[None]: ...

    def log(self, message: str) -> None: ...


class SilentProgress:
    """Reports nothing."""

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        raise_if_signalled()
        yield
        raise_if_signalled()

    def log(self, message: str) -> None:
        pass


class RichProgress:
    """A spinner per step on stderr, and a tick line once each step is done."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        raise_if_signalled()
        started = time.perf_counter()
        with self.console.status(description):
            yield
        raise_if_signalled()
        self.console.print(f"[green]✓[/green] {description} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    def log(self, message: str) -> None:
        self.console.print(message)


VERBOSE_ENV = "EXPORTER_VERBOSE"


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep third-party chatter (NNCF's progress bars, ONNX Runtime's quantiser hints, export warnings) out of
    the user's terminal: what they print to stdout/stderr, their warnings and their log records below ERROR
    are dropped for the block. ``EXPORTER_VERBOSE=1`` (the CLI's ``--verbose``) lets everything through."""
    import io
    import logging
    import os
    import sys
    import warnings

    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        yield
        return
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = io.StringIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        root.setLevel(level)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks (staging folders, locks) run."""


# The signal (SIGINT or SIGTERM) the CLI caught, kept because Python swallows an exception raised while a
# ``__del__`` runs: long steps and the final placement check it again.
PENDING_SIGNAL: list[int] = []


def raise_if_signalled() -> None:
    """Raise ``KeyboardInterrupt`` / ``Terminated`` when the CLI caught Ctrl-C / SIGTERM earlier."""
    import signal

    if PENDING_SIGNAL:
        raise Terminated() if PENDING_SIGNAL[-1] == signal.SIGTERM else KeyboardInterrupt()
