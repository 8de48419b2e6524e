"""``exporter push``: parses arguments, calls ``exporter.publish.push``, prints the result.

Kept apart from ``exporter.cli`` (which registers it) and importing nothing heavy at module level, so
``exporter --help`` stays fast. Errors and progress go through ``exporter.cli.common``; the library silences
huggingface_hub's own progress bars while it pushes.
"""

from __future__ import annotations

import json

import click

from exporter.cli.common import EPILOG, handle_errors, progress_for, reword_errors


@click.command("push", epilog=EPILOG)
@click.argument("artifact_dir", type=click.Path(path_type=str))
@click.option("--repo-id", metavar="ORG/NAME",
              help="Hub model repository (default: the recipe's publish.repo_id). Created when missing.")
@click.option("--private/--public", "private", default=None,
              help="Create the repo private / public (default: the recipe's publish.private, else public). An "
              "existing public repo is never pushed to with --private.")
@click.option("--create-pr/--no-create-pr", "create_pr", default=None,
              help="Open a pull request (refs/pr/N) instead of committing to the branch (default: publish.create_pr).")
@click.option("--revision", metavar="BRANCH",
              help="Branch to commit to, created from main when missing (default: main).")
@click.option("--tag", metavar="TAG", help="Tag the new commit (default: publish.tag). An existing tag is never moved.")
@click.option("--commit-message", metavar="TEXT", help="Commit title (default: \"Upload <recipe> (N variants)\").")
@click.option("--endpoint", metavar="URL", help="Hub URL (default: HF_ENDPOINT, else https://huggingface.co).")
@click.option("--token", metavar="TOKEN",
              help="Hub token with write access (default: HF_TOKEN, else the `hf auth login` token). Never printed.")
@click.option("--verify/--no-verify", "verify", default=True,
              help="Re-run every variant on the stored reference before pushing, against its recorded thresholds "
              "(default). --no-verify skips it and the commit description and --json result record that.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@handle_errors
@reword_errors(repo_id="--repo-id", private="--private", create_pr="--create-pr", revision="--revision", tag="--tag",
               commit_message="--commit-message", endpoint="--endpoint", token="--token")
def push_command(artifact_dir: str, repo_id: str | None, private: bool | None, create_pr: bool | None,
                 revision: str | None, tag: str | None, commit_message: str | None, endpoint: str | None,
                 token: str | None, verify: bool, as_json: bool, quiet: bool) -> None:
    """Publish ARTIFACT_DIR to a Hugging Face Hub model repository, in one commit.

    Refuses (exit 1, nothing pushed) when a variant was not validated or failed validation, when the
    folder does not match manifest.json, or when a variant re-run on the stored reference (parity/) no
    longer meets its recorded thresholds (a few seconds per variant; --no-verify skips it, and says so).
    Writes the model card (README.md) and finalises manifest.json, then commits every changed file (large
    ones through LFS) and deletes remote files the folder no longer has, naming them before the commit and
    in the result (--json: "deleted"): the branch then holds exactly the folder. Identical content makes no
    commit. Hub calls that fail (5xx, timeouts, dropped connections) are retried with backoff, then exit 3;
    a failed commit call is retried only after checking that it did not land. The branch moves by one
    commit or not at all: a push killed mid-way leaves it unchanged, and running it again completes it.

    \b
    Examples:
      exporter push artifacts/minilm-onnx --repo-id my-org/all-MiniLM-L6-v2-onnx
      exporter push artifacts/minilm-onnx --repo-id my-org/minilm --create-pr
      exporter push artifacts/minilm-onnx --repo-id my-org/minilm --tag v1.0 --json
    """
    from exporter.publish.push import push

    progress = progress_for(quiet or as_json)
    result = push(artifact_dir, repo_id, private=private, create_pr=create_pr, revision=revision, tag=tag,
                  commit_message=commit_message, endpoint=endpoint, token=token, verify=verify, progress=progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    for line in result.lines():
        click.echo(line)
