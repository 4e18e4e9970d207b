"""Engine stream -> LSP work-done progress: create, begin, coalesced reports, end.

Each report's `message` is exactly the text generated since the previous report, so
the messages of one token, concatenated, are the generated text.  Reports are
coalesced to at most one per `interval_s` (50 ms) so a fast model does not flood the
editor; `percentage` is tokens against the token budget.  The progress always ends —
with the metrics summary (`212 tokens · 4.1 s · 51.7 tok/s`), the error, or
"Cancelled".  `window/workDoneProgress/cancel` cancels the task that iterates the
engine stream, which closes the HTTP stream to the engine at once.

Clients without `window.workDoneProgress` get no progress at all, and the same result.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from aethel_lsp.engine.errors import MalformedResponse
from aethel_lsp.engine.providers.limits import report_waits
from aethel_lsp.engine.types import Chunk, GenerateResult, Metrics
from aethel_lsp.lsp.cancellation import cancel_task_when_cancelled

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.05
CREATE_TIMEOUT_S = 5.0


def new_token() -> str:
    """pygls never forgets a token, so every progress needs a fresh one."""
    return f"aethel-{uuid.uuid4()}"


def percentage(tokens: int, budget: int | None) -> int | None:
    """Tokens against the budget, 0-100 (None without a budget).

    >>> percentage(0, 100), percentage(50, 200), percentage(500, 100), percentage(3, None)
    (0, 25, 100, None)
    """
    if not budget or budget <= 0:
        return None
    return max(0, min(100, (100 * tokens) // budget))


class Progress:
    """One work-done progress around one piece of work (use with `async with`).

    `cancelled_by_user` tells the caller that the work stopped because the user
    pressed cancel on the progress (as opposed to `$/cancelRequest` or shutdown).
    """

    def __init__(
        self,
        server: LanguageServer,
        title: str,
        *,
        enabled: bool,
        budget: int | None = None,
        interval_s: float = REPORT_INTERVAL_S,
    ) -> None:
        self.server = server
        self.title = title
        self.enabled = enabled
        self.budget = budget
        self.interval_s = interval_s
        self.token: str | None = None
        self.summary = ""  # set by the caller on success: the end message
        self.cancelled_by_user = False
        self.reports_sent = 0
        self._pending: list[str] = []
        self._status: str | None = None  # status mode (e.g. a pull): latest line only
        self._status_percentage: int | None = None
        self._tokens = 0
        self._last_sent = float("-inf")
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Progress:
        if not self.enabled:
            return self
        token = new_token()
        try:
            await asyncio.wait_for(
                self.server.work_done_progress.create_async(token), CREATE_TIMEOUT_S
            )
        except Exception as exc:  # the client refused: carry on without progress
            log.info("workDoneProgress/create failed (%s); continuing without progress", exc)
            return self
        self.token = token
        self.server.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title=self.title, cancellable=True, percentage=0 if self.budget else None
            ),
        )
        task = asyncio.current_task()
        cancel_future = self.server.work_done_progress.tokens.get(token)
        if task is not None and cancel_future is not None:
            cancel_future.add_done_callback(self._mark_user_cancel)
            cancel_task_when_cancelled(cancel_future, task)
        self._flusher = asyncio.ensure_future(self._flush_loop())
        return self

    def _mark_user_cancel(self, future: Any) -> None:
        if future.cancelled():
            self.cancelled_by_user = True

    def add(self, text: str, tokens: int = 1) -> None:
        """Record generated text; it reaches the client within one coalescing window."""
        self._tokens += tokens
        if text:
            self._pending.append(text)
        if self.token is not None:
            self._wake.set()

    def status(self, message: str, percentage: int | None = None) -> None:
        """Status mode: report the latest `message`/`percentage` (older ones are dropped).

        A step without a percentage keeps the last one, so the bar never jumps back.
        """
        self._status = message
        if percentage is not None:
            self._status_percentage = percentage
        if self.token is not None:
            self._wake.set()

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            delay = self._last_sent + self.interval_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._wake.clear()
            self._send_report()

    def _send_report(self) -> None:
        if self.token is None:
            return
        if self._status is not None:
            report = types.WorkDoneProgressReport(
                message=self._status, percentage=self._status_percentage
            )
            self._status = None
        elif self._pending:
            message = "".join(self._pending)
            self._pending.clear()
            report = types.WorkDoneProgressReport(
                message=message, percentage=percentage(self._tokens, self.budget)
            )
        else:
            return
        self.server.work_done_progress.report(self.token, report)
        self._last_sent = asyncio.get_running_loop().time()
        self.reports_sent += 1

    def _stop_flusher(self) -> None:
        """Stop the flusher without waiting for it: an `await` here could be interrupted
        by a cancel, and nothing must stand between the work's end and the progress end."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None

    def _end(self, message: str) -> None:
        """Send the end notification, once, whatever happens (even to a client gone)."""
        token, self.token = self.token, None
        if token is None:
            return
        try:
            self.server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
        except Exception as exc:  # the client is gone: nothing to show a spinner to
            log.info("Could not end progress %s: %s", token, exc)
        finally:
            # pygls keeps every token forever; drop ours (the id is never reused).
            self.server.work_done_progress.tokens.pop(token, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_flusher()
        if self.token is None:
            return
        if isinstance(exc, asyncio.CancelledError):
            message = "Cancelled"
        elif exc is not None:
            message = f"Failed: {exc}"
        else:
            message = self.summary or "Done"
        try:
            if exc is None:
                await self._flush_last()
        except asyncio.CancelledError:
            message = "Cancelled"  # a cancel landed after the last token
            raise
        finally:
            self._end(message)

    async def _flush_last(self) -> None:
        """The last text, still within the one-report-per-window rule."""
        try:
            delay = self._last_sent + self.interval_s - asyncio.get_running_loop().time()
            if (self._pending or self._status is not None) and delay > 0:
                await asyncio.sleep(delay)
        finally:
            self._send_report()


async def stream_into(
    progress: Progress, chunks: AsyncIterator[Chunk], model: str
) -> GenerateResult:
    """Drain an engine stream into `progress`; the stream is closed however this ends."""
    parts: list[str] = []
    metrics: Metrics | None = None
    stream = chunks
    aclose = getattr(stream, "aclose", None)
    try:
        with report_waits(progress.status):  # "waiting for rate limit (n s)" from providers
            async for chunk in stream:
                if chunk.text:
                    parts.append(chunk.text)
                    progress.add(chunk.text)
                if chunk.done:
                    metrics = chunk.metrics
                    break
    finally:
        if aclose is not None:
            await aclose()
    if metrics is None:
        raise MalformedResponse(
            f"The stream from model {model} ended before its final line; try again."
        )
    text = "".join(parts)
    progress.summary = metrics.summary()
    return GenerateResult(text, metrics)
