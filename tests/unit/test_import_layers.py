"""The layering rules of STYLE.md, checked by walking every module's imports (ast only:
nothing is imported, so the test is fast and cannot be fooled by lazy imports)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "aethel_lsp"
LSP = ("pygls", "lsprotocol")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def _uses(names: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in roots)


def test_pure_layers_never_import_lsp() -> None:
    for sub in ("engine", "language", "prompts", "config"):
        for path in _modules(sub):
            assert not _uses(_imports(path), LSP), f"{path} imports pygls/lsprotocol"


def test_httpx_only_in_the_engine() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "engine" in path.relative_to(PACKAGE).parts:
            continue
        assert not _uses(_imports(path), ("httpx",)), f"{path} imports httpx"


def test_features_never_import_each_other() -> None:
    for path in _modules("features"):
        others = [
            n
            for n in _imports(path)
            if n.startswith("aethel_lsp.features.") and n.split(".")[2] != path.stem
        ]
        assert not others, f"{path} imports another feature: {others}"


def test_lower_layers_never_import_the_server_or_features() -> None:
    for sub in ("engine", "language", "prompts", "config"):
        for path in _modules(sub):
            bad = [
                n
                for n in _imports(path)
                if n.startswith(("aethel_lsp.server", "aethel_lsp.features", "aethel_lsp.cli"))
            ]
            assert not bad, f"{path} imports {bad}"
