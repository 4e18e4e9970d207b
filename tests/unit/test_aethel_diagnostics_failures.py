"""A crashing checker or parser never takes the document's diagnostics away: the failure
is logged, the syntax diagnostics stay, and one warning says what failed (issue 14)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types
from pygls.workspace import Workspace

from aethel_lsp.lsp.features import aethel_diagnostics
from aethel_lsp.lsp.features.aethel_diagnostics import AethelDiagnostics
from aethel_lsp.lsp.server import create_server

BROKEN = "intent pay(from: Account) {\n  guard { from.balance >= }\n}\n"


def _diagnostics_for(text: str) -> tuple[AethelDiagnostics, list[Any]]:
    server = create_server()
    server.protocol._workspace = Workspace(None)  # what `initialize` would create
    uri = "file:///tmp/My%20Project/a.ae"
    server.workspace.put_text_document(
        types.TextDocumentItem(uri=uri, language_id="aethel", version=1, text=text)
    )
    published: list[Any] = []
    server.text_document_publish_diagnostics = published.append  # type: ignore[method-assign]
    server.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    diagnostics = AethelDiagnostics(server)
    diagnostics.schedule(uri)
    return diagnostics, published


async def test_a_crashing_checker_keeps_the_syntax_diagnostics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    monkeypatch.setattr(aethel_diagnostics, "CHECK_DELAY_S", 0.0)
    monkeypatch.setattr(AethelDiagnostics, "run_check", staticmethod(explode))
    diagnostics, published = _diagnostics_for(BROKEN)
    for _ in range(500):
        if len(published) >= 2:
            break
        await asyncio.sleep(0.01)
    syntax, final = published[0].diagnostics, published[-1].diagnostics
    assert syntax, "the parser found the syntax error"
    assert final[: len(syntax)] == syntax  # still there
    assert final[-1].code == "checker-failed" and "ValueError" in final[-1].message
    assert not diagnostics.pending
