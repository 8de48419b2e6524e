"""What every ``exporter`` subcommand shares: the exit-code epilog, the error handler, the shared options
(declared once here), JSON on stdout and rich output on stderr. Imports nothing heavy."""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from exporter.errors import ExporterError, first_line

EPILOG = ("Exit codes: 0 success, 1 a check failed, 2 bad input, 3 external failure (network, Hub, runtime), "
          "4 internal error (a bug: the message names the log file with the traceback).")
INTERNAL_ERROR_EXIT = 4

# --- shared options ------------------------------------------------------------------------------

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one machine-readable result on stdout (progress and logs go to stderr).")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress output.")
token_option = click.option("--token", metavar="TOKEN",
                            help="Hub token (default: HF_TOKEN, else the `hf auth login` token). Never printed.")
endpoint_option = click.option("--endpoint", metavar="URL",
                               help="Hub URL (default: HF_ENDPOINT, else https://huggingface.co).")
trust_remote_code_option = click.option(
    "--trust-remote-code", "trust_remote_code", is_flag=True,
    help="Allow the artifact's own code: Python files, pickles and custom module classes in modules.json (refused "
         "without it). The only source of trust: a manifest's trust_remote_code is reported, never obeyed.")
thresholds_option = click.option(
    "--thresholds", "thresholds", metavar="defaults|artifact|FILE", default=None,
    help="Parity thresholds: defaults (the precision defaults), artifact (the thresholds its recipe recorded) or "
         "FILE (YAML/JSON like a recipe's validation.thresholds). Default: the stricter of defaults and artifact. "
         "Loosened thresholds are always reported; below 0.5 is refused.")


def _set_verbose(context: click.Context, parameter: click.Parameter, value: bool) -> bool:
    if value:
        from exporter.progress import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
    return value


verbose_option = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose,
                              help="Let the libraries' own progress bars, warnings and log lines through.")


# --- output --------------------------------------------------------------------------------------


def stderr_console():
    """A rich console on stderr: progress and tables never mix with ``--json`` on stdout."""
    from rich.console import Console

    return Console(stderr=True)


def progress_for(quiet: bool):
    """Silent when ``quiet`` (or ``--json``), else rich progress on stderr."""
    from exporter.progress import RichProgress, SilentProgress

    return SilentProgress() if quiet else RichProgress(stderr_console())


