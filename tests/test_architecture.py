"""The layers import one way: ingest <- warehouse <- server / hotpath <- duckmarket (the CLI).

The test reads every module of the project's packages with ``ast`` (imports inside
functions count too: a lazy import is still a dependency) and fails on an import cycle
between modules or on a module importing a layer above its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: each package's rank; a module may import its own layer and those of lower rank only
LAYERS = {"ingest": 0, "warehouse": 1, "server": 2, "hotpath": 2, "duckmarket": 3}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in LAYERS
        for p in sorted((REPO / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name a ``from X import ...`` refers to."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """{module: project modules it imports}, at any depth of the module's code."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _layer(module: str) -> str:
    return module.split(".", 1)[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_layer_is_a_package_on_disk():
    for package in LAYERS:
        assert (REPO / package / "__init__.py").is_file(), package


def test_the_graph_sees_lazy_imports():
    """A guard on the walker itself: imports inside functions are edges too."""
    graph = import_graph()
    assert "ingest.manager" in graph["duckmarket.cli"]  # imported inside command handlers
    assert "ingest.sources.synthetic" in graph["ingest.sources"]  # inside make()


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{m} -> {t}"
        for m, targets in import_graph().items()
        for t in sorted(targets)
        if LAYERS[_layer(t)] > LAYERS[_layer(m)]
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_layers_of_the_same_rank_do_not_import_each_other():
    sideways = [
        f"{m} -> {t}"
        for m, targets in import_graph().items()
        for t in sorted(targets)
        if _layer(t) != _layer(m) and LAYERS[_layer(t)] == LAYERS[_layer(m)]
    ]
    assert not sideways, "imports between peer layers:\n" + "\n".join(sideways)


def test_no_import_cycles():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder(graph, expected):
    assert _cycles(graph) == expected


def test_the_python_api_beside_the_command():
    import duckmarket
    import hotpath
    import ingest
    import warehouse

    assert duckmarket.DataManager is ingest.DataManager
    assert duckmarket.run_build is warehouse.run_build
    assert duckmarket.bars_as_of is warehouse.bars_as_of
    assert duckmarket.export is hotpath.export
    assert set(duckmarket.__all__) <= set(dir(duckmarket))
    with pytest.raises(AttributeError):
        _ = duckmarket.no_such_name


def test_python_m_duckmarket_lists_every_command():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "duckmarket", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    for command in ("ingest", "status", "verify", "clear", "demo", "build", "export", "serve"):
        assert f"    {command} " in out, command
