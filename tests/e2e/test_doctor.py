"""End to end: `aethel.doctor`, `aethel.inspectLast` and `aethel.recommendModels` through
the real server process (pytest-lsp over stdio) against the fake Ollama."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp.protocol import CMD_DOCTOR, CMD_INSPECT_LAST, CMD_RECOMMEND_MODELS
from tests.e2e.lsp_harness import full_capabilities, start_server
from tests.fakes.ollama import FakeOllama, Reply
from tests.fakes.ollama_models import CHAT, CODER, THINKING

SECRET = "sk-proj-QWERTYUIOPASDFGHJKLZXCVB"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def titles(result: dict[str, Any], severity: str) -> list[str]:
    return [f["title"] for f in result["findings"] if f["severity"] == severity]


async def test_doctor_shows_a_markdown_report_and_returns_findings(tmp_path: Path) -> None:
    fake = FakeOllama([CODER, THINKING])
    fake.start()
    settings = {"model": CODER.name, "completion": {"model": THINKING.name}, "keepAlive": 0}
    lsp = await start_server(tmp_path, fake, editor_settings=settings)
    try:
        result = await lsp.command(CMD_DOCTOR)
        assert result["ok"] is True  # warnings only
        warnings = titles(result, "warning")
        assert any("is a thinking model, used for completion" in t for t in warnings)
        assert any("keepAlive = 0" in t for t in warnings)
        keep_alive = next(f for f in result["findings"] if "keepAlive = 0" in f["title"])
        assert "the editor settings (aethel.keepAlive)" in keep_alive["fix"]
        assert {p["model"] for p in result["probes"]} == {CODER.name, THINKING.name}
        assert result["document"] and lsp.client.shown_documents
        shown = Path(lsp.client.shown_documents[-1].uri.removeprefix("file://"))
        text = shown.read_text(encoding="utf-8")  # noqa: ASYNC240 - a small local file
        assert text.startswith("# aethel-lsp doctor") and "**Fix:**" in text
        assert result["settings"]["keepAlive"] == {"value": "0", "source": "editor"}
        # Probes are measurements, not the user's generations.
        throughput = await lsp.command("aethel.throughput")
        assert throughput["models"] == {}
    finally:
        await lsp.stop()


async def test_doctor_offline_without_show_document_sends_a_message(tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    lsp = await start_server(
        tmp_path, None, editor_settings={"host": host, "engine": "ollama"},
        capabilities=full_capabilities(show_document=False),
    )
    try:
        result = await lsp.command(CMD_DOCTOR, {"probe": False})
        assert result["ok"] is False and result["document"] is None
        error = next(f for f in result["findings"] if f["severity"] == "error")
        assert error["title"] == f"Nothing answers at {host}"
        assert "ollama serve" in error["fix"]
        assert "the editor settings (aethel.host)" in error["fix"]
        message = await lsp.wait_for(lambda: next(
            (m for m in lsp.client.messages if m.message.startswith("aethel-lsp doctor:")),
            None))
        assert message.type == types.MessageType.Error
        assert f"ERROR: Nothing answers at {host}. Fix: Start Ollama" in message.message
    finally:
        await lsp.stop()


async def test_inspector_records_an_inline_completion_and_redacts_secrets(
    tmp_path: Path,
) -> None:
    fake = FakeOllama([CODER])
    fake.start()
    fake.set_reply(CODER.name, Reply(text="return a + b\n"))
    settings = {"model": CODER.name, "completion": {"model": CODER.name},
                "inspector": {"enabled": True, "size": 5}}
    lsp = await start_server(tmp_path, fake, editor_settings=settings,
                             extra_env={"OPENAI_API_KEY": SECRET})
    try:
        text = f'KEY = "{SECRET}"\n\ndef add(a, b):\n    \n\nprint(add(1, 2))\n'
        uri = lsp.open("calc.py", text)
        answer = await lsp.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=3, character=4),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        assert isinstance(answer, types.InlineCompletionList) and answer.items
        shown = str(answer.items[0].insert_text)

        async def recorded() -> dict[str, Any]:
            result: dict[str, Any] = await lsp.command(CMD_INSPECT_LAST, {"count": 3})
            return result

        result = await recorded()
        for _ in range(50):
            if result["records"] and result["records"][0].get("result") is not None:
                break
            result = await recorded()
        assert result["enabled"] is True and result["size"] == 5
        record = result["records"][0]
        sent = fake.generate_requests()[-1]
        assert record["kind"] == "inlineCompletion" and record["fimMode"] == "native"
        assert record["request"]["suffix"] == sent["suffix"]
        assert record["request"]["options"] == sent["options"]
        assert record["response"] == "return a + b\n"
        assert record["result"] == shown and record["resultSource"] == "fresh"
        assert record["metrics"]["tokensGenerated"] is not None
        assert SECRET in sent["prompt"]  # the engine got the document as it is...
        assert SECRET not in json.dumps(result)  # ...the inspector never stores the key
        assert "[REDACTED]" in record["request"]["prompt"]
    finally:
        await lsp.stop()


async def test_inspect_last_when_off_and_bad_arguments(tmp_path: Path) -> None:
    fake = FakeOllama([CODER])
    fake.start()
    lsp = await start_server(tmp_path, fake, editor_settings={"model": CODER.name})
    try:
        await lsp.command("aethel.explainSelection", {
            "uri": lsp.open("a.py", "x = 1\n"),
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 5}},
        })
        result = await lsp.command(CMD_INSPECT_LAST)
        assert result["enabled"] is False and result["records"] == []
        with pytest.raises(JsonRpcException, match="count"):
            await lsp.command(CMD_INSPECT_LAST, {"count": "all"})
    finally:
        await lsp.stop()


async def test_recommend_models_follows_measured_speeds(tmp_path: Path) -> None:
    fake = FakeOllama([CODER, CHAT])
    fake.start()
    fake.set_reply(CODER.name, Reply(tokens=["a "] * 8, eval_count=8,
                                     eval_duration_ns=1_600_000_000))  # 5 tok/s: too slow
    fake.set_reply(CHAT.name, Reply(tokens=["b "] * 8, eval_count=8,
                                    eval_duration_ns=80_000_000))  # 100 tok/s
    lsp = await start_server(tmp_path, fake)
    try:
        result = await lsp.command(CMD_RECOMMEND_MODELS)
        rates = {m["model"]: m["tokensPerSecond"] for m in result["measurements"]}
        assert rates == {CODER.name: 5.0, CHAT.name: 100.0}
        recs = {r["useCase"]: r for r in result["recommendations"]}
        assert recs["inlineCompletion"]["model"] == CHAT.name
        assert recs["inlineCompletion"]["pull"] == "qwen2.5-coder:3b"
        assert lsp.progress_for_title("Measuring the installed models")
    finally:
        await lsp.stop()
