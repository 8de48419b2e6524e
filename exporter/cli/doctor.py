"""``exporter doctor``: what this host can run, with the fix for what it cannot."""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.common import (
    EPILOG,
    handle_errors,
    json_option,
    print_json,
    progress_for,
    quiet_option,
    reword_errors,
    trust_remote_code_option,
)


@click.command("doctor", epilog=EPILOG)
@click.option("--model", metavar="DIR",
              help="An artifact folder: smoke-test each backend on its best validated variant.")
@click.option("--quick", is_flag=True,
              help="Skip the demo model (without --model, the demo model is exported to a temporary folder, ~15 s, "
                   "and each backend encodes with it): tiny in-memory graphs only.")
@click.option("--backend", "backends", multiple=True, type=click.Choice(["torch", "onnx", "openvino"]),
              help="Exit 3 when this backend is unusable here (repeatable).")
@trust_remote_code_option
@json_option
@quiet_option
@handle_errors
@reword_errors(trust_remote_code="--trust-remote-code")
def doctor_command(model: str | None, quick: bool, backends: tuple[str, ...], trust_remote_code: bool,
                   as_json: bool, quiet: bool) -> None:
    """Report what this host can run: runtimes and versions, CPU features, GPU/CUDA, and a smoke test per
    backend (torch, onnx, openvino): load a model, encode two texts, check the shape.

    The model is the artifact folder given with --model (its best validated variant per backend) or, by
    default, the demo model (all-MiniLM-L6-v2 from the demo extra) exported to a temporary folder.

    A backend is ok, partial (its runtime works but sentence-transformers cannot load it; every variant
    still runs in the deploy runtime, exporter.load) or unusable, with the reason and the package that
    fixes it.

    \b
    Examples:
      exporter doctor
      exporter doctor --quick                              # runtimes only, no model (~10 s)
      exporter doctor --model artifacts/minilm-onnx --json
      exporter doctor --backend onnx --backend openvino    # exit 3 unless both work
    """
    from exporter.diagnostics.doctor import doctor
    from exporter.errors import BadInputError, ExternalError

    if model is not None and not Path(model).is_dir():
        raise BadInputError(f"--model {model}: not a folder")
    report = doctor(model, demo=not quick, progress=progress_for(quiet or as_json), trust_remote_code=trust_remote_code)
    if as_json:
        print_json(report.to_dict())
    else:
        for line in report.lines():
            click.echo(line)
    broken = [report.backends[name] for name in dict.fromkeys(backends) if not report.backends[name].usable]
    if broken:
        raise ExternalError("; ".join(f"backend {status.name} is unusable here: {status.reason}"
                                      + (f" (fix: {status.fix})" if status.fix else "") for status in broken))
