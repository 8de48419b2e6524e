"""Pytest fixtures for the example MiniLM reranker (examples/reranker/train_minilm_reranker.py).

Use from a conftest with ``from reranker_fixtures import minilm_reranker_dir  # noqa: F401``:

* ``minilm_reranker_dir``: the packaged MiniLM encoder with the shipped trained head, saved once per session by
  ``CrossEncoder.save`` (a sentence-transformers 6.2 CrossEncoder folder: num_labels 1, sigmoid, max_length 256).
  Assembling takes seconds; nothing is trained.
* ``reranker_script``: the script as a module (``build_reranker``, ``read_groups``, ``group_scores``,
  ``ranking_report``, ``new_cross_encoder``), imported by path because examples/ is not a package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "reranker" / "train_minilm_reranker.py"


def load_reranker_script():
    """The example script as a module (cached in ``sys.modules``)."""
    name = "train_minilm_reranker"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def reranker_script():
    return load_reranker_script()


@pytest.fixture(scope="session")
def minilm_reranker_dir(tmp_path_factory, reranker_script) -> Path:
    return reranker_script.build_reranker(tmp_path_factory.mktemp("minilm-reranker") / "model")
