"""The docs site (docs/, mkdocs.yml) and the README: no snippet can rot, no link can break.

The snippet rule: every fenced code block in docs/*.md either includes a file from docs/snippets/
(pymdownx.snippets: ``--8<-- "snippets/x.py"`` as the fence's only line), which a test here runs against a real
artifact (the tiny BERT artifact test_push builds and validates, benched once), or has the line
``<!-- illustrative: <reason> -->`` directly before its opening fence. ``mkdocs build --strict`` then turns a
broken link, a missing snippet file or an API reference that no longer resolves into a failure.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import cosine
from test_push import validated_artifact

import exporter

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INCLUDE = re.compile(r'^\s*--8<--\s+"(?P<path>snippets/[^"]+)"\s*$')
ILLUSTRATIVE = re.compile(r"^<!-- illustrative: \S.*-->$")
# The folders the snippets name, as a reader has them after the quickstart; the tests point them at the tiny one.
PLACEHOLDERS = ("artifacts/minilm-onnx", "artifacts/minilm-openvino")
QUICKSTART = ('pip install -e ".[demo]" && exporter run recipes/minilm-openvino.yaml',
              'pip install -e ".[dev]" && pytest')


def pages() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*.md") if SNIPPETS not in path.parents)


def fence_problems(text: str, where: str) -> list[str]:
    """``where:line: ...`` for each opening fence that is neither a snippet include nor marked illustrative."""
    lines = text.splitlines()
    problems, open_fence = [], None
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if open_fence is not None:
            if match and match["fence"][0] == open_fence[0] and len(match["fence"]) >= len(open_fence) \
                    and not match["info"].strip():
                open_fence = None
            continue
        if not match:
            continue
        open_fence = match["fence"]
        following = lines[number] if number < len(lines) else ""
        previous = lines[number - 2] if number >= 2 else ""
        include = INCLUDE.match(following)
        if include:
            if not (DOCS / include["path"]).is_file():
                problems.append(f"{where}:{number}: includes {include['path']}, which does not exist")
        elif not ILLUSTRATIVE.match(previous.strip()):
            problems.append(f"{where}:{number}: a code block that is neither included from docs/snippets/ nor "
                            "preceded by <!-- illustrative: <reason> -->")
    return problems


def included_snippets() -> set[str]:
    return {match["path"] for page in pages() for line in page.read_text(encoding="utf-8").splitlines()
            if (match := INCLUDE.match(line))}


# ------------------------------------------------------------------------------------------ the rule


def test_every_code_block_is_an_included_snippet_or_marked_illustrative():
    problems = [problem for page in pages()
                for problem in fence_problems(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)


def test_the_rule_names_file_and_line_of_an_unmarked_block():
    text = ("# Page\n\n<!-- illustrative: a shell line -->\n```bash\nls\n```\n\n```python\nprint(1)\n```\n\n"
            '```python\n--8<-- "snippets/missing.py"\n```\n\n````\n```\nnested\n```\n````\n')
    assert fence_problems(text, "docs/x.md") == [
        "docs/x.md:8: a code block that is neither included from docs/snippets/ nor preceded by "
        "<!-- illustrative: <reason> -->",
        "docs/x.md:12: includes snippets/missing.py, which does not exist",
        "docs/x.md:16: a code block that is neither included from docs/snippets/ nor preceded by "
        "<!-- illustrative: <reason> -->",
    ]


def test_every_snippet_file_is_included_by_a_page():
    files = {f"snippets/{path.name}" for path in SNIPPETS.glob("*.py")}
    assert files and files == included_snippets()


# ------------------------------------------------------------------------------------------ the snippets run


@pytest.fixture(scope="module")
def docs_artifact(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """(source model, a copy of the validated tiny artifact with a saved bench run): what the snippets load."""
    source, built = validated_artifact(tiny_model, tmp_path_factory)
    folder = Path(shutil.copytree(built, tmp_path_factory.mktemp("docs") / "artifact"))
    exporter.bench(folder, num_texts=8, batch_size=4, rounds=1, warmup_rounds=0, latency_count=0, threads=1,
                   measure_memory=False, length_classes=["short", "mixed"])
    return source, folder


def run_snippet(name: str, folder: Path, workdir: Path, monkeypatch) -> dict:
    """Run docs/snippets/NAME with the artifact folders it names pointed at ``folder``; its namespace."""
    source = (SNIPPETS / name).read_text(encoding="utf-8")
    assert any(f'"{placeholder}' in source for placeholder in PLACEHOLDERS), name
    for placeholder in PLACEHOLDERS:
        source = source.replace(f'"{placeholder}', f'"{folder.as_posix()}')
    monkeypatch.chdir(workdir)
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, str(SNIPPETS / name), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


@pytest.fixture(scope="module")
def expected(docs_artifact) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(docs_artifact[0]), device="cpu").encode(["first text", "second text"])


def test_load_snippet_gives_the_torch_models_embeddings(docs_artifact, expected, tmp_path, monkeypatch):
    namespace = run_snippet("load.py", docs_artifact[1], tmp_path, monkeypatch)
    assert namespace["embeddings"].shape == expected.shape
    assert cosine(namespace["embeddings"], expected).min() >= 0.9999
    assert namespace["sentence"].variant.name == "onnx-fp32-sentence"
    assert namespace["batched"].settings["mode"] == "throughput"


def test_plain_runtimes_snippet_gives_the_torch_models_embeddings(docs_artifact, expected, tmp_path, monkeypatch):
    namespace = run_snippet("plain_runtimes.py", docs_artifact[1], tmp_path, monkeypatch)
    for name in ("embeddings", "pooled", "ov_embeddings"):  # sentence graph, transformer + numpy pooling, OpenVINO
        assert cosine(np.asarray(namespace[name]), expected).min() >= 0.9999, name


def test_plot_snippet_draws_a_saved_bench_json(docs_artifact, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason='the chart needs pip install "embedding-exporter[plot]"')
    run_snippet("plot_saved_bench.py", docs_artifact[1], tmp_path, monkeypatch)
    chart = (tmp_path / "minilm-openvino-bench.svg").read_text(encoding="utf-8")
    cpu = json.loads((docs_artifact[1] / "bench.json").read_text())["host"]["cpu"]
    assert chart.lstrip().startswith("<?xml") and cpu in chart


# ------------------------------------------------------------------------------------------ site and README


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed (pip install -e ".[docs]")')
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env={**__import__("os").environ,
                                                                           "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    assert all(f"exporter {command}" in cli for command in ("run", "validate", "bench", "push", "fetch", "doctor"))
    assert "--plot" in cli  # generated from the click commands
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "Encoder" in api and "choose_variant" in api  # generated from the docstrings


def test_readme_is_short_keeps_the_quickstart_and_links_existing_pages():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 200
    for command in QUICKSTART:
        assert command in readme, command
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", readme))
    assert linked and all((ROOT / path).is_file() for path in linked), linked
    site_pages = {f"docs/{page.name}" for page in pages() if page.name != "README.md"}  # docs/README: not a page
    assert site_pages <= linked  # every page is reachable from the README
