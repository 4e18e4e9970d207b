"""End to end: both cancel routes close the engine's HTTP stream within 100 ms, the
progress ends, the request gets exactly one answer, and the server keeps serving;
two actions at once both complete."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Reply

pytestmark = pytest.mark.asyncio(loop_scope="module")

PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
LONG = " ".join(f"word{i}" for i in range(400))  # 40 s at 0.1 s per token: never finishes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    fake = FakeOllama(token_delay=0.01)
    fake.start()
    harness = await start_server(
        tmp_path_factory.mktemp("cancel"),
        fake,
        editor_settings={"engine": "ollama", "model": "llama3.2"},
    )
    yield harness
    await harness.stop()


async def _start_slow_explain(lsp: Harness, msg_id: str) -> tuple[asyncio.Future[object], str]:
    """Send an explain whose generation never ends on its own; return (future, token)."""
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text=LONG, token_delay=0.1))
    uri = lsp.open(f"{msg_id}.py", PY)
    started = len(lsp.fake.streams)
    future = asyncio.ensure_future(
        lsp.client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(
                command=protocol.CMD_EXPLAIN_SELECTION, arguments=[{"uri": uri, "range": SEL}]
            ),
            msg_id=msg_id,
        )
    )
    # Wait until tokens flow: the stream is open and progress has begun.
    await lsp.wait_for(
        lambda: len(lsp.fake.streams) > started and lsp.fake.streams[-1].tokens_sent >= 2  # type: ignore[union-attr]
    )
    tokens = await lsp.wait_for(
        lambda: [
            t
            for t, r in lsp.client.progress_reports.items()
            if r and not isinstance(r[-1], types.WorkDoneProgressEnd)
        ]
    )
    return future, tokens[-1]


async def _assert_closed_quickly(lsp: Harness, cancelled_at: float) -> None:
    assert lsp.fake is not None
    stream = await lsp.fake.wait_for_stream_end_async("/api/chat", timeout=5)
    assert stream.closed_early and not stream.completed
    assert stream.closed_at is not None
    elapsed_ms = (stream.closed_at - cancelled_at) * 1000
    print(f"engine stream closed {elapsed_ms:.1f} ms after the cancel")
    assert elapsed_ms <= 100, f"engine stream closed {elapsed_ms:.0f} ms after the cancel"


async def _assert_still_serving(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(text="Still here."))
    uri = lsp.open("after.py", PY)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["text"] == "Still here."


async def test_cancel_request_closes_engine_stream(lsp: Harness) -> None:
    future, token = await _start_slow_explain(lsp, "cancel-1")
    cancelled_at = time.monotonic()
    lsp.client.cancel_request(types.CancelParams(id="cancel-1"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(future, 5)
    await _assert_closed_quickly(lsp, cancelled_at)
    end = await lsp.wait_for(
        lambda: (
            isinstance(lsp.client.progress_reports[token][-1], types.WorkDoneProgressEnd)
            and lsp.client.progress_reports[token][-1]
        )
    )
    assert end.message == "Cancelled"
    await _assert_still_serving(lsp)


async def test_progress_cancel_closes_engine_stream(lsp: Harness) -> None:
    future, token = await _start_slow_explain(lsp, "cancel-2")
    cancelled_at = time.monotonic()
    lsp.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(future, 5)
    assert err.value.code == -32800 and "cancelled" in str(err.value)
    await _assert_closed_quickly(lsp, cancelled_at)
    end = lsp.client.progress_reports[token][-1]
    assert isinstance(end, types.WorkDoneProgressEnd) and end.message == "Cancelled"
    await _assert_still_serving(lsp)


async def test_two_actions_at_once_both_complete(lsp: Harness) -> None:
    assert lsp.fake is not None
    lsp.fake.enqueue(
        Reply(text="First answer, slowly.", token_delay=0.03),
        Reply(text="Second answer, slowly.", token_delay=0.03),
    )
    uri = lsp.open("two.py", PY)
    args = {"uri": uri, "range": SEL}
    first, second = await asyncio.gather(
        lsp.command(protocol.CMD_EXPLAIN_SELECTION, args),
        lsp.command(protocol.CMD_EXPLAIN_SELECTION, args),
    )
    assert {first["text"], second["text"]} == {"First answer, slowly.", "Second answer, slowly."}
    # both streams really overlapped on the engine side
    a, b = lsp.fake.streams[-2:]
    assert a.ended_at is not None and b.started_at < a.ended_at


async def test_reports_are_coalesced(lsp: Harness) -> None:
    """A fast model (1 ms per token) does not get one report per token."""
    assert lsp.fake is not None
    text = " ".join(f"t{i}" for i in range(120))
    lsp.fake.enqueue(Reply(text=text, token_delay=0.001))
    uri = lsp.open("fast.py", PY)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    reports = lsp.progress_for_title("Explaining selection")[-1]
    middle = [r for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert "".join(r.message or "" for r in middle) == result["text"] == text
    # coalesced: at most one report per 50 ms of generation (plus the final flush)
    assert len(middle) <= result["metrics"]["latencyMs"] / 50 + 2
    assert len(middle) < 120
    percentages = [r.percentage for r in middle if r.percentage is not None]
    assert percentages == sorted(percentages) and all(0 <= p <= 100 for p in percentages)
