"""``exporter embed``: a corpus through a validated variant into Parquet parts, resumable."""

from __future__ import annotations

import click

from exporter.cli.common import EPILOG, handle_errors, json_option, print_json, quiet_option, reword_errors


@click.command("embed", epilog=EPILOG)
@click.argument("source")
@click.option("--input", "input_path", required=True, metavar="FILE|DIR|GLOB",
              help="JSONL, CSV or Parquet: one file, a folder of them, or a glob. Streamed, never loaded whole.")
@click.option("--output", required=True, metavar="DIR", help="Folder for part-NNNNN.parquet and _manifest.json.")
@click.option("--variant", default="auto", show_default=True, metavar="NAME|auto",
              help="The variant; auto picks the best validated variant for this host (as `exporter fetch`).")
@click.option("--text-column", default="text", show_default=True, metavar="NAME")
@click.option("--id-column", default="id", show_default=True, metavar="NAME",
              help="Ids of the output; when the first row has no such field, ids are row positions (0-based).")
@click.option("--keep-columns", default="", metavar="A,B", help="Input columns copied into the output as they are.")
@click.option("--chunk-rows", default=10_000, show_default=True, type=int, metavar="N",
              help="Input rows per part (decides part boundaries: keep it the same to resume).")
@click.option("--batch-size", default=32, show_default=True, type=int, metavar="N",
              help="Texts per runtime call (length-sorted within each chunk).")
@click.option("--prompt-name", metavar="NAME", help="One of the model's prompts (e.g. document).")
@click.option("--on-bad-row", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="A row without a usable text or id: fail (exit 2 naming file, row and field) or skip it (listed "
                   "in _manifest.json).")
@click.option("--overwrite", is_flag=True,
              help="Replace the parts of another artifact, variant or settings in --output (refused otherwise).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: worker processes here; ray: Ray Data actors (pip install \"embedding-exporter[ray]\").")
@click.option("--workers", type=int, metavar="N",
              help="Encoder processes (local) or actors (ray). Default: one per two cores.")
@click.option("--threads", type=int, metavar="N", help="Runtime threads per worker (default: cores // workers).")
@click.option("--mode", type=click.Choice(["latency", "throughput"]), default="latency", show_default=True,
              help="throughput: each worker runs its batches concurrently (OpenVINO's THROUGHPUT hint); speed only.")
@click.option("--address", metavar="ADDR", help="--engine ray: the Ray cluster (default: a local instance).")
@click.option("--revision", metavar="REV", help="Hub branch, tag or commit (default: main).")
@click.option("--endpoint", metavar="URL", help="Hub URL (default: HF_ENDPOINT, else https://huggingface.co).")
@click.option("--token", metavar="TOKEN", help="Hub token (default: HF_TOKEN). Never printed.")
@click.option("--cache-dir", metavar="DIR", help="huggingface_hub cache folder (default: HF_HUB_CACHE).")
@click.option("--trust-remote-code", is_flag=True, help="Allow an artifact's own code (refused without it).")
@json_option
@quiet_option
@handle_errors
@reword_errors(input="--input", output="--output", variant="--variant", text_column="--text-column",
               id_column="--id-column", keep_columns="--keep-columns", chunk_rows="--chunk-rows",
               batch_size="--batch-size", prompt_name="--prompt-name", on_bad_row="--on-bad-row",
               overwrite="--overwrite", engine="--engine", workers="--workers", threads="--threads", mode="--mode",
               address="--address", revision="--revision", endpoint="--endpoint", token="--token",
               cache_dir="--cache-dir", trust_remote_code="--trust-remote-code")
def embed_command(source: str, input_path: str, output: str, variant: str, text_column: str, id_column: str,
                  keep_columns: str, chunk_rows: int, batch_size: int, prompt_name: str | None, on_bad_row: str,
                  overwrite: bool, engine: str, workers: int | None, threads: int | None, mode: str,
                  address: str | None,
                  revision: str | None, endpoint: str | None, token: str | None, cache_dir: str | None,
                  trust_remote_code: bool, as_json: bool, quiet: bool) -> None:
    """Embed a corpus with a validated variant of SOURCE into Parquet parts.

    SOURCE is a Hub repo id or a local artifact folder; the variant is fetched and verified as `exporter
    fetch` does. Each part (`part-00000.parquet`, ...) holds `id`, `embedding` (fixed-size list of float32)
    and --keep-columns, rows in input order, and is written atomically; `_manifest.json` names the artifact,
    variant, sha256 of its files, numerics settings, inputs with row counts, parts and skipped rows.

    Rerun the same command after a crash or Ctrl-C: finished parts are kept (verified by sha256), the rest
    is encoded. Another artifact, variant or settings in the same --output: exit 2 unless --overwrite.

    \b
    Examples:
      exporter embed my-org/minilm-openvino --input passages.jsonl --output emb/
      exporter embed artifacts/minilm-openvino --input 'data/*.parquet' --output emb/ --keep-columns url
      exporter embed my-org/minilm-openvino --input s3-mount/ --output emb/ --engine ray --address auto
    """
    import sys

    from exporter.deploy.embed import embed
    from exporter.progress import Terminated

    keep = [name.strip() for name in keep_columns.split(",") if name.strip()]
    try:
        result = embed(source, input=input_path, output=output, variant=variant, text_column=text_column,
                       id_column=id_column, keep_columns=keep, chunk_rows=chunk_rows, batch_size=batch_size,
                       prompt_name=prompt_name, on_bad_row=on_bad_row, overwrite=overwrite, engine=engine,
                       workers=workers, threads=threads, mode=mode, address=address,
                       show_progress=not (quiet or as_json), revision=revision, endpoint=endpoint, token=token,
                       cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    except (KeyboardInterrupt, Terminated) as error:
        # Not "nothing was placed": every finished part is complete and listed; a rerun resumes from there.
        word, code = ("interrupted", 130) if isinstance(error, KeyboardInterrupt) else ("terminated", 143)
        click.echo(f"{word}: the finished parts in {output} are kept; rerun the same command to resume", err=True)
        sys.exit(code)
    if as_json:
        print_json(result.to_dict())
        return
    if not quiet:
        click.echo(f"{result.rows:,} rows in {result.parts} parts ({result.parts_reused} kept from an earlier run, "
                   f"{result.skipped_rows} bad rows skipped) in {result.output}", err=True)
        click.echo(f"{result.encoded_rows:,} rows encoded in {result.seconds:.1f} s: {result.rows_per_second:,.0f} "
                   f"rows/s, {result.tokens_per_second:,.0f} tokens/s ({result.engine}, {result.workers} x "
                   f"{result.threads} threads)", err=True)
    sys.stdout.flush()
