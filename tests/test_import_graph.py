"""The package's import graph: no new cycle, imports point down the layers, few lazy imports.

Built from the source with ``ast`` (nothing is imported): every ``import`` of a cachewise module,
at module level or inside a function, is an edge; ``if TYPE_CHECKING:`` blocks are not (they never
run). Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so those are edges too.
docs/architecture.md draws the layers this test holds the code to.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layers, lowest first: a module may import its own layer and the ones below, never above.
#: The first matching prefix decides (so ``monitoring.metrics`` sits at the bottom while the rest
#: of ``monitoring`` is an operations package).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "cachewise.exceptions",
            "cachewise.missing",
            "cachewise.conf",
            "cachewise.keys",
            "cachewise.signals",
            "cachewise.extras",
            "cachewise.caches_url",
            "cachewise.monitoring.metrics",
            "cachewise.models",
            "cachewise.migrations",
        ),
    ),
    # The Lua scripts and the raw-client accessor live in the store package (one place for every
    # script) but sit under the backends: the backend runs its own commands through them.
    ("redis", ("cachewise.store.scripts", "cachewise.store.raw_client")),
    ("backend", ("cachewise.resilience", "cachewise.backends")),
    ("store", ("cachewise.store",)),
    ("compute", ("cachewise.compute", "cachewise.recovery")),
    ("features", ("cachewise.counters", "cachewise.orm")),
    (
        "web",
        (
            "cachewise.pagecache",
            "cachewise.decorators",
            "cachewise.middleware",
            "cachewise.unavailable",
            "cachewise.templatetags",
        ),
    ),
    (
        "operations",
        (
            "cachewise.monitoring",
            "cachewise.checks",
            "cachewise.cli",
            "cachewise.management",
            "cachewise.apps",
            "cachewise.testing",
            "cachewise.embedded",
            "cachewise",  # the package's lazy public face
        ),
    ),
]

#: Import cycles allowed: none. A cycle, even one hidden in a function, fails the suite.
KNOWN_CYCLES: list[frozenset[str]] = []

#: Imports of cachewise modules inside functions: the ceiling only goes down. Each has a comment
#: saying why (a model class, importable only once the app registry is ready; an optional extra).
MAX_FUNCTION_LEVEL_IMPORTS = 9


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    in_function: bool
    line: int


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


MODULES: dict[str, Path] = {_module_name(p)[0]: p for p in (SRC / "cachewise").rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            parts = package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts) + (f".{node.module}" if node.module else "")
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    for name in names:
        found = name
        while found not in MODULES and "." in found:
            found = found.rpartition(".")[0]
        if found in MODULES:
            yield found


def _edges_of(module: str, path: Path) -> Iterator[Edge]:
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> Iterator[Edge]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for statement in child.orelse:
                    yield from visit(statement, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(child, package):
                    if target != module:
                        yield Edge(module, target, in_function, child.lineno)
            yield from visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    yield from visit(ast.parse(path.read_text()), False)
    # Importing a module first runs the __init__ of every package above it.
    parent = package if not is_package else module.rpartition(".")[0]
    while parent:
        if parent in MODULES and parent != "cachewise":
            yield Edge(module, parent, False, 0)
        parent = parent.rpartition(".")[0]


def _inside(module: str, package: str) -> bool:
    return module.startswith(package + ".")


def _graph() -> dict[str, set[str]]:
    """Who imports whom, as the interpreter runs it.

    Importing ``p.x`` first runs ``p/__init__``; when that face re-exports ``p.x`` and its
    siblings, it runs them, but only after ``p.x`` itself asked for it: that is import order, not
    ``p.x`` depending on its siblings. So the implicit edge ``p.x -> p`` stands for what the face
    needs from *outside* ``p``; an explicit ``import p`` (or ``from p import name``) in ``p.x`` is
    an edge to the whole face, children included.
    """
    direct: dict[str, set[str]] = {module: set() for module in MODULES}
    implicit: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for edge in _edges_of(module, path):
            (direct if edge.line else implicit)[module].add(edge.target)
    graph: dict[str, set[str]] = {module: set(targets) for module, targets in direct.items()}
    for module, parents in implicit.items():
        for parent in parents:
            graph[module].update(t for t in direct[parent] | implicit[parent] if not _inside(t, parent))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def _layer(module: str) -> int:
    for number, (_name, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]
    hidden = tmp_path / "hidden.py"
    hidden.write_text("def f():\n    from cachewise.orm import generations\n")
    edges = list(_edges_of("cachewise.recovery", hidden))
    assert [(e.target, e.in_function) for e in edges] == [("cachewise.orm.generations", True)]


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_new_import_cycle() -> None:
    new = [sorted(c) for c in _cycles(_graph()) if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"import cycles (function-level imports count too): {new}"


def test_known_cycles_are_still_there() -> None:
    """When a known cycle is gone, take it off KNOWN_CYCLES so it cannot come back."""
    cycles = _cycles(_graph())
    gone = [sorted(k) for k in KNOWN_CYCLES if not any(k <= c for c in cycles)]
    assert not gone, f"remove from KNOWN_CYCLES: {gone}"


def test_known_upward_imports_are_still_there() -> None:
    """When an upward import is gone, take it off KNOWN_UPWARD so it cannot come back."""
    edges = {(m, e.target) for m, p in MODULES.items() for e in _edges_of(m, p)}
    assert edges >= KNOWN_UPWARD, f"remove from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - edges)}"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, path in MODULES.items():
        for edge in _edges_of(module, path):
            if not edge.line:  # a package's __init__ run on the way down: structure, not a choice
                continue
            if _layer(edge.target) > _layer(module) and (module, edge.target) not in KNOWN_UPWARD:
                upward.append(f"{module}:{edge.line} -> {edge.target}")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(sorted(upward))


def test_few_imports_inside_functions() -> None:
    lazy = sorted({(e.source, e.line) for m, p in MODULES.items() for e in _edges_of(m, p) if e.in_function})
    assert len(lazy) <= MAX_FUNCTION_LEVEL_IMPORTS, (
        f"{len(lazy)} imports of cachewise modules inside functions (ceiling "
        f"{MAX_FUNCTION_LEVEL_IMPORTS}): import at module level, or say why not in a comment"
    )
    silent = [
        f"{module}:{line}"
        for module, line in lazy
        if "#" not in MODULES[module].read_text().splitlines()[line - 1]
    ]
    assert not silent, f"imports inside functions without a comment saying why: {silent}"


#: Upward imports allowed, each for a reason; a new one fails.
KNOWN_UPWARD: set[tuple[str, str]] = {
    # django-redis' cache.lock() is the store's token lock (one lock implementation, one set of
    # scripts): the compatibility layer of the backend borrows it from the layers above.
    ("cachewise.backends.djredis_lock", "cachewise.compute.stampede"),
    ("cachewise.backends.djredis_lock", "cachewise.store.redis"),
}
