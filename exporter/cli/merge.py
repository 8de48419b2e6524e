"""``exporter merge``: assemble a CI build's shards into one artifact folder (``exporter.publish.merge``)."""

from __future__ import annotations

import click

from exporter.cli.common import (
    EPILOG,
    handle_errors,
    json_option,
    print_json,
    progress_for,
    quiet_option,
    reword_errors,
)


@click.command("merge", epilog=EPILOG)
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=str), metavar="SHARD...")
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="The merged artifact folder.")
@click.option("--cache", "cache", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Build cache: variants no shard holds are restored from it, the shards' are stored in it "
                   "(needs --recipe).")
@click.option("--recipe", "recipe", type=click.Path(dir_okay=False, path_type=str), metavar="RECIPE",
              help="The recipe the shards were built from (for --cache: the keys are computed from it).")
@json_option
@quiet_option
@handle_errors
@reword_errors(output="--output", shards="SHARD", cache="--cache", recipe="--recipe")
def merge_command(shards: tuple[str, ...], output: str, cache: str | None, recipe: str | None, as_json: bool,
                  quiet: bool) -> None:
    """Merge SHARD... (folders `exporter run RECIPE --variant ... --output SHARD` built) into --output.

    Checks first, writing nothing when one fails: each shard's files match its manifest (else exit 1); all
    shards are of one recipe, shared files are byte-identical across them, a variant in two shards has the same
    files, and every variant has the file name the whole recipe gives it (else exit 2, naming the file). The
    merged folder equals a whole build of the recipe (model files byte for byte; manifest except time and host
    fields); push it with `exporter push`, which writes the model card.

    \b
    Examples:
      exporter merge shards/* --output artifacts/minilm-openvino
      exporter merge shards/* --output artifacts/minilm-openvino --json && exporter validate artifacts/minilm-openvino
    """
    from exporter.publish.merge import merge_shards

    progress = progress_for(quiet or as_json)
    result = merge_shards(list(shards), output=output, cache=cache, recipe=recipe, progress=progress)
    if as_json:
        print_json(result.to_dict())
    elif not quiet:
        verdict = {True: "validated, passed", False: "validation FAILED", None: "not validated"}[result.passed]
        click.echo(f"Merged {len(result.shards)} shard(s) into {result.output}: "
                   f"{', '.join(result.manifest.variant_names)} ({verdict}).", err=True)
