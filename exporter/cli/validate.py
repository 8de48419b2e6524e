"""``exporter validate``: the parity gate for CI.

Exit 0 when every variant passes, 1 when a threshold failed (one stderr line per failed check), 2 for bad
input (no folder, no or malformed manifest, no reference to compare with). Heavy imports happen inside the
command so ``exporter --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from exporter.cli.common import (
    EPILOG,
    handle_errors,
    json_option,
    progress_for,
    quiet_option,
    reword_errors,
    stderr_console,
    thresholds_option,
    trust_remote_code_option,
    verbose_option,
)


@click.command("validate", epilog=EPILOG)
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.option("--source", "source", type=click.Path(path_type=Path), metavar="DIR",
              help="Source sentence-transformers model (default: where the manifest says it was read from; "
                   "when that is not available here, the stored reference in parity/).")
@click.option("--texts", "texts", type=click.Path(path_type=Path), metavar="FILE",
              help="Extra validation texts: .txt (one per line) or .jsonl (a \"text\" field per line).")
@json_option
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Write a JUnit XML report (a testcase per variant and check).")
@click.option("--markdown", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Write a Markdown summary (e.g. for $GITHUB_STEP_SUMMARY).")
@click.option("--report-dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Write the results (parity_report.json, parity/, manifest.json with the verdicts) to DIR instead "
                   "of the artifact folder; needed for a huggingface_hub cache snapshot, which is never written to.")
@thresholds_option
@trust_remote_code_option
@quiet_option
@verbose_option
@handle_errors
@reword_errors(source_dir="--source", extra_texts_file="--texts", thresholds="--thresholds",
               trust_remote_code="--trust-remote-code", report_dir="--report-dir")
def validate_command(
    artifact_dir: Path, source: Path | None, texts: Path | None, as_json: bool,
    junit: Path | None, markdown: Path | None, report_dir: Path | None, thresholds: str | None,
    trust_remote_code: bool, quiet: bool,
) -> None:
    """Check that every variant in ARTIFACT_DIR gives the torch model's embeddings.

    Each variant runs the way its users run it (sentence-transformers for graph: transformer, plain
    onnxruntime / OpenVINO for graph: sentence) on the built-in validation texts, at batch size 1 and in
    mixed-length batches of 32, and is compared with the torch model: per-text cosine, top-10 neighbour
    overlap and Spearman correlation of pairwise similarities, against the stricter of its precision's
    defaults and the thresholds its recipe recorded (--thresholds chooses otherwise; every threshold looser
    than the default is reported). The results are recorded in the folder (parity_report.json,
    manifest.json), with the reference embeddings in parity/ so a host without the torch model can validate
    later. A folder holding Python files or pickles, or naming custom module classes, is refused (exit 2)
    unless --trust-remote-code.

    \b
    Example (CI):
      exporter validate artifacts/minilm-openvino --junit parity.xml --markdown parity.md
    """
    from exporter import validate
    from exporter.errors import BadInputError, ParityFailedError

    progress = progress_for(quiet or as_json)
    report = validate(artifact_dir, source_dir=source, extra_texts_file=texts, record=True, progress=progress,
                      thresholds=thresholds, trust_remote_code=trust_remote_code, report_dir=report_dir)
    if report.record_error:
        click.echo(f"warning: results not recorded in {report_dir or artifact_dir}: {report.record_error}", err=True)
    for path, text in (
        (junit, report.to_junit() if junit else ""),
        (markdown, report.to_markdown() if markdown else ""),
    ):
        if path is not None:
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as error:
                raise BadInputError(f"cannot write {path}: {error}") from None
    if as_json:
        click.echo(report.to_json())
    if not quiet:
        render_report(report)
    if report.trust_remote_code["recorded"] and not report.trust_remote_code["used"]:
        click.echo("note: manifest.json records trust_remote_code: true; not used (only --trust-remote-code allows "
                   "an artifact's code)", err=True)
    for line in report.loosened():
        click.echo(f"loosened: {line}", err=True)
    failures = report.failures()
    for line in failures:
        click.echo(f"parity: {line}", err=True)
    if not report.passed:
        failed_variants = sum(not v.passed for v in report.variants)
        raise ParityFailedError(f"parity failed: {len(failures)} check(s) in {failed_variants} of "
                                f"{len(report.variants)} variant(s) below threshold", failures)


def render_report(report) -> None:
    """A rich table per variant on stderr: measured vs required, pass/fail."""
    from rich.table import Table

    from exporter.validators.report import format_requirement, format_value

    console = stderr_console()
    where = f"torch model ({report.source})" if report.reference == "source" else "stored reference (parity/)"
    console.print(f"Reference: {where}; {report.texts['total']} texts, batch 1 on {report.texts['batch_1']}, "
                  f"batch {max(report.batch_sizes)} on all. Thresholds: "
                  f"{report.thresholds.get('description') or report.thresholds.get('policy')}.")
    for variant in report.variants:
        status = "[green]passed[/green]" if variant.passed else "[red]FAILED[/red]"
        table = Table(title=f"{variant.name} ({variant.backend}, {variant.precision}, "
                            f"graph: {variant.graph}): {status}")
        for column in ("check", "measured", "required", "result"):
            table.add_column(column)
        for check in variant.checks:
            result = (
                ("[green]pass[/green]" if check.passed else "[red]FAIL[/red]")
                if check.gating
                else "[dim]reported[/dim]"
            )
            table.add_row(check.name, format_value(check.measured, check.required), format_requirement(check), result)
        console.print(table)
    verdict = "[green]all variants passed[/green]" if report.passed else "[red]parity failed[/red]"
    console.print(f"{verdict} in {report.seconds:.1f} s.")
