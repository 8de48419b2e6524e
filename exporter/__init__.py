"""embedding-exporter: export, validate, package and fetch sentence-embedding models.

The packages follow the pipeline: ``recipe`` → ``export`` (build a folder) → ``validators`` (parity) →
``publish`` (card, push) → ``deploy`` (variant choice, fetch); ``artifact`` holds the manifest and the
folder layout every stage shares, ``runtime`` the host profile and the variant runner, ``diagnostics``
bench and doctor, ``cli`` the ``exporter`` command. Each imports only its own layer or below
(docs/architecture.md; ``tests/test_layers.py`` checks it).

Public API: ``load_recipe``, ``build``, ``run_recipe`` (build then push), ``validate``, ``push``, ``fetch``,
``load``, ``load_encoder``, ``embed`` (a corpus into Parquet parts), ``bench``, ``doctor``, ``write_card``,
``finalize_manifest``, ``read_manifest``, ``choose_variant``, ``recipe_json_schema``; errors in
``exporter.errors``. Attributes are imported on first use so ``exporter --help`` does not pay for importing
torch. No subpackage is named like a public function: importing a submodule binds its name on the package,
which would replace the function.

Importing the package declines OpenVINO's and NNCF's usage telemetry for the process (``exporter.telemetry``),
before any of its modules can import openvino or nncf.
"""

from __future__ import annotations

import importlib
from typing import Any

from exporter import telemetry as _telemetry

_telemetry.decline_openvino_telemetry()

__version__ = "0.1.0"

_API = {
    "load_recipe": "exporter.recipe",
    "recipe_json_schema": "exporter.recipe",
    "Recipe": "exporter.recipe",
    "build": "exporter.export.builder",
    "BuildResult": "exporter.export.builder",
    "validate": "exporter.validators.parity",
    "ParityReport": "exporter.validators.report",
    "push": "exporter.publish.push",
    "PushResult": "exporter.publish.push",
    "write_card": "exporter.publish.card",
    "finalize_manifest": "exporter.export.provenance",
    "read_manifest": "exporter.artifact.manifest",
    "Manifest": "exporter.artifact.manifest",
    "fetch": "exporter.deploy.fetch",
    "fetch_variant": "exporter.deploy.fetch",
    "FetchResult": "exporter.deploy.fetch",
    "load": "exporter.deploy.fetch",
    "load_sentence_transformer": "exporter.deploy.fetch",
    "choose_variant": "exporter.deploy.choice",
    "embed": "exporter.deploy.embed",
    "EmbedResult": "exporter.deploy.embed",
    "bench": "exporter.diagnostics.benchmark",
    "BenchResult": "exporter.diagnostics.bench_results",
    "doctor": "exporter.diagnostics.doctor",
    "DoctorReport": "exporter.diagnostics.doctor",
    "run_recipe": "exporter.pipeline",
    "RunResult": "exporter.pipeline",
    "Encoder": "exporter.runtime.encoder",
    "load_encoder": "exporter.runtime.encoder",
    "HostProfile": "exporter.runtime.host",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
