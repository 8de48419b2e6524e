"""The package's layers: every module imports only from its own layer or below, and no run-time imports go
round in a circle. The imports are read from the source with ``ast`` (nothing is imported), so the check is
the same on every install. Imports under ``if TYPE_CHECKING:`` do not count; function-local (lazy) imports
do: they run. The layer table is docs/architecture.md's."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Where each package's source lives (the repository's validators/ folder installs as exporter.validators).
ROOTS = {"exporter": REPO / "exporter", "exporter.validators": REPO / "validators"}
# Bottom to top. A name covers the module and, for a package, every module under it. ``exporter`` is the package
# itself: ``__version__`` and the public API, re-exported by name on first use (``from exporter import build`` is
# read as an import of the module the name comes from, ``exporter.export.builder``).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("exporter", "exporter.constants", "exporter.errors", "exporter.progress",
                    "exporter.telemetry")),
    ("artifact", ("exporter.artifact", "exporter.texts")),
    ("runtime", ("exporter.runtime", "exporter.hub")),
    ("stages", ("exporter.recipe", "exporter.export", "exporter.validators")),
    ("publish and deploy", ("exporter.publish", "exporter.deploy", "exporter.host")),
    ("diagnostics", ("exporter.diagnostics", "exporter.pipeline", "exporter.integrations")),
    ("cli", ("exporter.cli", "exporter.__main__")),
)


# --- the checker ----------------------------------------------------------------------------------------


def find_modules(roots: dict[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Dotted name → (source file, is a package) for every ``.py`` file under each root."""
    found = {}
    for package, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join([package, *(parts[:-1] if is_package else parts)])] = (path, is_package)
    return found


