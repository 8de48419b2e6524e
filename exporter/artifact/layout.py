"""Where each variant's files go inside an artifact folder.

The layout follows sentence-transformers: ONNX files in ``onnx/``, OpenVINO IR in ``openvino/``, and the
model's sentence-transformers files at the top. Clients load some file names without being told a file:
sentence-transformers ``onnx/model.onnx`` / ``openvino/openvino_model.xml``, transformers.js
``onnx/model.onnx`` (dtype fp32), ``onnx/model_quantized.onnx`` (q8) and ``onnx/model_fp16.onnx`` (fp16).

Those *client-default* names go only to ``graph: transformer`` variants (a client would pool a sentence
graph's output again), by one rule over the whole recipe, so that building some of its variants names them
as building all of them would; every other variant gets a name suffixed with its variant name. A variant
that fails parity is moved to that suffixed name before the folder is placed (``exporter.export.builder``),
so no client picks it up by default.

torch variants (``backend: torch``) are the Transformer module's weights as ``model.<precision>.safetensors`` in
that module's folder: the name transformers loads for ``variant=<precision>``, and never a default (a plain
``SentenceTransformer(folder)`` looks for ``model.safetensors``, which the artifact does not ship).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.constants import torch_weights_name

if TYPE_CHECKING:
    from exporter.recipe import Variant

# Per backend: the folder of its model files and their extension.
MODEL_FOLDER = {"onnx": ("onnx/", ".onnx"), "openvino": ("openvino/", ".xml")}
# How a model file's own name starts: sentence-transformers finds OpenVINO IR only as ``openvino*.xml``.
FILE_PREFIX = {"onnx": "", "openvino": "openvino"}
_FILE_NAME = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


@dataclass(frozen=True)
class ClientDefault:
    """A file name some client loads without being told a file, and the variants it goes to."""

    file_name: str
    backend: str
    precision: str
    loaded_by: str
    # The name itself states the precision (clients load it as that dtype): only that precision may claim it.
    names_precision: bool = False
    # The automatic rule gives it only to a variant without graph optimisation.
    plain_only: bool = False

    def takes(self, variant: Variant) -> bool:
        """Whether the automatic rule may give this name to ``variant``."""
        return (variant.graph == "transformer" and variant.backend == self.backend
                and variant.precision == self.precision and not (self.plain_only and variant.optimize != "none"))


# In the order of the rule in docs/artifact.md (File names); each goes to the first variant in recipe order
# that it ``takes``.
CLIENT_DEFAULTS = (
    ClientDefault("onnx/model.onnx", "onnx", "fp32", "sentence-transformers (backend onnx), transformers.js "
                  "(dtype fp32)", plain_only=True),
    ClientDefault("onnx/model_quantized.onnx", "onnx", "int8", "transformers.js (dtype q8)", names_precision=True),
    ClientDefault("onnx/model_fp16.onnx", "onnx", "fp16", "transformers.js (dtype fp16)", names_precision=True),
    ClientDefault("openvino/openvino_model.xml", "openvino", "fp32", "sentence-transformers (backend openvino)",
                  plain_only=True),
)
CLIENT_DEFAULT_FILES = frozenset(default.file_name for default in CLIENT_DEFAULTS)

# What `exporter bench` keeps in a folder: its results and, with --plot, the chart beside them (at most one
# chart is there: the last run's). Documentation for people: the card shows them, fetch skips them.
BENCH_NAME = "bench.json"
CHART_STEM = "bench"
CHART_SUFFIXES = (".png", ".svg")
CHART_NAMES = tuple(f"{CHART_STEM}{suffix}" for suffix in CHART_SUFFIXES)


def client_default(file_name: str) -> ClientDefault | None:
    """The client default called ``file_name``, or None when no client loads that name by default."""
    return next((default for default in CLIENT_DEFAULTS if default.file_name == file_name), None)


@dataclass(frozen=True)
class VariantFiles:
    """Where one variant's model file goes: ``file_name`` as built, ``failed_file_name`` when it fails parity
    (its suffixed name when ``file_name`` is a client default, else ``file_name`` itself)."""

    file_name: str
    failed_file_name: str

    @property
    def is_client_default(self) -> bool:
        return self.file_name in CLIENT_DEFAULT_FILES


class FileNameConflict(ValueError):
    """Two variants of a recipe would write one file; ``index`` is the later one's position."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def suffixed_file_name(variant: Variant) -> str:
    """The variant's own model file name, from its variant name: ``onnx/model_<name>.onnx`` or
    ``openvino/openvino_model_<name>.xml`` (the backend prefix dropped). Never a client-default name: the graph
    kind is appended where the variant name alone would give one (``onnx-fp16`` →
    ``onnx/model_fp16_transformer.onnx``)."""
    name = variant.resolved_name
    if name.startswith(variant.backend + "-"):
        name = name[len(variant.backend) + 1 :]
    suffix = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or variant.backend
    folder, extension = MODEL_FOLDER[variant.backend]
    stem = f"{folder}model_{suffix}" if variant.backend == "onnx" else f"{folder}openvino_model_{suffix}"
    if stem + extension in CLIENT_DEFAULT_FILES:
        stem += f"_{variant.graph}"
    return stem + extension


