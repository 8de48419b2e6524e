"""The one table of the packages this tool cares about: what to import to find each, which distributions
provide it, the pip command that installs it, and what it is needed for. Host profiles, doctor, the
manifest's runtime requirements and environment, the model card and bench all read it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import platform
import re
from dataclasses import dataclass
from typing import Any

from exporter.errors import RuntimeUnavailableError, first_line


@dataclass(frozen=True)
class Package:
    """One package: its name (as the tables show it), the module to find, the distributions that provide it,
    the command that installs it, and the backend that needs it to load a variant ("all": every variant)."""

    name: str
    module: str
    distributions: tuple[str, ...]
    install: str
    needed_for: str | None = None
    in_environment: bool = True  # reported in the manifest's environment (the card's versions table)
    # "module:Name" that must import for the package to be usable. sentence-transformers' loaders import lazily: a
    # stale optimum-onnx beside transformers 5 imports as a module but fails on the class sentence-transformers uses.
    usable_if: str | None = None


PACKAGES: tuple[Package, ...] = (
    Package("torch", "torch", ("torch",), "pip install torch==2.13.0", needed_for="torch"),
    Package("transformers", "transformers", ("transformers",), "pip install transformers"),
    Package("sentence-transformers", "sentence_transformers", ("sentence-transformers",),
            "pip install sentence-transformers", needed_for="all"),
    Package("optimum", "optimum", ("optimum",), "pip install optimum", needed_for="all"),
    # sentence-transformers' ONNX backend; optimum-onnx has no release for transformers 5, so it installs only in a
    # sentence-transformers 5.7 environment (compat/st57-constraints.txt), not beside the build stack.
    Package("optimum-onnx", "optimum.onnxruntime", ("optimum-onnx", "optimum"),
            "pip install -c compat/st57-constraints.txt \"sentence-transformers[onnx]==5.7.0\" "
            "(a separate environment: optimum-onnx needs transformers 4)",
            usable_if="optimum.onnxruntime:ORTModelForFeatureExtraction"),
    Package("optimum-intel", "optimum.intel", ("optimum-intel",), 'pip install "sentence-transformers[openvino]"',
            usable_if="optimum.intel:OVModelForFeatureExtraction"),
    Package("onnx", "onnx", ("onnx",), "pip install onnx"),
    Package("onnxruntime", "onnxruntime", ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino",
                                           "onnxruntime-directml", "onnxruntime-silicon"),
            "pip install onnxruntime", needed_for="onnx"),
    Package("openvino", "openvino", ("openvino",), "pip install openvino", needed_for="openvino"),
    Package("nncf", "nncf", ("nncf",), "pip install nncf"),
    Package("huggingface-hub", "huggingface_hub", ("huggingface-hub",), "pip install huggingface-hub"),
    Package("numpy", "numpy", ("numpy",), "pip install numpy", in_environment=False),
)
BY_NAME: dict[str, Package] = {package.name: package for package in PACKAGES}
# What building a recipe, and validating against the torch model, cannot start without; a deploy install (a runtime
# extra only) has none of them. BUILD_EXTRA installs them.
BUILD_STACK: tuple[str, ...] = ("torch", "transformers", "sentence-transformers")
BUILD_EXTRA = 'pip install "embedding-exporter[build]"'
# The components a host profile records (what decides which variant can run here).
COMPONENTS: tuple[str, ...] = ("onnxruntime", "openvino", "sentence-transformers", "optimum-onnx", "optimum-intel",
                               "torch", "transformers", "optimum", "nncf")


def distribution_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_version(name: str) -> str | None:
    """The installed version of a package of the table (its first installed distribution), else None."""
    package = BY_NAME.get(name)
    for distribution in package.distributions if package else (name,):
        version = distribution_version(distribution)
        if version:
            return version
    return None


def component_version(name: str) -> str | None:
    """The version of a package whose module can be found (None when it cannot; "unknown" without metadata)."""
    package = BY_NAME[name]
    try:
        if importlib.util.find_spec(package.module) is None:
            return None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return None
    return installed_version(name) or "unknown"


def missing_build_stack() -> list[str]:
    """The packages of ``BUILD_STACK`` that are not installed here (finds their modules, imports none)."""
    return [name for name in BUILD_STACK if component_version(name) is None]


def require_build_stack(what: str) -> None:
    """``RuntimeUnavailableError`` naming the missing packages and ``BUILD_EXTRA`` when ``what`` (e.g. "building a
    recipe") cannot run here for lack of the build stack."""
    missing = missing_build_stack()
    if missing:
        raise RuntimeUnavailableError(f"{what} needs {', '.join(missing)}, not installed here: {BUILD_EXTRA}",
                                      fix=BUILD_EXTRA)


@functools.cache
def import_problem(name: str) -> str | None:
    """Why a package of the table cannot be used here (not installed, or the first line of the error its import
    raises), None when it imports. Imports the module (and ``usable_if``): slower than ``component_version``."""
    package = BY_NAME[name]
    module, _, attribute = (package.usable_if or package.module).partition(":")
    try:
        imported = importlib.import_module(module)
        if attribute:
            getattr(imported, attribute)
    except ModuleNotFoundError as error:
        if installed_version(name) is None:
            return "not installed"
        return first_line(error)
    except Exception as error:  # noqa: BLE001 - ImportError, or a broken install raising anything
        return first_line(error)
    return None


def install_hint(name: str) -> str:
    return BY_NAME[name].install if name in BY_NAME else f"pip install {name}"


def minimum_requirement(version: str) -> str:
    """``"1.31.1"`` -> ``">=1.31"`` (major.minor of the version the artifacts were built with)."""
    parts = re.findall(r"\d+", version)[:2]
    return ">=" + ".".join(parts or [version])


def runtime_requirements(backends: set[str]) -> dict[str, str]:
    """What loading the given backends' variants needs, as ``">=X.Y"`` of the installed versions."""
    requirements = {}
    for package in PACKAGES:
        version = installed_version(package.name)
        if version and package.needed_for is not None and (
            package.needed_for == "all" or package.needed_for in backends
        ):
            requirements[package.name] = minimum_requirement(version)
    return requirements


def environment() -> dict[str, Any]:
    """The exact versions of the toolchain (what the card's versions table shows)."""
    packages = {package.name: installed_version(package.name) for package in PACKAGES if package.in_environment}
    return {"python": platform.python_version(), "packages": {k: v for k, v in packages.items() if v}}


def versions(names: tuple[str, ...] | None = None) -> dict[str, str | None]:
    """Installed versions of ``names`` (default: every package of the table, plus this tool)."""
    found = {name: installed_version(name) for name in (names or tuple(BY_NAME))}
    found["embedding-exporter"] = distribution_version("embedding-exporter")
    return found
