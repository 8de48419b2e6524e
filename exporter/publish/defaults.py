"""The manifest's ``publish`` section (a recipe's ``publish:``), typed once: the defaults of ``push``'s
options, which the model card reads too (its load snippets name ``publish.repo_id``). A module of its own so
that ``card`` and ``push`` both import it and neither imports the other."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from exporter.artifact.manifest import Manifest
from exporter.constants import MANIFEST_NAME
from exporter.errors import ManifestError


class PublishDefaults(BaseModel):
    """The manifest's ``publish`` section (the recipe's ``publish:``): defaults for ``push``'s options.

    The manifest keeps that section as written; it is typed here, once, with unknown keys allowed."""

    model_config = ConfigDict(extra="allow")

    repo_id: str | None = None
    private: bool | None = None
    create_pr: bool = False
    revision: str | None = None
    tag: str | None = None
    commit_message: str | None = None

    @classmethod
    def of(cls, manifest: Manifest, folder: Path) -> PublishDefaults:
        try:
            return cls.model_validate(manifest.publish)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise ManifestError(f"{folder / MANIFEST_NAME}: publish.{where}: {problem['msg']}") from None


__all__ = ["PublishDefaults"]
