"""``run_recipe``: the whole pipeline for one recipe, as ``exporter run`` does it: build (export every
variant, validate them against the torch model, place the folder), then push when asked and validation
passed. A failed validation is not an exception: the folder is placed, marked failed, and not pushed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.errors import BadInputError
from exporter.progress import Progress, SilentProgress
from exporter.runtime.packages import require_build_stack

if TYPE_CHECKING:
    from exporter.export.builder import BuildResult
    from exporter.publish.push import PushResult
    from exporter.recipe import LoadedRecipe


@dataclass
class RunResult:
    """What a run built and, with ``push=True``, what it published (None when validation failed)."""

    build: BuildResult
    push: PushResult | None = None

    @property
    def passed(self) -> bool:
        """Validation passed (or was skipped)."""
        return self.build.report is None or self.build.report.passed

    def summary(self) -> dict[str, Any]:
        summary = self.build.summary()
        # The recipe's thresholds below the precision defaults, by name: the gate this run held variants to.
        summary["loosened"] = self.build.report.loosened() if self.build.report is not None else []
        if self.push is not None:
            summary["push"] = self.push.to_dict()
        return summary


def run_recipe(
    recipe: str | os.PathLike | LoadedRecipe,
    *,
    output: str | Path | None = None,
    variants: list[str] | None = None,
    validate: bool = True,
    push: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    wait: bool = False,
    progress: Progress | None = None,
    reference: str | Path | None = None,
    cache: str | Path | None = None,
    isa: str | None = None,
) -> RunResult:
    """Build the recipe's artifacts (see ``exporter.build``) and, with ``push``, publish them with the recipe's
    ``publish:`` settings (see ``exporter.push``; ``token`` and ``endpoint`` as there). ``reference``, ``cache``
    and ``isa``: a CI shard's shared reference, build cache and resolved ``isa: auto`` (see ``build``).

    Raises ``BadInputError`` for ``push`` without ``validate`` (unvalidated variants cannot be published),
    ``RuntimeUnavailableError`` on an install without the build stack (a deploy install: the message names
    ``pip install "embedding-exporter[build]"``), and whatever ``build`` and ``push`` raise.
    """
    if push and not validate:
        raise BadInputError("push=True needs validate=True: unvalidated variants cannot be published")
    require_build_stack("building a recipe")  # a deploy install: one line naming the extra, not an ImportError

    from exporter.export.builder import build

    progress = progress or SilentProgress()
    built = build(recipe, output=output, variants=variants, progress=progress, validate=validate, wait=wait,
                  reference=reference, cache=cache, isa=isa)
    result = RunResult(build=built)
    if push and result.passed:
        from exporter.publish.push import push as push_folder

        result.push = push_folder(built.output, token=token, endpoint=endpoint, progress=progress)
    return result
