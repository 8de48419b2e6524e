"""The ``exporter`` command: parses arguments, calls the Python API, renders results.

Errors are ``ExporterError`` subclasses carrying their exit code (see ``exporter.errors``); they are
printed as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import json
from typing import Any

import click

from exporter import __version__
from exporter.cli_support import EPILOG, handle_errors, progress_for, stderr_console

def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="exporter")
def main() -> None:
    """Export sentence-embedding models to ONNX Runtime and OpenVINO, from a YAML recipe.

    \b
    Quick start:
      exporter recipe check recipes/minilm-openvino.yaml   # validate a recipe
      exporter run recipes/minilm-openvino.yaml            # build artifacts/minilm-openvino/

    The command is `exporter`, not `export`: `export` is a shell builtin.
    """


@main.command(epilog=EPILOG)
@click.argument("recipe", type=click.Path(dir_okay=True, path_type=str))
@click.option("-o", "--output", type=click.Path(path_type=str), help="Artifact folder (default: the recipe's output: or artifacts/<name>), relative to the working directory.")
@click.option("--variant", "variants", multiple=True, metavar="NAME", help="Build only this variant (repeatable).")
@click.option("--no-validate", is_flag=True, help="Skip parity validation (variants stay unvalidated and cannot be pushed).")
@click.option("--push", "push_after", is_flag=True, help="Push to the Hub afterwards, with the recipe's publish: settings.")
@click.option("--token", envvar="HF_TOKEN", show_envvar=True, help="Hub token for --push (default: HF_TOKEN or the huggingface_hub login).")
@click.option("--endpoint", help="Hub endpoint for --push (default: HF_ENDPOINT or https://huggingface.co).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@handle_errors
def run(recipe: str, output: str | None, variants: tuple[str, ...], no_validate: bool, push_after: bool,
        token: str | None, endpoint: str | None, as_json: bool, quiet: bool) -> None:
    """Build the artifacts RECIPE declares, validate them against the torch model, and place them.

    The folder is built beside the target and moved into place only when the run has finished: an
    interrupted run leaves the previous folder untouched. An existing folder that is not an artifact
    folder (no manifest.json) is never replaced. A run whose variants fail validation still places the
    folder (marked failed in manifest.json, so it can be inspected but not pushed) and exits 1.

    \b
    Examples:
      exporter run recipes/minilm-openvino.yaml
      exporter run recipes/minilm-onnx.yaml --output /tmp/minilm --json
      exporter run recipes/minilm-onnx.yaml --push      # needs publish.repo_id in the recipe
    """
    from exporter.builder import build
    from exporter.errors import BadInputError, CheckFailedError

    if push_after and no_validate:
        raise BadInputError("--push needs validation: unvalidated variants cannot be published (drop --no-validate)")
    progress = progress_for(quiet or as_json)
    result = build(recipe, output=output, variants=list(variants) or None, progress=progress,
                   validate=not no_validate)
    summary = result.summary()
    if not quiet and not as_json:
        _render_build(result)
    if result.report is not None and not result.report.passed:
        if as_json:
            _print_json(summary)
        raise CheckFailedError("parity validation failed: " + "; ".join(result.report.failures()))
    if push_after:
        from exporter.publish import push

        pushed = push(result.output, token=token, endpoint=endpoint, progress=progress)
        summary["push"] = pushed.to_dict()
        if not as_json and not quiet:
            for line in pushed.lines():
                click.echo(line, err=True)
    if as_json:
        _print_json(summary)


def _parity_cell(parity: dict | None) -> str:
    if not parity:
        return "not validated"
    verdict = "[green]pass[/green]" if parity.get("passed") else "[red]FAIL[/red]"
    cosine = parity.get("cosine_min")
    return f"{verdict} cos≥{cosine:.4f}" if isinstance(cosine, (int, float)) else verdict


def _render_build(result) -> None:
    from rich.table import Table

    console = stderr_console()
    table = Table(title=f"{result.manifest['recipe']['name']} → {result.output}")
    for column in ("variant", "file_name", "size", "parity"):
        table.add_column(column, justify="right" if column == "size" else "left", overflow="fold")
    for variant in result.summary()["variants"]:
        table.add_row(variant["name"], variant["file_name"], f"{variant['size'] / 1e6:.1f} MB",
                      _parity_cell(variant.get("parity")))
    console.print(table)
    console.print(f"Done in {result.seconds:.1f} s.")


@main.group(epilog=EPILOG)
def recipe() -> None:
    """Inspect and check recipe files."""


@recipe.command("schema")
def recipe_schema() -> None:
    """Print the JSON Schema of a recipe file (every key, its type, default and meaning)."""
    from exporter.recipe import recipe_json_schema

    _print_json(recipe_json_schema())


@recipe.command("check", epilog=EPILOG)
@click.argument("file", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the validated recipe, with defaults filled in, as JSON.")
@handle_errors
def recipe_check(file: str, as_json: bool) -> None:
    """Validate FILE without exporting: schema, variant names, and the model path."""
    from exporter.recipe import load_recipe
    from exporter.source import check_sentence_transformers_dir, resolve_source

    loaded = load_recipe(file)
    if loaded.recipe.model.path:
        source = resolve_source(loaded.recipe.model, loaded.base_dir, loaded.path)
        check_sentence_transformers_dir(source.directory, str(loaded.path))
    names = [v.resolved_name for v in loaded.recipe.variants]
    if as_json:
        _print_json({"recipe": loaded.recipe.model_dump(mode="json"), "variants": names})
    else:
        click.echo(f"{file}: ok ({len(names)} variant{'s' if len(names) != 1 else ''}: {', '.join(names)})")
from exporter.bench_cli import bench_command; main.add_command(bench_command)  # noqa: E402
from exporter.validators.cli import validate_command; main.add_command(validate_command)  # noqa: E402
from exporter.push_cli import push_command; main.add_command(push_command)  # noqa: E402
from exporter.fetch_cli import doctor_command, fetch_command; main.add_command(fetch_command); main.add_command(doctor_command)  # noqa: E402
