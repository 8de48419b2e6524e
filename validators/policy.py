"""Which thresholds a validation holds each variant to: the deployer owns the gate.

An artifact records the thresholds its recipe chose (``validation_thresholds`` per variant: the recipe
author's gate, which may loosen the defaults). Whoever validates or checks it later decides:

* ``strict`` (the default of ``exporter validate`` and ``fetch --check``): key by key the stricter of the
  tool's precision defaults and the artifact's recorded thresholds, so an artifact never gates itself
  below the defaults;
* ``defaults``: the precision defaults only;
* ``artifact``: the recorded thresholds (what ``exporter run`` and ``exporter push`` hold variants to);
* a file (YAML or JSON, in the shape of a recipe's ``validation.thresholds``: any of ``cosine_min``,
  ``cosine_mean``, ``neighbour_overlap``, ``spearman``), whose values replace the precision defaults key by key.

Every threshold below the sanity floor is refused (``BadInputError``, naming the file, line and key), and
every one looser than its precision default is reported by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exporter.errors import BadInputError
from exporter.validators.thresholds import (
    THRESHOLD_KEYS,
    Thresholds,
    default_thresholds,
    effective_thresholds,
    stricter,
)

STRICT, DEFAULTS, ARTIFACT, FILE = "strict", "defaults", "artifact", "file"
POLICIES = (STRICT, DEFAULTS, ARTIFACT)
DESCRIPTIONS = {
    STRICT: "the stricter of the precision defaults and the artifact's recorded thresholds",
    DEFAULTS: "the precision defaults",
    ARTIFACT: "the artifact's recorded thresholds (its recipe's)",
}


@dataclass(frozen=True)
class ThresholdPolicy:
    """Where a validation's thresholds come from: ``kind`` (strict, defaults, artifact or file) and, for a
    file, its path and thresholds."""

    kind: str = STRICT
    file: str | None = None
    explicit: Thresholds | None = None

    @classmethod
    def parse(cls, value: str | os.PathLike | ThresholdPolicy | None) -> ThresholdPolicy:
        """``None`` (strict), ``"strict"``, ``"defaults"``, ``"artifact"``, or the path of a thresholds file
        (read now: ``BadInputError`` for a missing, malformed or sub-floor file)."""
        if isinstance(value, ThresholdPolicy):
            return value
        if value is None or (isinstance(value, str) and value in POLICIES):
            return cls(value or STRICT)
        path = Path(value)
        if not path.is_file():
            raise BadInputError(f"thresholds={str(value)!r}: expected {', '.join(POLICIES)} or a thresholds file "
                                "(YAML or JSON)" + (f"; {path} is not a file" if path.exists() else ""))
        return cls(FILE, str(path), read_thresholds_file(path))

    def resolve(self, precision: str, recorded: Thresholds | None) -> Thresholds:
        """The thresholds a variant of ``precision`` with ``recorded`` thresholds is held to. Raises
        ``ValueError`` for an unknown precision."""
        if self.kind == DEFAULTS:
            return default_thresholds(precision)
        if self.kind == ARTIFACT:
            return effective_thresholds(precision, None, recorded)
        if self.kind == FILE:
            return effective_thresholds(precision, None, self.explicit)
        return stricter(default_thresholds(precision), effective_thresholds(precision, None, recorded))

    def describe(self) -> str:
        return f"the thresholds in {self.file}" if self.kind == FILE else DESCRIPTIONS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.kind, "file": self.file, "description": self.describe()}


def read_thresholds_file(path: str | os.PathLike) -> Thresholds:
    """Read a thresholds file: a YAML (or JSON) mapping of ``cosine_min``, ``cosine_mean``,
    ``neighbour_overlap`` and/or ``spearman``. ``BadInputError`` with ``file:line: key: problem``."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot read the thresholds file: {error}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise BadInputError(f"{path}{line}: malformed YAML: {error.problem or error.context or 'invalid'}") from None
    except yaml.YAMLError as error:
        raise BadInputError(f"{path}: malformed YAML: {error}") from None
    expected = ", ".join(THRESHOLD_KEYS)
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise BadInputError(f"{path}:1: expected a mapping of thresholds ({expected}), like a recipe's "
                            "validation.thresholds")
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    try:
        return Thresholds.model_validate(data)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        key = str(problem["loc"][0]) if problem["loc"] else ""
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = f"unknown key (expected {expected})"
        raise BadInputError(f"{path}:{lines.get(key, 1)}: {key}: {message}") from None


__all__ = ["ARTIFACT", "DEFAULTS", "DESCRIPTIONS", "FILE", "POLICIES", "STRICT", "ThresholdPolicy",
           "read_thresholds_file"]
