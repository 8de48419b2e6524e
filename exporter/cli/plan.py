"""``exporter plan``: the build jobs of recipes, with content-addressed keys, for a CI system to fan out."""

from __future__ import annotations

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
    token_option,
    verbose_option,
)


@click.command("plan", epilog=EPILOG)
@click.argument("recipes", nargs=-1, required=True, type=click.Path(path_type=str), metavar="RECIPE_OR_DIR...")
@click.option("--per", type=click.Choice(["variant", "recipe"]), default="variant", show_default=True,
              help="One job per recipe × variant, or one per recipe.")
@click.option("--missing-from", "missing_from", type=click.Path(file_okay=False, path_type=str), metavar="CACHE",
              help="List only the jobs with a variant whose key is not in this build cache (run --cache).")
@click.option("--reference-out", "reference_out", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Also compute the validation reference once (one recipe only), for every shard's run "
                   "--reference DIR.")
@token_option
@endpoint_option
@json_option
@quiet_option
@verbose_option
@handle_errors
@reword_errors(per="--per", missing_from="--missing-from", reference_out="--reference-out", endpoint="--endpoint",
               token="--token")
def plan_command(recipes: tuple[str, ...], per: str, missing_from: str | None, reference_out: str | None,
                 token: str | None, endpoint: str | None, as_json: bool, quiet: bool) -> None:
    """Print the build jobs of RECIPE_OR_DIR... (recipe files, or folders of *.yaml recipes).

    Each job is a recipe and the variants one shard builds, with a key over what changes the files: the source
    model's file hashes (a Hub source: its commit and LFS sha256s from the Hub API, nothing downloaded), the
    resolved model section and variant settings (isa: auto resolved here, passed on as --isa), the calibration
    corpus, the tool and package versions. --json prints a list a CI matrix takes as is
    (GitHub Actions: fromJSON); otherwise one job per line, tab-separated: id, recipe, run arguments, key.

    \b
    Examples:
      exporter plan recipes/ --json
      exporter plan recipes/minilm-openvino.yaml --missing-from ~/.cache/zoo
      exporter plan recipes/minilm-openvino.yaml --reference-out ref/ --json
      exporter plan recipes/ | while IFS=$'\\t' read -r id recipe args key; do
        exporter run "$recipe" $args --output "shards/$id"; done
    """
    from exporter.errors import BadInputError
    from exporter.export.plan import plan_builds

    plan = plan_builds(list(recipes), per=per, endpoint=endpoint, token=token)
    if reference_out is not None:
        from exporter.export.shared_reference import write_shared_reference

        names = sorted({job.recipe for job in plan.jobs})
        if len(names) != 1:
            raise BadInputError(f"reference_out= needs exactly one recipe (got {len(names)}): a reference is "
                                "one recipe's")
        shared = write_shared_reference(names[0], reference_out, progress=progress_for(quiet or as_json))
        click.echo(f"Reference of {shared.recipe} ({shared.texts} texts) in {shared.folder} "
                   f"({shared.seconds:.1f} s)", err=True)
    if missing_from is not None:
        plan = plan.missing_from(missing_from)
    if as_json:
        print_json(plan.to_list())
        return
    for job in plan.jobs:
        click.echo(job.line())
