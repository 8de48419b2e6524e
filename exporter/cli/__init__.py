"""The ``exporter`` command: one module per subcommand, each parsing arguments, calling one function of the
Python API and rendering its result. Shared options, the error handler and rendering helpers live in
``exporter.cli.common``.

Errors are ``ExporterError`` subclasses carrying their exit code (see ``exporter.errors``); they are
printed as one line on stderr, never as a traceback. Nothing heavy is imported at module level, so
``exporter --help`` stays fast.
"""

from __future__ import annotations

import click

from exporter import __version__
from exporter.cli.common import EPILOG, set_log_file


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="exporter")
@click.option("--log-file", type=click.Path(dir_okay=False), metavar="FILE", expose_value=False,
              callback=lambda context, parameter, value: set_log_file(value),
              help="Where an internal error's traceback goes (default: a new file under "
                   "~/.cache/embedding-exporter/logs, or $EXPORTER_LOG_DIR).")
def main() -> None:
    """Export sentence-embedding models to ONNX Runtime and OpenVINO, from a YAML recipe.

    \b
    Quick start:
      exporter recipe check recipes/minilm-openvino.yaml   # validate a recipe
      exporter run recipes/minilm-openvino.yaml            # build artifacts/minilm-openvino/

    The command is `exporter`, not `export`: `export` is a shell builtin.
    """




def _register() -> None:
    from exporter.cli.bench import bench_command
    from exporter.cli.doctor import doctor_command
    from exporter.cli.embed import embed_command
    from exporter.cli.fetch import fetch_command
    from exporter.cli.merge import merge_command
    from exporter.cli.plan import plan_command
    from exporter.cli.push import push_command
    from exporter.cli.recipe import recipe_group
    from exporter.cli.run import run_command
    from exporter.cli.validate import validate_command

    for command in (run_command, recipe_group, validate_command, bench_command, push_command, fetch_command,
                    embed_command, doctor_command, plan_command, merge_command):
        main.add_command(command)


_register()