def file_name_problem(variant: Variant) -> str | None:
    """Why the variant's explicit ``file_name`` is not usable, or None when it is (or there is none)."""
    file_name = variant.file_name
    if file_name is None:
        return None
    if variant.backend == "torch":
        return (f"a torch variant's file is {torch_weights_name(variant.precision)} (what transformers loads for "
                f"variant={variant.precision!r}); file_name cannot change it")
    folder, extension = MODEL_FOLDER[variant.backend]
    if not _FILE_NAME.fullmatch(file_name) or any(part in (".", "..") for part in file_name.split("/")):
        return (f"{file_name!r} is not a relative path of letters, digits, '.', '_' and '-' "
                f"(expected {folder}<name>{extension})")
    prefix = FILE_PREFIX[variant.backend]
    base = file_name.rsplit("/", 1)[-1]
    if not file_name.startswith(folder) or not file_name.endswith(extension) or \
            not base.startswith(prefix) or len(base) <= len(extension):
        why = " (sentence-transformers finds only openvino*.xml)" if prefix else ""
        return f"an {variant.backend} variant's file is {folder}{prefix}<name>{extension}{why}, got {file_name!r}"
    default = client_default(file_name)
    if default is None:
        return None
    if variant.graph != "transformer":
        return (f"{file_name} is a client-default name ({default.loaded_by} loads it by default); a graph: "
                f"{variant.graph} variant may not take one (clients would pool its output again)")
    if default.names_precision and variant.precision != default.precision:
        return (f"{file_name} is what {default.loaded_by} loads as {default.precision}; this variant is "
                f"{variant.precision}")
    return None


def assign_file_names(variants: Sequence[Variant]) -> list[VariantFiles]:
    """The model file of every variant of a recipe, in recipe order.

    A variant's explicit ``file_name`` is used as is. Each client-default name nobody claims explicitly goes
    to the first variant in recipe order that it ``takes`` (see ``CLIENT_DEFAULTS``); every other variant
    gets its ``suffixed_file_name``. Raises ``FileNameConflict`` when two variants would share a name,
    counting the name a variant moves to when it fails parity.
    """
    claimed = {variant.file_name for variant in variants if variant.file_name}
    assigned: list[VariantFiles] = []
    for variant in variants:
        if variant.backend == "torch":  # transformers' variant rule names it; beside the Transformer module's config
            name = torch_weights_name(variant.precision)
            assigned.append(VariantFiles(file_name=name, failed_file_name=name))
            continue
        file_name = variant.file_name
        if file_name is None:
            default = next((d for d in CLIENT_DEFAULTS if d.file_name not in claimed and d.takes(variant)), None)
            file_name = default.file_name if default is not None else suffixed_file_name(variant)
            claimed.add(file_name)
        failed = suffixed_file_name(variant) if file_name in CLIENT_DEFAULT_FILES else file_name
        assigned.append(VariantFiles(file_name=file_name, failed_file_name=failed))
    owners: dict[str, int] = {}
    for index, files in enumerate(assigned):
        for name in dict.fromkeys((files.file_name, files.failed_file_name)):
            if name in owners:
                other = owners[name]
                owner = f"variant {other} ({variants[other].resolved_name})"
                clash = (f"{name!r} is also the file of {owner}" if assigned[other].file_name == name
                         else f"{name!r} is where {owner} moves when it fails parity")
                if variants[index].file_name != name:
                    clash += f"; derived from the name {variants[index].resolved_name!r}: set file_name or another name"
                raise FileNameConflict(index, clash)
            owners[name] = index
    return assigned
