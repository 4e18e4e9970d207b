"""The layering rules of docs/architecture.md, checked by walking every module's imports.

`ast` only: nothing is imported, so the test is fast and sees lazy (function-level) and
`TYPE_CHECKING` imports too. The rooms:

    faces     cli/ (command line)   lsp/ (language server)
    services  completion/  doctor/  prompts/  engine/  config/  language/
    base      protocol.py  paths.py  hosts.py
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "aethel_lsp"
LSP = ("pygls", "lsprotocol")
FACES = ("cli", "lsp")
SERVICES = ("completion", "doctor", "distill", "engine", "prompts", "config", "language")
BASE = ("protocol", "paths", "hosts")
# cli/ may start the server, through this one module and nothing else of lsp/
CLI_STARTS_THE_SERVER = "aethel_lsp.lsp.server"


@cache
def _module_paths() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its `__init__`)."""
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported_names(path: Path) -> Iterator[str]:
    """Every absolute name `path` imports (`from a import b` yields `a` and `a.b`)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _to_module(name: str) -> str | None:
    """The package module a dotted import name lands in (None outside the package)."""
    modules = _module_paths()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def _module_imports(module: str) -> frozenset[str]:
    """The package modules that `module` imports."""
    targets = {_to_module(n) for n in _imported_names(_module_paths()[module])}
    return frozenset(t for t in targets if t and t != module)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "aethel_lsp"


def _modules_in(*rooms: str) -> list[str]:
    return sorted(m for m in _module_paths() if _room(m) in rooms)


def _third_party(module: str, roots: tuple[str, ...]) -> list[str]:
    path = _module_paths()[module]
    return sorted({n for n in _imported_names(path) if n.split(".")[0] in roots})


def test_every_module_lives_in_a_room() -> None:
    """Nothing new lands loose at the package root: it goes into the room it belongs to."""
    loose = [m for m in _module_paths() if _room(m) not in (*FACES, *SERVICES, *BASE)]
    assert sorted(loose) == ["aethel_lsp", "aethel_lsp.__main__"]


def test_services_and_base_never_import_lsp() -> None:
    for module in _modules_in(*SERVICES, *BASE):
        assert not _third_party(module, LSP), f"{module} imports pygls/lsprotocol"


def test_pygls_only_in_lsp() -> None:
    for module in _modules_in(*SERVICES, *BASE, "cli"):
        assert not _third_party(module, LSP), f"{module} imports pygls/lsprotocol"


def test_httpx_only_in_the_engine() -> None:
    for module in _module_paths():
        if _room(module) != "engine":
            assert not _third_party(module, ("httpx",)), f"{module} imports httpx"


def test_services_never_import_a_face() -> None:
    for module in _modules_in(*SERVICES, *BASE):
        faces = sorted(t for t in _module_imports(module) if _room(t) in FACES)
        assert not faces, f"{module} imports {faces}"


def test_the_faces_never_import_each_other() -> None:
    for module in _modules_in("lsp"):
        cli = sorted(t for t in _module_imports(module) if _room(t) == "cli")
        assert not cli, f"{module} imports {cli}"
    for module in _modules_in("cli"):
        lsp = sorted(t for t in _module_imports(module) if _room(t) == "lsp")
        assert lsp in ([], [CLI_STARTS_THE_SERVER]), f"{module} imports {lsp}"


def test_config_does_not_import_the_engine() -> None:
    for module in _modules_in("config", "language", *BASE):
        engine = sorted(t for t in _module_imports(module) if _room(t) == "engine")
        assert not engine, f"{module} imports {engine}"


def test_language_is_pure() -> None:
    """The Aethel language imports nothing else of the package (and no HTTP, no LSP)."""
    for module in _modules_in("language"):
        others = sorted(t for t in _module_imports(module) if _room(t) != "language")
        assert not others, f"{module} imports {others}"


def test_features_never_import_each_other() -> None:
    prefix = "aethel_lsp.lsp.features."
    for module in _modules_in("lsp"):
        if module.startswith(prefix):
            others = sorted(t for t in _module_imports(module) if t.startswith(prefix))
            assert not others, f"{module} imports another feature: {others}"


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, frozenset()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    graph = {m: _module_imports(m) for m in _module_paths()}
    assert _cycles(graph) == []


def test_no_import_cycle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module in _module_paths():
        targets = {_room(t) for t in _module_imports(module)} - {_room(module)}
        rooms.setdefault(_room(module), set()).update(targets)
    assert _cycles({room: frozenset(t) for room, t in rooms.items()}) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """The rule above could not fail if the finder never found anything."""
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}),
             "d": frozenset({"a"})}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": frozenset({"b"}), "b": frozenset()}) == []
