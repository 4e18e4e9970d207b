"""`aethel/status` names the model that really answers when none is configured (status
bars showed "no model" after every auto-picked generation, issue 16)."""

from __future__ import annotations

from pathlib import Path

from aethel_lsp import protocol
from tests.e2e.lsp_harness import start_server
from tests.fakes.ollama import FakeOllama, Reply


async def test_status_shows_the_auto_picked_model(tmp_path: Path) -> None:
    fake = FakeOllama()
    fake.start()
    lsp = await start_server(tmp_path, fake, editor_settings={"engine": "ollama"})
    try:
        assert lsp.statuses[-1]["model"] == ""  # nothing configured, nothing used yet
        fake.enqueue(Reply(text="It adds."))
        uri = lsp.open("a.py", "def add(a, b):\n    return a + b\n")
        await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": {
            "start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 16}}})
        used = fake.chat_requests()[-1]["model"]
        await lsp.wait_for(lambda: lsp.statuses[-1]["model"] == used)
        assert used == "qwen2.5-coder:1.5b"  # recommend's coding pick among the fake's
    finally:
        await lsp.stop()
