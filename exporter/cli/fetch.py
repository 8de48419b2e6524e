"""``exporter fetch``: get one variant onto this host, verified, and print how to load it."""

from __future__ import annotations

import json

import click

from exporter.cli.common import (
    EPILOG,
    handle_errors,
    progress_for,
    reword_errors,
    thresholds_option,
    trust_remote_code_option,
)
from exporter.constants import BACKENDS, GRAPHS, PRECISIONS


@click.command("fetch", epilog=EPILOG)
@click.argument("source")
@click.option("--variant", default="auto", show_default=True, metavar="NAME|auto",
              help="The variant to fetch; auto picks the best validated variant for this host.")
@click.option("--backend", type=click.Choice(BACKENDS), help="auto: only this backend.")
@click.option("--precision", type=click.Choice(PRECISIONS), help="auto: only this precision.")
@click.option("--graph", type=click.Choice(GRAPHS),
              help="auto: only this graph (transformer: loaded by sentence-transformers; sentence: plain runtime).")
@click.option("--min-cosine", type=float, metavar="X",
              help="auto: only variants whose validated cosine_min is at least X.")
@click.option("--revision", metavar="REV",
              help="Hub branch, tag or commit (default: main). A commit pins manifest.json too.")
@click.option("--endpoint", metavar="URL", help="Hub URL (default: HF_ENDPOINT, else https://huggingface.co).")
@click.option("--token", metavar="TOKEN",
              help="Hub token for private or gated repos (default: HF_TOKEN, else the `hf auth login` token). "
              "Never printed.")
@click.option("--dest", metavar="DIR",
              help="Put the files in DIR (default: the huggingface_hub cache for a Hub repo; the folder itself for a "
              "local one).")
@click.option("--cache-dir", metavar="DIR", help="huggingface_hub cache folder (default: HF_HUB_CACHE).")
@click.option("--check", is_flag=True,
              help="Run the variant on the stored validation texts here and compare with the stored reference "
              "embeddings; exit 1 when this host breaks the thresholds (see --thresholds).")
@thresholds_option
@trust_remote_code_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@handle_errors
@reword_errors(variant="--variant", backend="--backend", precision="--precision", graph="--graph",
               min_cosine="--min-cosine", revision="--revision", endpoint="--endpoint", token="--token", dest="--dest",
               cache_dir="--cache-dir", check="--check", thresholds="--thresholds",
               trust_remote_code="--trust-remote-code")
def fetch_command(source: str, variant: str, backend: str | None, precision: str | None, graph: str | None,
                  min_cosine: float | None, revision: str | None, endpoint: str | None, token: str | None,
                  dest: str | None, cache_dir: str | None, check: bool, thresholds: str | None,
                  trust_remote_code: bool, as_json: bool, quiet: bool) -> None:
    """Fetch one variant of SOURCE, verified, and print how to load it.

    SOURCE is a Hugging Face Hub repo id (ORG/NAME) or a local artifact folder. Only the chosen variant's
    files and the shared files (configs, tokenizer, modules, parity/ reference) are downloaded; README.md,
    bench.json (and its chart) and parity_report.json are left out. Every file must match the sha256 in manifest.json: a
    mismatch deletes the file and downloads it once more, then fails (exit 1) naming it. A manifest with an
    absolute or '..' path is refused (exit 2). A second fetch of the same revision downloads nothing;
    HF_HUB_OFFLINE=1 fetches from the cache only.

    Without --trust-remote-code, an artifact that lists Python files or pickles, or whose modules.json names
    a module class outside sentence-transformers' own, is refused (exit 2) before anything but manifest.json
    (and modules.json) is downloaded.

    Prints three lines: the choice and why, the local folder, and the Python line that loads it.

    \b
    Examples:
      exporter fetch my-org/all-MiniLM-L6-v2-onnx
      exporter fetch my-org/all-MiniLM-L6-v2-onnx --backend onnx --precision int8 --check
      exporter fetch my-org/minilm --revision v1.0 --dest /srv/model --json
      exporter fetch artifacts/minilm-openvino --variant openvino-fp32 --dest /srv/model
    """
    from exporter.deploy.fetch import fetch_variant

    progress = progress_for(quiet or as_json)
    result = fetch_variant(source, variant=variant, backend=backend, precision=precision, graph=graph,
                           min_cosine=min_cosine, revision=revision, endpoint=endpoint, token=token, dest=dest,
                           cache_dir=cache_dir, check=check, thresholds=thresholds,
                           trust_remote_code=trust_remote_code, progress=progress)
    if result.trust_note():
        click.echo("note: manifest.json records trust_remote_code: true; not used (only --trust-remote-code allows "
                   "an artifact's code)", err=True)
    if result.check is not None:
        for item in result.check.loosened:
            click.echo(f"loosened: variant {result.name}: {item}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if result.model_kind == "cross":
        click.echo("A reranker (CrossEncoder): exporter.load gives a Reranker (predict / rank)", err=True)
    click.echo(f"Chose {result.choice.reason}")
    click.echo(str(result.path))
    click.echo(result.python_line())
    if result.check is not None:
        top1 = next((c.measured for c in result.check.checks if c.name == "top1_agreement"), None)
        if isinstance(top1, float):  # a reranker: its rankings
            click.echo(f"Check passed on this host: top1_agreement {top1:.4f} (required "
                       f"{result.check.thresholds.get('top1_agreement')})", err=True)
            return
        cosine = next((c.measured for c in result.check.checks if c.name == "cosine_min"), None)
        required = result.check.thresholds.get("cosine_min")
        click.echo(f"Check passed on this host: cosine_min {cosine:.5f} (required {required})"
                   if isinstance(cosine, float) else "Check passed on this host.", err=True)
