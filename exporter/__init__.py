"""embedding-exporter: export, validate, package and fetch sentence-embedding models.

Public API: ``load_recipe``, ``build``, ``push``, ``fetch``, ``load``, ``write_card``, ``finalize_manifest``,
``recipe_json_schema``; errors in ``exporter.errors``. Attributes are imported on first use so
``exporter --help`` does not pay for importing torch. No module is named like a public function
(``build`` lives in ``exporter.builder``, ``push`` in ``exporter.publish``, ``fetch`` in ``exporter.fetcher``):
importing a submodule binds its name on the package, which would replace the function.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "build": "exporter.builder",
    "BuildResult": "exporter.builder",
    "load_recipe": "exporter.recipe",
    "recipe_json_schema": "exporter.recipe",
    "Recipe": "exporter.recipe",
    "push": "exporter.publish",
    "PushResult": "exporter.publish",
    "write_card": "exporter.card",
    "finalize_manifest": "exporter.package",
    "fetch": "exporter.fetcher",
    "load": "exporter.fetcher",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
