"""``exporter run``: build (and optionally push) the artifacts a recipe declares."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from exporter.cli.common import (
    EPILOG,
    endpoint_option,
    handle_errors,
    json_option,
    print_json,
    progress_for,
    quiet_option,
    reword_errors,
    stderr_console,
    token_option,
    verbose_option,
)

if TYPE_CHECKING:
    from exporter.artifact.manifest import Parity
    from exporter.export.builder import BuildResult


@click.command("run", epilog=EPILOG)
@click.argument("recipe", type=click.Path(dir_okay=True, path_type=str))
@click.option("-o", "--output", type=click.Path(path_type=str),
              help="Artifact folder (default: the recipe's output: or artifacts/<name>), "
                   "relative to the working directory.")
@click.option("--variant", "variants", multiple=True, metavar="NAME", help="Build only this variant (repeatable).")
@click.option("--no-validate", is_flag=True,
              help="Skip parity validation (variants stay unvalidated and cannot be pushed).")
@click.option("--push", "push_after", is_flag=True,
              help="Push to the Hub afterwards, with the recipe's publish: settings.")
@click.option("--wait", is_flag=True, help="When another run is building the same folder, wait for it instead of "
              "exiting 2.")
@click.option("--reference", "reference", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Validate against this shared reference (exporter plan --reference-out DIR) instead of "
                   "computing one: every shard of a build uses the same torch embeddings.")
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Build cache folder: variants whose key is there are restored (verified by sha256) instead of "
                   "rebuilt; variants built are stored there.")
@click.option("--isa", "isa", metavar="ISA", help="What quantization isa: auto resolves to (exporter plan gives "
              "each job the planning host's; default: this host's).")
@token_option
@endpoint_option
@json_option
@quiet_option
@verbose_option
@handle_errors
@reword_errors(output="--output", variants="--variant", validate="--no-validate", push="--push", wait="--wait",
               reference="--reference", cache="--cache", isa="--isa")
def run_command(recipe: str, output: str | None, variants: tuple[str, ...], no_validate: bool, push_after: bool,
                wait: bool, reference: str | None, cache: str | None, isa: str | None, token: str | None,
                endpoint: str | None, as_json: bool, quiet: bool) -> None:
    """Build the artifacts RECIPE declares, validate them against the torch model, and place them.

    The folder is built beside the target and moved into place only when the run has finished: an
    interrupted run leaves the previous folder untouched. An existing folder that is not an artifact
    folder (no manifest.json) is never replaced; an artifact folder is replaced whole (with --variant, the
    variants not built are named as dropped). Only one run builds a folder at a time: a second exits 2
    naming the first one's pid (--wait waits). A run whose variants fail validation still places the
    folder (marked failed in manifest.json, so it can be inspected but not pushed) and exits 1.

    \b
    Examples:
      exporter run recipes/minilm-openvino.yaml
      exporter run recipes/minilm-onnx.yaml --output /tmp/minilm --json
      exporter run recipes/minilm-onnx.yaml --push      # needs publish.repo_id in the recipe
      exporter run recipes/minilm-openvino.yaml --variant openvino-bf16 --reference ref/ \
          --cache ~/.cache/zoo --output shards/minilm-openvino--openvino-bf16   # one CI shard (docs/ci-zoo.md)
    """
    from exporter.errors import BadInputError, ParityFailedError
    from exporter.pipeline import run_recipe

    if push_after and no_validate:
        raise BadInputError("--push needs validation: unvalidated variants cannot be published (drop --no-validate)")
    if reference and no_validate:
        raise BadInputError("--reference is what validation compares with: drop --no-validate or --reference")
    result = run_recipe(recipe, output=output, variants=list(variants) or None, validate=not no_validate,
                        push=push_after, token=token, endpoint=endpoint, wait=wait, reference=reference,
                        cache=cache, isa=isa, progress=progress_for(quiet or as_json))
    if not quiet and not as_json:
        _render_build(result.build)
        for line in result.build.report.loosened() if result.build.report is not None else []:
            click.echo(f"loosened: {line}", err=True)
        if result.build.dropped:
            click.echo(f"Replaced {result.build.output}: its variants {', '.join(result.build.dropped)} are gone "
                       "(not built in this run).", err=True)
        if result.push is not None:
            for line in result.push.lines():
                click.echo(line, err=True)
    if as_json:
        print_json(result.summary())
    if not result.passed:
        failures = result.build.report.failures()
        raise ParityFailedError(int8_rule_outcomes(result.build) + "parity validation failed: " + "; ".join(failures)
                                + ("; nothing was pushed" if push_after else ""), failures)


def int8_rule_outcomes(build) -> str:
    """"<variant>: int8 rule tried N configuration(s) (...), best reached ...; " for each failed variant the int8
    rule built (what it tried and the best it reached), to lead the one-line failure."""
    failed = {variant.name for variant in build.report.variants if not variant.passed} if build.report else set()
    parts = []
    for variant in build.manifest.variants:
        search = variant.quantization.search if variant.quantization is not None else None
        if variant.name in failed and search is not None and search.outcome:
            parts.append(f"{variant.name}: {search.outcome}; ")
    return "".join(parts)


def _parity_cell(parity: Parity | None) -> str:
    if parity is None:
        return "not validated"
    verdict = "[green]pass[/green]" if parity.passed else "[red]FAIL[/red]"
    return f"{verdict} cos≥{parity.cosine_min:.4f}" if parity.cosine_min is not None else verdict


def _render_build(result: BuildResult) -> None:
    from rich.table import Table

    console = stderr_console()
    table = Table(title=f"{result.manifest.recipe_name} → {result.output}")
    for column in ("variant", "file_name", "size", "parity"):
        table.add_column(column, justify="right" if column == "size" else "left", overflow="fold")
    for variant in result.manifest.variants:
        table.add_row(variant.name, variant.file_name, f"{variant.size / 1e6:.1f} MB", _parity_cell(variant.parity))
    console.print(table)
    console.print(f"Done in {result.seconds:.1f} s.")