def _facade(tree: ast.Module) -> dict[str, str]:
    """A package's ``_API = {"name": "module", ...}`` table of names it re-exports on first use."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_API" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def read_imports(modules: dict[str, tuple[Path, bool]]) -> dict[str, dict[str, int]]:
    """Module → {imported module of ``modules``: first line}: every run-time import, at module level or inside a
    function, resolved (relative imports, ``from package import module``, names a package re-exports)."""
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, (path, _) in modules.items()}
    facades = {name: _facade(trees[name]) for name, (_, is_package) in modules.items() if is_package}
    graph = {}
    for name, (_, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        found = _imported(trees[name], package, set(modules), facades)
        graph[name] = {target: line for target, line in found.items() if target != name}
    return graph


def _imported(tree: ast.AST, package: str, modules: set[str], facades: dict[str, dict[str, str]]) -> dict[str, int]:
    edges: dict[str, int] = {}
    pending = list(ast.iter_child_nodes(tree))
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)  # the ``else:`` of ``if TYPE_CHECKING:`` runs
            continue
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")  # the deepest module of the dotted name that exists
                targets.append(next((".".join(parts[:n]) for n in range(len(parts), 0, -1)
                                     if ".".join(parts[:n]) in modules), None))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    targets.append(f"{source}.{alias.name}")
                elif alias.name in facades.get(source, {}):
                    targets.append(facades[source][alias.name])
                else:
                    targets.append(source)
        for target in targets:
            if target in modules:
                edges.setdefault(target, node.lineno)
        pending.extend(ast.iter_child_nodes(node))
    return edges


def layer_of(module: str, layers=LAYERS) -> int | None:
    """The index of the layer whose longest name covers ``module``, or None. A top-level package's name (no dot)
    covers only the package itself."""
    best: tuple[int, int] | None = None
    for index, (_, names) in enumerate(layers):
        for prefix in names:
            if module == prefix or ("." in prefix and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return best[1] if best else None


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a path back to its start) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        members, start = set(component), component[0]
        paths = {start: [start]}
        queue = [start]
        while queue:  # the shortest way from start back to itself, inside the component
            node = queue.pop(0)
            for target in sorted(graph[node]):
                if target == start:
                    cycles.append(paths[node] + [start])
                    queue = []
                    break
                if target in members and target not in paths:
                    paths[target] = paths[node] + [target]
                    queue.append(target)
    return cycles


def check_layers(roots: dict[str, Path], layers=LAYERS) -> list[str]:
    """Every problem, one line each naming both modules: a module without a layer, an import of a higher layer,
    a circle of run-time imports."""
    modules = find_modules(roots)
    graph = read_imports(modules)
    problems = [f"{name} has no layer: add it to LAYERS (tests/test_layers.py) and docs/architecture.md"
                for name in sorted(modules) if layer_of(name, layers) is None]
    for name in sorted(graph):
        for target, line in sorted(graph[name].items()):
            mine, theirs = layer_of(name, layers), layer_of(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{name} (layer {layers[mine][0]}) imports {target} (layer {layers[theirs][0]}, "
                                f"higher) at {modules[name][0].name}:{line}")
    for cycle in _cycles(graph):
        problems.append("import circle: " + " -> ".join(cycle))
    return problems


# --- the package ----------------------------------------------------------------------------------------


def test_every_module_imports_only_downward_and_without_circles():
    modules = find_modules(ROOTS)
    assert {"exporter", "exporter.artifact.manifest", "exporter.validators.parity", "exporter.cli.run"} <= set(modules)
    assert check_layers(ROOTS) == []


def test_the_circles_the_issue_named_are_gone():
    graph = read_imports(find_modules(ROOTS))
    assert "exporter.export.source" not in graph["exporter.artifact.model_folder"]  # package_resource moved down
    assert "exporter.artifact.manifest" not in graph["exporter.artifact.integrity"]  # file_entry moved up
    assert "exporter.publish.push" not in graph["exporter.publish.card"]  # PublishDefaults: publish.defaults
    assert not [(name, target) for name, edges in graph.items() if name.startswith("exporter.artifact")
                for target in edges if target.startswith(("exporter.runtime", "exporter.export"))]


def test_the_architecture_page_shows_the_same_layers():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(LAYERS), rows
    for row, (name, members) in zip(rows, LAYERS, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == name, (cells[0], name)
        named = {module for module in re.findall(r"`([a-z_.]+)`", cells[1]) if module.startswith("exporter")}
        assert named == set(members), (name, cells[1])


# --- the checker fails where it must --------------------------------------------------------------------


def _copy_of_the_package(tmp_path: Path) -> dict[str, Path]:
    roots = {}
    for package, root in ROOTS.items():
        destination = tmp_path / root.name
        shutil.copytree(root, destination, ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.jsonl", "data",
                                                                         "templates"))
        roots[package] = destination
    return roots


def test_an_added_upward_import_fails_naming_both_modules(tmp_path):
    roots = _copy_of_the_package(tmp_path)
    assert check_layers(roots) == []
    manifest = roots["exporter"] / "artifact" / "manifest.py"
    manifest.write_text(manifest.read_text(encoding="utf-8")
                        + "\n\ndef _epilog():\n    from exporter.cli.common import EPILOG\n\n    return EPILOG\n",
                        encoding="utf-8")
    problems = check_layers(roots)
    assert len(problems) == 1, problems
    assert "exporter.artifact.manifest (layer artifact) imports exporter.cli.common (layer cli" in problems[0]


def test_an_added_circle_fails_naming_its_modules(tmp_path):
    roots = _copy_of_the_package(tmp_path)
    integrity = roots["exporter"] / "artifact" / "integrity.py"
    extra = "\n\nfrom exporter.artifact.manifest import Manifest\n"
    integrity.write_text(integrity.read_text(encoding="utf-8") + extra, encoding="utf-8")
    problems = check_layers(roots)
    assert problems == ["import circle: exporter.artifact.integrity -> exporter.artifact.manifest -> "
                        "exporter.artifact.integrity"], problems


def test_type_checking_imports_do_not_count_lazy_ones_and_reexported_names_do(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('_API = {"build": "pkg.high"}\n')
    (package / "high.py").write_text("def build():\n    pass\n")
    (package / "low.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import high\n")
    layers = (("low", ("pkg", "pkg.low")), ("high", ("pkg.high",)))
    assert check_layers({"pkg": package}, layers) == []
    (package / "low.py").write_text("def run():\n    from pkg import build\n\n    return build()\n")
    assert check_layers({"pkg": package}, layers) == ["pkg.low (layer low) imports pkg.high (layer high, higher) "
                                                      "at low.py:2"]
    (package / "low.py").write_text("import pkg.high.missing\n")  # the deepest module that exists: pkg.high
    assert check_layers({"pkg": package}, layers) == ["pkg.low (layer low) imports pkg.high (layer high, higher) "
                                                      "at low.py:1"]
    (package / "other.py").write_text("")
    assert check_layers({"pkg": package}, layers)[0].startswith("pkg.other has no layer")
