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
        yield

    def log(self, message: str) -> None:
        pass


class RichProgress:
    """A spinner per step on stderr, and a tick line once each step is done."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        started = time.perf_counter()
        with self.console.status(description):
            yield
        self.console.print(f"[green]✓[/green] {description} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    def log(self, message: str) -> None:
        self.console.print(message)
