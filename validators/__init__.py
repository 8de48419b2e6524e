"""Parity validation (installed as ``exporter.validators``): prove that exported variants give the torch
model's embeddings. The CI gate is ``exporter validate``; the Python API is:

* ``validate(folder, ..., thresholds=None, trust_remote_code=False) -> ParityReport``; ``check_stored`` (one
  variant against the stored reference, as ``fetch --check``); ``reverify`` (what ``push`` re-runs)
  (``exporter.validators.parity``)
* ``record_results(folder, report)``: parity_report.json and the verdicts into manifest.json
* ``Thresholds``, ``default_thresholds``, ``effective_thresholds``, ``loosened``, ``SANITY_FLOOR``
  (``exporter.validators.thresholds``); ``ThresholdPolicy`` (strict, defaults, artifact or a file:
  ``exporter.validators.policy``)
* ``report_schema()``: the JSON Schema of parity_report.json

Attributes are imported on first use: ``exporter.recipe`` imports ``Thresholds`` from here, which must not
pull in torch or the rest of the package.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "validate": "exporter.validators.parity",
    "check_stored": "exporter.validators.parity",
    "reverify": "exporter.validators.parity",
    "ParityReport": "exporter.validators.report",
    "VariantResult": "exporter.validators.report",
    "report_schema": "exporter.validators.report",
    "Check": "exporter.validators.checks",
    "record_results": "exporter.validators.record",
    "Thresholds": "exporter.validators.thresholds",
    "default_thresholds": "exporter.validators.thresholds",
    "effective_thresholds": "exporter.validators.thresholds",
    "loosened": "exporter.validators.thresholds",
    "SANITY_FLOOR": "exporter.validators.thresholds",
    "ThresholdPolicy": "exporter.validators.policy",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'exporter.validators' has no attribute {name!r}")
