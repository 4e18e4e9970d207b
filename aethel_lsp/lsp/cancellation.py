"""Make `$/cancelRequest` on `workspace/executeCommand` cancel the command's task.

pygls 2 runs a `@server.command` handler *inside* its builtin executeCommand handler,
under a fresh internal id: `$/cancelRequest` cancels only the outer request future,
so the client gets -32800 at once while our coroutine (and the engine's GPU) would
keep going.  `link_request_cancellation` ties the two together: when the outer future
is cancelled, the task running the command is cancelled too, which closes the HTTP
stream to the engine.

This is the ONE place that touches pygls private state (`JsonRPCProtocol.
_request_futures`, the map from request id to its future).  If a pygls release renames
it, `outer_request_future` returns None, a warning is logged, and
`tests/unit/test_cancellation.py` fails loudly, so the change cannot go unnoticed.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future as ConcurrentFuture
from typing import Any

from pygls.protocol import JsonRPCProtocol

log = logging.getLogger(__name__)

AnyFuture = ConcurrentFuture[Any] | asyncio.Future[Any]


def outer_request_future(protocol: JsonRPCProtocol) -> AnyFuture | None:
    """The future pygls keeps for the request being handled (private pygls API)."""
    msg_id = protocol.msg_id  # public: the id of the request in this context
    futures = getattr(protocol, "_request_futures", None)
    if msg_id is None or not isinstance(futures, dict):
        return None
    future = futures.get(msg_id)
    return future if isinstance(future, (ConcurrentFuture, asyncio.Future)) else None


def cancel_task_when_cancelled(future: AnyFuture, task: asyncio.Task[Any]) -> None:
    """Cancel `task` (on its own loop, from any thread) as soon as `future` is cancelled."""
    loop = task.get_loop()

    def on_done(done: Any) -> None:
        if done.cancelled() and not task.done():
            loop.call_soon_threadsafe(task.cancel)

    future.add_done_callback(on_done)


def link_request_cancellation(protocol: JsonRPCProtocol) -> bool:
    """Call first thing in a long-running async command; True when linked."""
    task = asyncio.current_task()
    if task is None:
        return False
    outer = outer_request_future(protocol)
    if outer is None:
        log.warning(
            "Cannot link $/cancelRequest to request %r: pygls internals changed; "
            "cancelling this command will not stop the engine early.",
            protocol.msg_id,
        )
        return False
    cancel_task_when_cancelled(outer, task)
    return True
