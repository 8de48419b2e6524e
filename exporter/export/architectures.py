"""Which transformer architectures the exporter supports, checked before anything is written.

Each architecture here was exported to every variant kind (both backends, every precision, both graph
kinds) and validated at the fp32 bar on a model of it (tests/test_supported_models.py; docs/supported-models.md
says what was measured on which model). A model of another ``model_type`` may export but was never proven to:
it is refused rather than shipped unproven, and so is a model whose ``config.json`` asks for custom code
(``auto_map``) without the recipe's ``model.trust_remote_code`` opt-in.
"""

from __future__ import annotations

import json
from pathlib import Path

from exporter.artifact.model_folder import transformer_module_path
from exporter.constants import BACKENDS
from exporter.errors import BadInputError

# model_type (config.json) -> the backends that export it. Every backend handles every listed type today (torch
# variants are the model's own weights, cast: nothing to export); an architecture a backend cannot handle gets only
# the others, and ``check_variant_backends`` refuses the rest.
SUPPORTED_BACKENDS: dict[str, tuple[str, ...]] = {
    model_type: BACKENDS for model_type in ("bert", "distilbert", "mpnet", "roberta", "xlm-roberta", "modernbert")
}


def source_model_type(directory: Path, where: str, *, trust_remote_code: bool) -> str | None:
    """The ``model_type`` of the source model's Transformer module, checked: a listed type, or custom code
    (``auto_map``) with the opt-in. Returns None for a folder without config.json (nothing to check). Raises
    ``BadInputError`` naming the file and what is supported."""
    path = Path(directory) / transformer_module_path(directory) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise BadInputError(f"{where}: {path}: not readable JSON ({type(error).__name__})") from None
    if not isinstance(config, dict):
        raise BadInputError(f"{where}: {path}: expected a JSON object")
    model_type = config.get("model_type")
    supported = ", ".join(SUPPORTED_BACKENDS)
    if config.get("auto_map") and not trust_remote_code:
        raise BadInputError(f"{where}: {path}: model_type {model_type!r} runs custom code (auto_map); set "
                            "model.trust_remote_code: true in the recipe to allow it (supported without code: "
                            f"{supported})")
    if model_type not in SUPPORTED_BACKENDS and not (config.get("auto_map") and trust_remote_code):
        raise BadInputError(f"{where}: {path}: model_type {model_type!r} is not supported (supported: {supported})")
    return str(model_type)


def check_variant_backends(model_type: str | None, variants, where: str) -> None:
    """Refuse a variant whose backend cannot export ``model_type`` (naming the type, the backend and why)."""
    if model_type not in SUPPORTED_BACKENDS:
        return
    for variant in variants:
        if variant.backend not in SUPPORTED_BACKENDS[model_type]:
            raise BadInputError(f"{where}: variant {variant.resolved_name!r}: backend {variant.backend} cannot "
                                f"export model_type {model_type!r} (supported there: "
                                f"{', '.join(SUPPORTED_BACKENDS[model_type])})")
