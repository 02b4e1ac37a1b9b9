"""Import structure of the package: no cycles between packages, layers inside the actor runtime.

Every import counts, wherever it is written: at module level, inside a function (a
function-local import hides a cycle from Python, not from the design) and under
``if TYPE_CHECKING:`` (a type-only import still couples the two packages).
"""

from __future__ import annotations

import ast
import enum
import functools
from collections.abc import Iterator
from pathlib import Path

import attrs

import workflow_orchestrator

ROOT = Path(workflow_orchestrator.__file__).parent
TOP = "workflow_orchestrator"


class Where(enum.Enum):
    """Where an import statement is written."""

    MODULE = "module"
    FUNCTION = "function"
    TYPE_CHECKING = "TYPE_CHECKING"


@attrs.frozen(kw_only=True)
class Import:
    """One imported module of ours, as written in ``source`` (a dotted module name)."""

    source: str
    target: str
    line: int
    where: Where


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(module: str) -> bool:
    return (ROOT.parent / module.replace(".", "/") / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, source: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        package = source if is_package(source) else source.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    yield base
    for alias in node.names:
        # ``from workflow_orchestrator import actors`` imports the package ``actors``.
        candidate = f"{base}.{alias.name}"
        if is_package(candidate) or (ROOT.parent / f"{candidate.replace('.', '/')}.py").is_file():
            yield candidate


def imports_in(path: Path, source: str | None = None) -> list[Import]:
    """Every import of a ``workflow_orchestrator`` module in the file at ``path``, whose
    module name is ``source`` (default: derived from its place in the package)."""
    source = source or module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, where: Where) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(node, source):
                if target == TOP or target.startswith(TOP + "."):
                    found.append(
                        Import(source=source, target=target, line=node.lineno, where=where)
                    )
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, Where.TYPE_CHECKING)
            for child in node.orelse:
                visit(child, where)
            return
        inner = (
            Where.FUNCTION
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            and where is Where.MODULE
            else where
        )
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), Where.MODULE)
    return found


@functools.cache
def all_imports() -> list[Import]:
    return [found for path in sorted(ROOT.rglob("*.py")) for found in imports_in(path)]


def package_of(module: str) -> str:
    """The first segment below ``workflow_orchestrator`` (``cli`` for ``cli.py``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Package -> the other packages it imports (any import, anywhere)."""
    graph: dict[str, set[str]] = {}
    for found in imports:
        source, target = package_of(found.source), package_of(found.target)
        graph.setdefault(source, set())
        graph.setdefault(target, set())
        if source != target and target != TOP:
            graph[source].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def describe(imports: list[Import], packages: set[str]) -> list[str]:
    """The imports between ``packages``, as ``file:line`` lines for a failure message."""
    return [
        f"{found.source}:{found.line} imports {found.target} ({found.where.value})"
        for found in imports
        if package_of(found.source) in packages
        and package_of(found.target) in packages
        and package_of(found.source) != package_of(found.target)
    ]


# -- the helpers themselves --------------------------------------------------------------


def test_imports_are_found_wherever_they_are_written(tmp_path: Path) -> None:
    """Module-level, function-local, TYPE_CHECKING and relative imports are all collected."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "import trio\n"
        "from . import _cell\n"
        "from ._record import ChildRecord\n"
        "if TYPE_CHECKING:\n"
        "    from workflow_orchestrator.storage import Database\n"
        "else:\n"
        "    import workflow_orchestrator.errors\n"
        "async def f():\n"
        "    from workflow_orchestrator import config\n",
        encoding="utf-8",
    )
    found = {
        (i.target, i.where, i.line)
        for i in imports_in(sample, "workflow_orchestrator.actors.sample")
    }
    assert found == {
        ("workflow_orchestrator.actors", Where.MODULE, 3),
        ("workflow_orchestrator.actors._cell", Where.MODULE, 3),
        ("workflow_orchestrator.actors._record", Where.MODULE, 4),
        ("workflow_orchestrator.storage", Where.TYPE_CHECKING, 6),
        ("workflow_orchestrator.errors", Where.MODULE, 8),
        ("workflow_orchestrator", Where.FUNCTION, 10),
        ("workflow_orchestrator.config", Where.FUNCTION, 10),
    }


def test_cycles_finds_strongly_connected_packages() -> None:
    """A two-package loop and a longer one are reported; a one-way chain is not."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# -- the rules ----------------------------------------------------------------------------


def test_actors_and_supervision_have_no_cycle() -> None:
    """Neither actors nor supervision is part of an import cycle between packages."""
    imports = all_imports()
    graph = package_graph(imports)
    involved = [
        component for component in cycles(graph) if {"actors", "supervision"} & set(component)
    ]
    assert involved == [], "\n".join(
        describe(imports, {member for component in involved for member in component})
    )


def test_no_package_is_in_an_import_cycle() -> None:
    """The whole package graph is acyclic (the actor runtime's rule, applied to everyone)."""
    imports = all_imports()
    found = cycles(package_graph(imports))
    assert found == [], "\n".join(
        describe(imports, {member for component in found for member in component})
    )


def test_actors_never_imports_supervision() -> None:
    """supervision is the public namespace over actors' implementation; never the reverse."""
    offending = [
        found
        for found in all_imports()
        if package_of(found.source) == "actors" and package_of(found.target) == "supervision"
    ]
    assert offending == []


def test_actor_runtime_has_no_function_local_imports() -> None:
    """The actor runtime imports at module level only (a local import would hide a cycle)."""
    local = [
        f"{found.source}:{found.line} imports {found.target}"
        for found in all_imports()
        if package_of(found.source) in {"actors", "supervision"} and found.where is Where.FUNCTION
    ]
    assert local == []


ACTOR_LAYERS = [
    {"_lifecycle", "_errors", "_messages", "_spec", "_metrics", "_snapshot"},
    {"_parent", "_record", "_ref", "_context", "_cell", "_actor"},
    {"_passivation", "_children", "_supervisor"},
    {"_system", "testing", "__init__"},
]


def _layer(module: str) -> int:
    name = module.rpartition(".")[2] if module != f"{TOP}.actors" else "__init__"
    for number, members in enumerate(ACTOR_LAYERS):
        if name in members:
            return number
    raise AssertionError(f"module {module} is in no layer of ACTOR_LAYERS; add it to one")


def test_actor_runtime_layers_point_down() -> None:
    """Inside actors, run-time imports never point to a higher layer (core -> supervision ->
    system); type-only imports may, since they do not run."""
    upward = []
    for found in all_imports():
        if package_of(found.source) != "actors" or package_of(found.target) != "actors":
            continue
        if found.target == f"{TOP}.actors" or found.where is Where.TYPE_CHECKING:
            continue
        if _layer(found.target) > _layer(found.source):
            upward.append(f"{found.source}:{found.line} imports {found.target}")
    assert upward == []


def test_actor_core_knows_its_supervisor_only_as_parent() -> None:
    """The actor's own modules (cell, context, ref, behaviour) name no supervision module,
    not even for types: an actor reaches its supervisor only through ``Parent``."""
    actor_core = {"_cell", "_context", "_ref", "_actor", "_messages", "_parent"}
    named = [
        f"{found.source}:{found.line} imports {found.target}"
        for found in all_imports()
        if package_of(found.source) == "actors"
        and found.source.rpartition(".")[2] in actor_core
        and found.target.rpartition(".")[2] in {"_children", "_supervisor", "_passivation"}
    ]
    assert named == []
