"""``exporter run``: build (and optionally push) the artifacts a recipe declares."""

from __future__ import annotations

import click

from exporter.cli.common import EPILOG, handle_errors, print_json, progress_for, stderr_console


@click.command("run", epilog=EPILOG)
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
def run_command(recipe: str, output: str | None, variants: tuple[str, ...], no_validate: bool, push_after: bool,
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
    from exporter.export.builder import build
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
            print_json(summary)
        raise CheckFailedError("parity validation failed: " + "; ".join(result.report.failures()))
    if push_after:
        from exporter.publish.push import push

        pushed = push(result.output, token=token, endpoint=endpoint, progress=progress)
        summary["push"] = pushed.to_dict()
        if not as_json and not quiet:
            for line in pushed.lines():
                click.echo(line, err=True)
    if as_json:
        print_json(summary)


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
