"""The package's shape: no import cycles, nothing imported from the repository's bench/, no
test-only code, and stages that talk through `salesopt.ops`, never through each other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "salesopt"
# the stage modules `salesopt.pipeline.STAGES` runs
STAGE_MODULES = {
    "salesopt.ingest", "salesopt.silver", "salesopt.gold", "salesopt.segment.stage",
    "salesopt.recommend.stage", "salesopt.forecast.stage", "salesopt.optimize.stage",
    "salesopt.strategy.stage", "salesopt.monitor",
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every module this file imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from salesopt import features` imports the module salesopt.features
            found.update(
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known
            )
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) & known - {name} for name, path in modules.items()}


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


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package() -> None:
    graph = _graph()
    assert "salesopt.pipeline" in graph and "salesopt.ops" in graph["salesopt.pipeline"]
    assert _cycles(graph) == []


def test_the_package_never_imports_the_repositorys_bench() -> None:
    offenders = {
        name
        for name, path in _modules().items()
        if any(m == "bench" or m.startswith("bench.") for m in _imports(path, set()))
    }
    assert offenders == set()


def test_stages_do_not_import_each_other() -> None:
    graph = _graph()
    for stage in STAGE_MODULES:
        assert graph[stage] & STAGE_MODULES == set(), stage
    assert graph["salesopt.ops"] & STAGE_MODULES == set()


def test_no_test_only_code_in_the_package() -> None:
    marked = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "test-only" in p.read_text() or "SALESOPT_TEST" in p.read_text()
    ]
    assert marked == []
