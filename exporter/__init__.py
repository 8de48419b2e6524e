"""embedding-exporter: export, validate, package and fetch sentence-embedding models.

Public API: ``load_recipe``, ``build``, ``recipe_json_schema``; errors in ``exporter.errors``.
Attributes are imported on first use so ``exporter --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "build": "exporter.build",
    "BuildResult": "exporter.build",
    "load_recipe": "exporter.recipe",
    "recipe_json_schema": "exporter.recipe",
    "Recipe": "exporter.recipe",
    "push": "exporter.push",
    "PushResult": "exporter.push",
    "write_card": "exporter.card",
    "finalize_manifest": "exporter.package",
    "fetch": "exporter.fetch",
    "load": "exporter.fetch",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
