"""Where each variant's files go inside an artifact folder.

The layout follows sentence-transformers: ONNX files in ``onnx/``, OpenVINO IR in ``openvino/``, and the
model's sentence-transformers files at the top. sentence-transformers loads ``onnx/model.onnx`` or
``openvino/openvino_model.xml`` when no ``file_name`` is given, so only the plain fp32 transformer graph
gets those names; every other variant (``graph: sentence`` above all, which sentence-transformers must
never load because it would pool twice) gets a suffixed name.
"""

from __future__ import annotations

import re

from exporter.recipe import Variant

DEFAULT_FILE = {"onnx": "onnx/model.onnx", "openvino": "openvino/openvino_model.xml"}


def is_default_variant(variant: Variant) -> bool:
    """The plain (unoptimised) fp32 transformer graph: the file sentence-transformers picks by default."""
    return variant.graph == "transformer" and variant.precision == "fp32" and variant.optimize == "none"


def variant_file_name(variant: Variant) -> str:
    """The variant's model file, relative to the artifact folder (as passed to ``file_name``)."""
    if is_default_variant(variant):
        return DEFAULT_FILE[variant.backend]
    name = variant.resolved_name
    if name.startswith(variant.backend + "-"):
        name = name[len(variant.backend) + 1 :]
    suffix = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or variant.backend
    if variant.backend == "onnx":
        return f"onnx/model_{suffix}.onnx"
    return f"openvino/openvino_model_{suffix}.xml"
