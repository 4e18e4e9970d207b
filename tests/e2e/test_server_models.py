"""End to end: model status / list / select / pull, throughput equal to the engine's own
numbers, aethel/status on every state change, and offline then recovery without a
restart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Fault, Reply

pytestmark = pytest.mark.asyncio(loop_scope="module")

PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
STATUS_KEYS = {"state", "engine", "host", "model", "tokensPerSecond", "message",
               "costUsd", "provider"}  # issue 19: the last generation's cost and server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    fake = FakeOllama(token_delay=0.002, pull_steps=4, pull_delay=0.06)
    fake.start()
    harness = await start_server(
        tmp_path_factory.mktemp("models"),
        fake,
        editor_settings={"engine": "ollama", "model": "llama3.2"},
    )
    yield harness
    await harness.stop()


async def test_model_status(lsp: Harness) -> None:
    assert lsp.fake is not None
    status = await lsp.command(protocol.CMD_MODEL_STATUS)
    assert status["available"] is True
    assert status["host"].rstrip("/") == lsp.fake.url
    assert status["engine"] == "ollama"
    assert status["version"] == "0.33.0"
    assert status["activeModel"] == "llama3.2"
    assert status["error"] is None
    names = {m["name"] for m in status["models"]}
    assert "qwen2.5-coder:1.5b" in names and "llama3.2:latest" in names
    assert isinstance(status["running"], list)


async def test_list_models(lsp: Harness) -> None:
    models = await lsp.command(protocol.CMD_LIST_MODELS)
    by_name = {m["name"]: m for m in models}
    coder = by_name["qwen2.5-coder:1.5b"]
    assert "insert" in coder["capabilities"]
    assert set(coder) >= {"name", "sizeBytes", "parameters", "contextLength", "family"}


async def test_select_model(lsp: Harness) -> None:
    assert lsp.fake is not None
    with pytest.raises(JsonRpcException) as err:
        await lsp.command(protocol.CMD_SELECT_MODEL, {"model": "no-such-model:7b"})
    message = str(err.value)
    assert "no-such-model:7b" in message and "ollama pull" in message
    result = await lsp.command(
        protocol.CMD_SELECT_MODEL, {"model": "qwen2.5-coder:1.5b", "task": "chat"}
    )
    assert result == {"activeModel": "qwen2.5-coder:1.5b", "task": "chat"}
    await lsp.wait_for(lambda: lsp.statuses[-1]["model"] == "qwen2.5-coder:1.5b")
    uri = lsp.open("sel.py", PY)
    await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert lsp.fake.chat_requests()[-1]["model"] == "qwen2.5-coder:1.5b"
    result = await lsp.command(protocol.CMD_SELECT_MODEL, {"model": "llama3.2", "task": "chat"})
    assert result == {"activeModel": "llama3.2:latest", "task": "chat"}
    with pytest.raises(JsonRpcException) as err:
        await lsp.command(protocol.CMD_SELECT_MODEL, {"model": "llama3.2", "task": "vision"})
    assert "task" in str(err.value)


async def test_pull_model_reports_percentage(lsp: Harness) -> None:
    result = await lsp.command(protocol.CMD_PULL_MODEL, {"model": "deepseek-coder:6.7b"})
    assert result == {"model": "deepseek-coder:6.7b", "status": "success"}
    reports = lsp.progress_for_title("Pulling deepseek-coder:6.7b")[-1]
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    percentages = [
        r.percentage
        for r in reports
        if isinstance(r, types.WorkDoneProgressReport) and r.percentage is not None
    ]
    assert percentages, reports
    assert all(0 <= p <= 100 for p in percentages)


async def test_throughput_equals_engine_numbers(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(
        Reply(text="Adds two numbers.", eval_count=212, eval_duration_ns=4_100_000_000)
    )
    uri = lsp.open("tp.py", PY)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["metrics"]["tokensGenerated"] == 212
    assert result["metrics"]["tokensPerSecond"] == round(212 / 4.1, 2)
    end = lsp.progress_for_title("Explaining selection")[-1][-1]
    assert end.message.startswith("212 tokens · ") and end.message.endswith("51.7 tok/s")
    throughput = await lsp.command(protocol.CMD_THROUGHPUT)
    assert throughput["last"]["tokensGenerated"] == 212
    assert throughput["last"]["tokensPerSecond"] == round(212 / 4.1, 2)
    usage = throughput["models"]["llama3.2:latest"]
    assert {
        "requests",
        "errors",
        "cancelled",
        "tokensGenerated",
        "tokensPerSecond",
        "timeToFirstTokenMsP50",
        "timeToFirstTokenMsP95",
    } <= set(usage)
    assert usage["requests"] >= 1 and usage["tokensGenerated"] >= 212
    assert lsp.statuses[-1]["tokensPerSecond"] == pytest.approx(212 / 4.1, rel=1e-3)


async def test_status_notifications_follow_state(lsp: Harness) -> None:
    assert lsp.fake is not None
    assert all(set(s) == STATUS_KEYS for s in lsp.statuses)
    start = len(lsp.statuses)
    lsp.fake.enqueue(Reply(text="ok", token_delay=0.05))
    uri = lsp.open("st.py", PY)
    await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    states = [s["state"] for s in lsp.statuses[start:]]
    assert states[:1] == ["busy"] and states[-1] == "ready"
    assert lsp.statuses[-1]["host"].rstrip("/") == lsp.fake.url


async def test_offline_then_recovery(lsp: Harness) -> None:
    assert lsp.fake is not None
    uri = lsp.open("off.py", PY)
    lsp.fake.go_offline()
    try:
        actions = await lsp.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=types.Position(0, 0), end=types.Position(2, 0)),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert actions and any(protocol.TITLE_EXPLAIN in a.title for a in actions)
        with pytest.raises(JsonRpcException) as err:
            await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
        message = str(err.value)
        assert lsp.fake.url.split("//")[1] in message and "ollama serve" in message
        await lsp.wait_for(lambda: lsp.statuses[-1]["state"] == "offline")
        status = await lsp.command(protocol.CMD_MODEL_STATUS)
        assert status["available"] is False and "ollama serve" in (status["error"] or "")
    finally:
        lsp.fake.go_online()
    lsp.fake.enqueue(Reply(text="Back again."))
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["text"] == "Back again."
    await lsp.wait_for(lambda: lsp.statuses[-1]["state"] == "ready")


async def test_error_inside_the_stream_ends_progress_and_sets_error_state(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text="one two three four five six"))
    lsp.fake.inject(Fault.error_line(after_tokens=2), path="/api/chat")
    uri = lsp.open("err.py", PY)
    with pytest.raises(JsonRpcException) as err:
        await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert err.value.code == -32803 and "Traceback" not in str(err.value)
    end = lsp.progress_for_title("Explaining selection")[-1][-1]
    assert isinstance(end, types.WorkDoneProgressEnd) and end.message.startswith("Failed: ")
    await lsp.wait_for(lambda: lsp.statuses[-1]["state"] == "error")
    lsp.fake.enqueue(Reply(text="Fine again."))
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["text"] == "Fine again."
    await lsp.wait_for(lambda: lsp.statuses[-1]["state"] == "ready")
