"""``exporter recipe schema|check``: inspect and check recipe files."""

from __future__ import annotations

import click

from exporter.cli.common import EPILOG, handle_errors, print_json


@click.group("recipe", epilog=EPILOG)
def recipe_group() -> None:
    """Inspect and check recipe files."""


@recipe_group.command("schema")
def recipe_schema() -> None:
    """Print the JSON Schema of a recipe file (every key, its type, default and meaning)."""
    from exporter.recipe import recipe_json_schema

    print_json(recipe_json_schema())


@recipe_group.command("check", epilog=EPILOG)
@click.argument("file", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the validated recipe, with defaults filled in, as JSON.")
@handle_errors
def recipe_check(file: str, as_json: bool) -> None:
    """Validate FILE without exporting: schema, variant names, and the model path."""
    from exporter.export.source import resolve_source
    from exporter.recipe import load_recipe

    loaded = load_recipe(file)
    if loaded.recipe.model.path:
        resolve_source(loaded.recipe.model, loaded.base_dir, loaded.path)  # the path must be a usable model
    names = [v.resolved_name for v in loaded.recipe.variants]
    if as_json:
        print_json({"recipe": loaded.recipe.model_dump(mode="json"), "variants": names})
    else:
        click.echo(f"{file}: ok ({len(names)} variant{'s' if len(names) != 1 else ''}: {', '.join(names)})")