def print_json(data: Any) -> None:
    """One machine-readable result on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


# --- errors --------------------------------------------------------------------------------------


def log_dir() -> Path:
    """Where internal-error tracebacks go: ``$EXPORTER_LOG_DIR``, else the user's cache folder."""
    configured = os.environ.get("EXPORTER_LOG_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "embedding-exporter" / "logs"


def _redact(text: str) -> str:
    """Tokens never reach a log: HF_TOKEN's value and anything shaped like a Hub token are starred out."""
    import re

    from exporter.hub import redact

    return re.sub(r"\bhf_[A-Za-z0-9]{8,}\b", "hf_***", redact(text, os.environ.get("HF_TOKEN")))


LOG_FILE_ENV = "EXPORTER_LOG_FILE"


def set_log_file(value: str | None) -> None:
    """``exporter --log-file FILE``: where ``write_traceback`` writes."""
    if value:
        os.environ[LOG_FILE_ENV] = str(Path(value).expanduser().resolve())


def write_traceback(error: BaseException) -> Path | None:
    """Write ``error``'s traceback (tokens redacted) to ``--log-file`` or a new log file in ``log_dir()``; its
    path, or None when not writable."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = _redact("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    try:
        chosen = os.environ.get(LOG_FILE_ENV)
        folder = Path(chosen).parent if chosen else log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = Path(chosen) if chosen else folder / f"exporter-{stamp}-{os.getpid()}.log"
        path.write_text(" ".join(sys.argv) + "\n\n" + _redact(text), encoding="utf-8")
    except OSError:
        return None
    return path


_HANDLER_PID: list[int] = []  # the process that installed the SIGTERM handler


def _on_signal(signum: int, frame: Any) -> None:
    import signal

    from exporter.progress import PENDING_SIGNAL, Terminated

    if _HANDLER_PID and os.getpid() != _HANDLER_PID[-1]:
        # A child a library forked (telemetry, workers) inherited the handler: die as the signal would.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    PENDING_SIGNAL.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _external_os_error(error: BaseException) -> ExporterError | None:
    """Our error for an OS failure that is not a bug: a full disk (3), a path we may not write (2). Libraries
    (safetensors, protobuf, ONNX) report a full disk in their own exception types: their message says so."""
    import errno

    from exporter.errors import BadInputError, ExternalError

    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        where = f" ({item.filename})" if isinstance(item, OSError) and item.filename else ""
        code = item.errno if isinstance(item, OSError) else None
        if code in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(item):
            return ExternalError(f"disk full{where}: No space left on device; nothing was placed")
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            return BadInputError(f"cannot write{where}: {item.strerror or item}")
    return None


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """One line on stderr and the exit code for every failure: ``ExporterError`` by its own code, Ctrl-C 130,
    SIGTERM 143 (both after the command's own clean-up), a full disk or out of memory 3, a path that cannot
    be written 2, anything else (a bug of ours) 4, with the traceback in a log file the line names."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import signal
        import threading

        from exporter.progress import PENDING_SIGNAL, Terminated

        previous = None
        if threading.current_thread() is threading.main_thread():
            _HANDLER_PID.append(os.getpid())
            previous = (signal.signal(signal.SIGTERM, _on_signal), signal.signal(signal.SIGINT, _on_signal))
        default_unraisable = sys.unraisablehook

        def unraisable(info: Any) -> None:  # our interrupt raised inside a __del__: Python would print it
            if not isinstance(info.exc_value, (KeyboardInterrupt, Terminated)):
                default_unraisable(info)

        sys.unraisablehook = unraisable
        try:
            try:
                result = command(*args, **kwargs)
            except (ExporterError, Exception) as error:
                if PENDING_SIGNAL:  # the interrupt surfaced as another error (e.g. ImportError mid-import)
                    raise (Terminated() if PENDING_SIGNAL[-1] == signal.SIGTERM else KeyboardInterrupt()) from error
                raise
            if PENDING_SIGNAL:  # caught but swallowed (inside a __del__) after the last check: still an interrupt
                raise Terminated() if PENDING_SIGNAL[-1] == signal.SIGTERM else KeyboardInterrupt()
            return result
        except ExporterError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was placed", err=True)
            sys.exit(130)
        except Terminated:
            click.echo("terminated: nothing was placed", err=True)
            sys.exit(143)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except MemoryError:
            click.echo("error: out of memory; nothing was placed", err=True)
            sys.exit(3)
        except Exception as error:  # noqa: BLE001 - a bug: one line, the traceback in a file
            known = _external_os_error(error)
            if known is not None:
                click.echo(f"error: {known}", err=True)
                sys.exit(known.exit_code)
            log = write_traceback(error)
            where = f"traceback in {log}" if log else "no log file could be written"
            click.echo(f"internal error: {type(error).__name__}: {_redact(first_line(error))} ({where}; "
                       "please report it)", err=True)
            sys.exit(INTERNAL_ERROR_EXIT)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous[0])
                signal.signal(signal.SIGINT, previous[1])
                _HANDLER_PID.pop()
            PENDING_SIGNAL.clear()
            sys.unraisablehook = default_unraisable

    return wrapper


def reword(message: str, flags: dict[str, str]) -> str:
    """``message`` with parameter names turned into CLI flags: ``name=True`` → ``--flag``, ``name=`` → ``--flag ``,
    and a bare ``snake_case`` name (one with an underscore, so ordinary words stay as they are) → ``--flag``."""
    import re

    for parameter, flag in flags.items():
        message = re.sub(rf"\b{re.escape(parameter)}=True\b", flag, message)
        message = re.sub(rf"\b{re.escape(parameter)}=", flag + " ", message)
        if "_" in parameter:
            message = re.sub(rf"\b{re.escape(parameter)}\b", flag, message)
    return message


def reword_errors(command: Callable[..., Any] | None = None, **flags: str) -> Any:
    """Decorator: library messages name parameters (``source_dir``, ``dest=``); the CLI shows its flags.

    ``@reword_errors(source_dir="--source")`` rewrites each parameter name (see ``reword``) in the message of
    an ``ExporterError`` raised by the command, keeping its type and fields. Recipe errors are left as they
    are: they name recipe keys, which may share a parameter's name."""
    from exporter.errors import RecipeError

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except ExporterError as error:
                if not isinstance(error, RecipeError):
                    error.args = (reword(str(error), flags),)
                raise

        return wrapper

    return decorate(command) if command is not None else decorate
