"""The one table of the packages this tool cares about: what to import to find each, which distributions
provide it, and the pip command that installs it. Host profiles, doctor, the manifest's runtime
requirements and environment, the model card and bench all read versions through it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

# component -> (module to find, distributions that provide it, pip install fix)
COMPONENTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "onnxruntime": ("onnxruntime", ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml",
                                    "onnxruntime-silicon"), "pip install onnxruntime"),
    "openvino": ("openvino", ("openvino",), "pip install openvino"),
    "sentence-transformers": ("sentence_transformers", ("sentence-transformers",), "pip install sentence-transformers"),
    "optimum-onnx": ("optimum.onnxruntime", ("optimum-onnx", "optimum"), 'pip install "sentence-transformers[onnx]"'),
    "optimum-intel": ("optimum.intel", ("optimum-intel",), 'pip install "sentence-transformers[openvino]"'),
    "torch": ("torch", ("torch",), "pip install torch"),
    "transformers": ("transformers", ("transformers",), "pip install transformers"),
    "optimum": ("optimum", ("optimum",), "pip install optimum"),
    "nncf": ("nncf", ("nncf",), "pip install nncf"),
}

def component_version(name: str) -> str | None:
    """The installed version of a component of ``COMPONENTS`` (None when its module cannot be found)."""
    module, distributions, _ = COMPONENTS[name]
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return None
    for distribution in distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def install_hint(component: str) -> str:
    return COMPONENTS[component][2] if component in COMPONENTS else f"pip install {component}"
