"""Locks the cold-start discipline: serving LSP does not import what `initialize` does not need.

z3 (the Aethel checker), httpx (the engine backends) and rich (CLI output) are imported
at their first real use; the language server must answer `initialize` without them.
Each check runs in a fresh interpreter, because this test process has them loaded.
Functional, not a timing: the benchmark (`bench/`) measures the cold start itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("z3", "httpx", "rich")
TRANSFER = """intent transfer(from: Account, to: Account, amount: Balance) {
    guard {
        amount > 0;
        from_balance >= amount;
        old_from_balance == from_balance;
        old_to_balance == to_balance;
    }
    solve {
        priority: security;
        target: ledger;
    }
    verify {
        from_balance == old_from_balance - amount;
        to_balance == old_to_balance + amount;
    }
}
"""


def _loaded_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; which of HEAVY are in `sys.modules` then."""
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    probe = f"import json, sys\n{code}\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_creating_the_server_imports_no_heavy_module() -> None:
    code = "from aethel_lsp.lsp.server import create_server\ncreate_server()"
    assert _loaded_after(code) == []


def test_the_cli_decides_to_serve_without_heavy_modules() -> None:
    """`aethel-lsp` / `python -m aethel_lsp`: everything up to `start_io`, nothing heavy."""
    code = (
        "from aethel_lsp.cli import main as cli\n"
        "from aethel_lsp.lsp.session import AethelServer\n"
        "AethelServer.start_io = lambda self, *a, **k: None  # stop where serving begins\n"
        "assert cli.main([]) == 0"
    )
    assert _loaded_after(code) == []


def test_engine_names_still_resolve_lazily() -> None:
    """The engine package resolves its public names on demand (and then they are real)."""
    code = (
        "import aethel_lsp.engine as engine\n"
        "assert 'httpx' not in sys.modules\n"
        "assert engine.OllamaEngine.__module__ == 'aethel_lsp.engine.ollama'"
    )
    assert "httpx" in _loaded_after(code)  # (httpx itself imports rich, for its own CLI)


def test_the_checker_imports_z3_at_its_first_check() -> None:
    code = (
        "from aethel_lsp.language.checker import analyze\n"
        "assert 'z3' not in sys.modules\n"
        f"analyze({TRANSFER!r})"
    )
    assert _loaded_after(code) == ["z3"]



def test_the_distiller_and_the_provider_router_load_at_their_first_use() -> None:
    """Only `aethel.distillContract` and `aethel.modelStatus` need them."""
    late = ("aethel_lsp.distill.run", "aethel_lsp.engine.providers.router")
    code = (
        "import json, sys\nfrom aethel_lsp.lsp.server import create_server\ncreate_server()\n"
        f"print(json.dumps([m for m in {late!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
