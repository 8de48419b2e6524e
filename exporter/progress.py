"""Progress reporting for long steps, and keeping the libraries quiet during them (``quiet_libraries``,
``quiet_loading``).

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


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence the libraries' load-time chatter (optimum's 'could not infer ... export' and the like)."""
    # transformers and optimum set their root logger's level when first used: have that happen first, but
    # only where they are loaded already (the deploy runtime never imports them).
    import logging
    import sys

    if "transformers" in sys.modules:
        with contextlib.suppress(Exception):
            from transformers.utils import logging as transformers_logging

            transformers_logging.get_logger("transformers")
    if "optimum" in sys.modules:
        with contextlib.suppress(Exception):
            from optimum.utils import logging as optimum_logging

            optimum_logging.get_logger("optimum")
    loggers = [logging.getLogger(name) for name in ("optimum", "transformers", "sentence_transformers", "nncf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with quiet_libraries():
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


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
