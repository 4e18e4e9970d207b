"""No engine at all (`engine = "auto"`, no Ollama, no usable embedded model): the editor
sees "offline" with the fix, every request gets a one-sentence error, and the log has no
traceback for this expected condition."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import start_server


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_auto_with_nothing_to_serve_is_offline_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_model = tmp_path / "no-such-model.gguf"
    lsp = await start_server(
        tmp_path, None, host=f"http://127.0.0.1:{closed_port()}",
        user_config=f'engine = "auto"\n[embedded]\nmodelPath = "{missing_model}"\n',
        extra_env={"OLLAMA_HOST": f"http://127.0.0.1:{closed_port()}"},
    )
    try:
        uri = lsp.open("a.py", "def f():\n    ret")
        await lsp.wait_for(lambda: lsp.statuses[-1]["state"] == "offline")
        with pytest.raises(JsonRpcException) as failed:
            await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": {
                "start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 7}}})
        assert "ollama serve" in str(failed.value)
        items = await lsp.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=1, character=7),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        assert not (items.items if isinstance(items, types.InlineCompletionList) else items)
        assert lsp.statuses[-1]["state"] == "offline"
    finally:
        await lsp.stop()
    logged = capsys.readouterr().err
    assert "Traceback" not in logged and "No engine is available" in logged
