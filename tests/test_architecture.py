"""The rooms of the house: imports point bot → commands → storage, never back, and never in a
circle; no module grows past a size a newcomer can read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

ROOMS = ("bot", "commands", "storage")
FORBIDDEN = {
    "storage": {"bot", "commands", "slack_bolt", "slack_sdk", "aiohttp"},
    "commands": {"bot", "slack_bolt", "aiohttp", "slack_sdk.web", "slack_sdk.socket_mode"},
}
# Migrations are generated, one per schema change; they are read as a list, not as a module.
LONGEST = 400


def imports_of(path: Path) -> set[str]:
    """Every absolute import of a file, wherever it stands (function bodies and TYPE_CHECKING
    blocks too: an import hidden there still ties the two modules)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for room in ROOMS for p in sorted((ROOT / room).rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (`from bot.http import app` imports bot.http.app;
    importing a package's module also runs the package's __init__)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path):
            if imported in modules:
                targets.add(imported)
        targets.discard(name)
        graph[name] = targets
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_point_one_way(room: str) -> None:
    files = sorted((ROOT / room).rglob("*.py"))
    assert files, f"no python files under {room}/"
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in imports_of(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[room])
    ]
    assert offenders == []


def test_no_import_circle_anywhere() -> None:
    graph = import_graph()
    assert len(graph) > 50, "the graph should cover every module of the three rooms"
    assert find_circle(graph) is None


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_circle(graph) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_longer_than_a_newcomer_reads() -> None:
    long = {
        name: lines
        for name, path in project_modules().items()
        if ".migrations." not in name and (lines := len(path.read_text().splitlines())) > LONGEST
    }
    assert long == {}
