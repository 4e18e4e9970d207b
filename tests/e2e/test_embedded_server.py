"""End to end with the embedded engine: the REAL server process (`python -m aethel_lsp`)
runs the REAL SmolLM2-135M model (fetched by `aethel-lsp pull`) on llama.cpp's own server
(xllamacpp), in-process.

Shows what a newcomer without Ollama gets: a streamed explanation whose `$/progress`
reports carry the model's real tokens, metrics from llama.cpp's own timings,
cancellation that stops generation and leaves the model free at once, and
`engine = "auto"` choosing the (fake) Ollama while it answers and the embedded engine
when it is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Reply
from tests.unit.embedded_support import model_env, requires_embedded

pytestmark = [
    pytest.mark.embedded,
    requires_embedded,
    pytest.mark.asyncio(loop_scope="module"),
]

SMOL = "SmolLM2-135M-Instruct.Q4_1"
PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
EXPLAIN_TITLE = "Explaining selection"
LONG_PY = """import json
from pathlib import Path


def load_accounts(path: Path) -> dict[str, int]:
    \"\"\"Read balances, skipping malformed lines.\"\"\"
    balances: dict[str, int] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        balances[record["owner"]] = balances.get(record["owner"], 0) + int(record["amount"])
    return balances
"""
LONG_SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 14, "character": 0}}


def reports_text(reports: list[Any]) -> str:
    return "".join(
        r.message or "" for r in reports if isinstance(r, types.WorkDoneProgressReport)
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    harness = await start_server(
        tmp_path_factory.mktemp("embedded"),
        None,
        editor_settings={"engine": "embedded", "maxTokens": 24, "temperature": 0.0},
        extra_env=model_env(),
    )
    yield harness
    await harness.stop()


async def explain(lsp: Harness, name: str) -> dict[str, Any]:
    uri = lsp.open(name, PY)
    result = await asyncio.wait_for(
        lsp.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=protocol.CMD_EXPLAIN_SELECTION, arguments=[{"uri": uri, "range": SEL}]
            )
        ),
        120,
    )
    assert isinstance(result, dict), result
    return result


async def test_status_names_the_embedded_engine_and_model(embedded: Harness) -> None:
    status = await embedded.command(protocol.CMD_MODEL_STATUS)
    assert status["available"] is True
    assert status["engine"] == "embedded"
    assert status["host"] == "embedded:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert [m["name"] for m in status["models"]] == [SMOL]
    assert status["models"][0]["parameters"] == 134_515_008
    assert status["models"][0]["quantization"] == "Q4_1"


async def test_explanation_streams_real_tokens_through_progress(embedded: Harness) -> None:
    result = await explain(embedded, "streamed.py")

    metrics = result["metrics"]
    assert metrics["model"] == SMOL
    assert metrics["doneReason"] in ("stop", "length")
    assert 0 < metrics["tokensGenerated"] <= 24
    assert metrics["promptTokens"] > 20  # the explain prompt inside SmolLM2's chat template
    assert metrics["tokensPerSecond"] > 0
    assert result["text"].strip()

    [reports] = embedded.progress_for_title(EXPLAIN_TITLE)
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    middle = [r for r in reports if isinstance(r, types.WorkDoneProgressReport) and r.message]
    assert len(middle) >= 2, reports  # streamed in pieces, not in one final message
    # The reports carry exactly the generated text (the action may strip its ends).
    assert reports_text(reports).strip() == result["text"].strip()
    assert str(metrics["tokensGenerated"]) in (reports[-1].message or "")


async def test_cancelled_explanation_stops_and_frees_the_model(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Greedy decoding: the same request always produces the same (long) answer, so the
    # uncancelled follow-up below shows how long the cancelled one would have run.
    lsp = await start_server(
        tmp_path_factory.mktemp("embedded-cancel"),
        None,
        editor_settings={"engine": "embedded", "maxTokens": 300, "temperature": 0.0},
        extra_env=model_env(),
    )
    try:
        uri = lsp.open("long.py", LONG_PY)
        args = [{"uri": uri, "range": LONG_SEL}]
        request = asyncio.ensure_future(
            lsp.client.protocol.send_request_async(
                types.WORKSPACE_EXECUTE_COMMAND,
                types.ExecuteCommandParams(command=protocol.CMD_EXPLAIN_SELECTION, arguments=args),
                msg_id="long-explain",
            )
        )

        def flowing() -> list[Any] | None:
            if request.done():  # failed early: surface the error instead of timing out
                raise AssertionError(f"the request ended early: {request.result()!r}")
            found = lsp.progress_for_title(EXPLAIN_TITLE)
            return found[0] if found and len(reports_text(found[0])) > 20 else None

        reports = await lsp.wait_for(flowing, timeout=60)  # real tokens are arriving
        lsp.client.cancel_request(types.CancelParams(id="long-explain"))
        with pytest.raises(JsonRpcException):
            await asyncio.wait_for(request, 30)
        await lsp.wait_for(lambda: isinstance(reports[-1], types.WorkDoneProgressEnd), 10)
        text_at_end = reports_text(reports)
        await asyncio.sleep(0.3)
        assert reports_text(reports) == text_at_end  # no token arrives after the end
        usage = await lsp.command(protocol.CMD_THROUGHPUT)
        assert usage["models"][SMOL]["cancelled"] == 1, usage

        # The same request again, uncancelled, gets a whole answer at once. (That the
        # cancelled request's slot stops is shown with one slot in the unit tests,
        # test_embedded_engine.py::test_closing_a_stream_frees_its_slot.)
        follow_up = await asyncio.wait_for(
            lsp.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=protocol.CMD_EXPLAIN_SELECTION, arguments=args)
            ),
            120,
        )
        metrics = follow_up["metrics"]
        assert metrics["model"] == SMOL
        assert metrics["tokensGenerated"] >= 40, metrics  # a long answer, as the cancelled one
        generating_ms = metrics["latencyMs"] - metrics["timeToFirstTokenMs"]
        assert metrics["timeToFirstTokenMs"] < generating_ms / 2, metrics
    finally:
        await lsp.stop()


async def test_auto_uses_ollama_when_up_and_embedded_when_down(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fake = FakeOllama(token_delay=0.002)
    fake.start()
    lsp = await start_server(
        tmp_path_factory.mktemp("embedded-auto"),
        fake,
        editor_settings={"engine": "auto", "maxTokens": 16, "temperature": 0.0},
        extra_env=model_env(),
    )
    try:
        status = await lsp.command(protocol.CMD_MODEL_STATUS)
        assert status["engine"] == "ollama" and status["available"], status
        fake.enqueue(Reply(text="Adds two numbers (from the fake)."))
        assert (await explain(lsp, "up.py"))["text"] == "Adds two numbers (from the fake)."

        fake.go_offline()
        status = await lsp.command(protocol.CMD_MODEL_STATUS)
        assert status["engine"] == "embedded" and status["available"], status
        assert "not running" in (status["reason"] or "")
        down = await explain(lsp, "down.py")
        assert down["metrics"]["model"] == SMOL
        assert down["text"].strip()

        fake.go_online()
        status = await lsp.command(protocol.CMD_MODEL_STATUS)  # probes Ollama again
        assert status["engine"] == "ollama" and status["available"], status
        fake.enqueue(Reply(text="Back on Ollama."))
        assert (await explain(lsp, "back.py"))["text"] == "Back on Ollama."
    finally:
        await lsp.stop()



async def test_inline_completion_never_repeats_the_typed_line(embedded: Harness) -> None:
    """SmolLM2 has no FIM tokens: the engine continues the cached prefix, and whatever the
    model writes, the suggestion never contains the line being typed again."""
    lines = ["def add(a, b):", "    return a + b", "", "", "def mul(a, b):", "    return a"]
    uri = embedded.open("typing.py", "\n".join(lines) + "\n")
    result = await asyncio.wait_for(
        embedded.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=5, character=len(lines[5])),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        ),
        120,
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    assert items, result  # greedy SmolLM2 answers " * b" here
    for item in items:
        text = str(item.insert_text)
        assert not text.lstrip().startswith("return a"), text
        assert "def mul(a, b):" not in text, text
