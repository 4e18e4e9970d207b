"""Real editors' capabilities (as bundled with pytest-lsp): the server speaks to each
within the spec (warnings are errors in this suite) and every action works."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities

from aethel_lsp import protocol
from tests.e2e.lsp_harness import start_server
from tests.fakes.ollama import FakeOllama, Reply

PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}


@pytest.mark.parametrize(
    "editor", ["visual-studio-code@v1.65.2", "neovim@v0.11.0", "emacs@v29.1", "neovim@v0.6.1"]
)
async def test_editor_capabilities(tmp_path: Path, editor: str) -> None:
    fake = FakeOllama(token_delay=0.002)
    fake.start()
    lsp = await start_server(
        tmp_path,
        fake,
        capabilities=client_capabilities(editor),
        editor_settings={"engine": "ollama", "model": "llama3.2"},
    )
    try:
        uri = lsp.open("a.py", PY)
        actions = await lsp.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=types.Position(0, 0), end=types.Position(2, 0)),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert actions and any(protocol.TITLE_EXPLAIN in a.title for a in actions)
        fake.enqueue(Reply(text="Adds."), Reply(text="```python\ndef add(a, b): return a+b\n```"))
        result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
        assert result["text"] == "Adds."
        result = await lsp.command(protocol.CMD_IMPROVE_SELECTION, {"uri": uri, "range": SEL})
        assert result["text"] == "def add(a, b): return a+b\n"
        status = await lsp.command(protocol.CMD_MODEL_STATUS)
        assert status["available"] is True
    finally:
        await lsp.stop()
