"""barenet's modules import each other without cycles, counting imports inside functions.

A cycle hidden in a function still ties two modules together: neither can be read,
tested or replaced without the other. The graph is read from the source with ``ast``
(nothing is imported), from every ``import barenet...`` and ``from barenet... import``
statement, at module level or in a function; imports under ``if TYPE_CHECKING:`` never
run and are left out. The modules that wrap optional third-party packages (ONNX,
safetensors, PyTorch, the web server) are imported inside the functions that need them,
and those lazy edges are left out too: they are plug-ins, loaded on demand.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Modules that need an optional package; a function may import them lazily.
PLUGINS = {
    "barenet.export",
    "barenet.interop",
    "barenet.safetensors_io",
    "barenet.web.app",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "barenet").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _edges(module: str, path: Path, modules: dict[str, Path]) -> set[tuple[str, bool]]:
    """``(imported module, lazily)`` for every barenet import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    lazy: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy.update(id(n) for n in ast.walk(node))
    found: set[tuple[str, bool]] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from barenet import io`` imports the module barenet.io
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names
            ]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found.update((n, id(node) in lazy) for n in names if n in modules and n != module)
    return found


@functools.cache
def import_graph() -> dict[str, frozenset[str]]:
    """Each barenet module -> the barenet modules it imports (plug-ins loaded lazily aside)."""
    modules = _modules()
    graph: dict[str, frozenset[str]] = {}
    for module, path in modules.items():
        edges = _edges(module, path, modules)
        graph[module] = frozenset(n for n, lazily in edges if not (lazily and n in PLUGINS))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_finder_finds_cycles_through_lazy_imports_and_not_elsewhere():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    source = SRC / "barenet" / "io.py"
    edges = _edges("barenet.io", source, _modules())
    assert ("barenet.model", False) in edges  # io builds a Sequential
    assert ("barenet.safetensors_io", True) in edges  # a plug-in, loaded when asked for


def test_no_import_cycles():
    graph = {module: set(imported) for module, imported in import_graph().items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
