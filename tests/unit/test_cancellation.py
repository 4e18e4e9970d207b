"""The one place that uses pygls private state (`_request_futures`): if a pygls release
changes it, these tests fail (and tests/e2e/test_server_cancel.py shows the effect)."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future

from pygls.protocol import JsonRPCProtocol

from aethel_lsp.lsp.cancellation import (
    cancel_task_when_cancelled,
    link_request_cancellation,
    outer_request_future,
)
from aethel_lsp.lsp.server import create_server


def test_pygls_private_api_still_has_the_shape_we_rely_on() -> None:
    server = create_server()
    protocol = server.protocol
    assert isinstance(protocol, JsonRPCProtocol)
    assert isinstance(protocol._request_futures, dict)
    assert hasattr(protocol, "_ctx_msg_id")
    # pygls still routes commands through a builtin generator handler (the reason for
    # all this); if it stops doing so, link_request_cancellation may become unnecessary.
    assert "workspace/executeCommand" in protocol.fm.builtin_features


async def test_outer_future_cancel_cancels_the_command_task() -> None:
    protocol = create_server().protocol
    outer: Future[object] = Future()
    protocol._request_futures["req-1"] = outer
    started = asyncio.Event()

    async def command() -> str:
        protocol._ctx_msg_id.set("req-1")  # pygls sets this for the request being handled
        assert outer_request_future(protocol) is outer
        assert link_request_cancellation(protocol)
        started.set()
        await asyncio.sleep(10)
        return "not cancelled"

    task = asyncio.ensure_future(command())
    await started.wait()
    outer.cancel()  # what pygls does on $/cancelRequest
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert task.cancelled()


async def test_no_request_context_means_no_link() -> None:
    protocol = create_server().protocol
    assert outer_request_future(protocol) is None
    assert link_request_cancellation(protocol) is False


async def test_done_future_does_not_cancel() -> None:
    future: Future[object] = Future()

    async def work() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    task = asyncio.ensure_future(work())
    cancel_task_when_cancelled(future, task)
    future.set_result(None)
    assert await task == "ok"
