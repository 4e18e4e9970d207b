"""Progress: reports carry exactly the new text, are coalesced, always end, and a cancel
from the client cancels the task iterating the engine stream (no LSP process: a stub
stands in for pygls' work_done_progress)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any

import pytest
from lsprotocol import types

from aethel_lsp.engine.errors import MalformedResponse, StreamError
from aethel_lsp.engine.types import Chunk, Metrics
from aethel_lsp.lsp.progress import Progress, percentage, stream_into


class StubProgress:
    """Records what pygls would send; `tokens` holds the cancel futures like pygls."""

    def __init__(self) -> None:
        self.tokens: dict[Any, Future[Any]] = {}
        self.sent: list[tuple[float, Any, Any]] = []

    async def create_async(self, token: Any) -> None:
        self.tokens[token] = Future()

    def _record(self, token: Any, value: Any) -> None:
        self.sent.append((asyncio.get_running_loop().time(), token, value))

    begin = report = end = _record


class StubServer:
    def __init__(self) -> None:
        self.work_done_progress = StubProgress()


def values(server: StubServer) -> list[Any]:
    return [v for _, _, v in server.work_done_progress.sent]


async def chunks(
    texts: list[str], delay: float = 0.0, closed: list[bool] | None = None
) -> AsyncIterator[Chunk]:
    try:
        for text in texts:
            if delay:
                await asyncio.sleep(delay)
            yield Chunk(text=text)
        yield Chunk(
            done=True,
            metrics=Metrics(
                "m", tokens_generated=len(texts), latency_ms=1500.0, tokens_per_second=40.0
            ),
        )
    finally:
        if closed is not None:
            closed.append(True)


def test_percentage_bounds() -> None:
    assert percentage(0, 10) == 0 and percentage(5, 10) == 50 and percentage(99, 10) == 100
    assert percentage(3, None) is None and percentage(3, 0) is None


async def test_reports_concatenate_to_the_text_and_end_with_summary() -> None:
    server = StubServer()
    texts = [f"tok{i} " for i in range(30)]
    async with Progress(server, "Explaining selection", enabled=True, budget=60) as progress:  # type: ignore[arg-type]
        result = await stream_into(progress, chunks(texts, delay=0.004), "m")
    sent = values(server)
    assert isinstance(sent[0], types.WorkDoneProgressBegin)
    assert sent[0].title == "Explaining selection" and sent[0].cancellable is True
    reports = [v for v in sent if isinstance(v, types.WorkDoneProgressReport)]
    assert "".join(r.message for r in reports) == result.text == "".join(texts)
    assert reports[-1].percentage == 50
    assert isinstance(sent[-1], types.WorkDoneProgressEnd)
    assert sent[-1].message == "30 tokens · 1.5 s · 40.0 tok/s"
    assert not server.work_done_progress.tokens  # token forgotten after the end


async def test_reports_are_at_most_one_per_interval() -> None:
    server = StubServer()
    async with Progress(server, "t", enabled=True, budget=None, interval_s=0.05) as progress:  # type: ignore[arg-type]
        await stream_into(progress, chunks(["x"] * 200, delay=0.001), "m")
    times = [
        t
        for t, _, v in server.work_done_progress.sent
        if isinstance(v, types.WorkDoneProgressReport)
    ]
    assert len(times) < 200 // 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.045 for gap in gaps), gaps  # small slack for the clock


async def test_error_ends_progress_with_the_error() -> None:
    server = StubServer()

    async def failing() -> AsyncIterator[Chunk]:
        yield Chunk(text="a")
        raise StreamError("The model crashed; try again.")

    with pytest.raises(StreamError):
        async with Progress(server, "t", enabled=True) as progress:  # type: ignore[arg-type]
            await stream_into(progress, failing(), "m")
    end = values(server)[-1]
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert end.message == "Failed: The model crashed; try again."


async def test_truncated_stream_is_an_error() -> None:
    async def truncated() -> AsyncIterator[Chunk]:
        yield Chunk(text="a")

    with pytest.raises(MalformedResponse):
        async with Progress(StubServer(), "t", enabled=True) as progress:  # type: ignore[arg-type]
            await stream_into(progress, truncated(), "m")


async def test_client_cancel_cancels_the_task_and_closes_the_stream() -> None:
    server = StubServer()
    closed: list[bool] = []
    seen: list[Progress] = []

    async def work() -> None:
        async with Progress(server, "t", enabled=True) as progress:  # type: ignore[arg-type]
            seen.append(progress)
            await stream_into(progress, chunks(["x"] * 1000, delay=0.01, closed=closed), "m")

    task = asyncio.ensure_future(work())
    for _ in range(200):  # wait for the progress to begin
        if server.work_done_progress.tokens:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    (token,) = list(server.work_done_progress.tokens)
    server.work_done_progress.tokens[token].cancel()  # what pygls does on workDoneProgress/cancel
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert closed == [True]  # the engine stream was closed
    assert seen[0].cancelled_by_user
    assert values(server)[-1] == types.WorkDoneProgressEnd(message="Cancelled")


async def test_without_client_support_nothing_is_sent() -> None:
    server = StubServer()
    async with Progress(server, "t", enabled=False) as progress:  # type: ignore[arg-type]
        result = await stream_into(progress, chunks(["a", "b"]), "m")
    assert result.text == "ab" and values(server) == []


async def test_status_mode_reports_latest_line() -> None:
    server = StubServer()
    async with Progress(server, "Pulling m", enabled=True) as progress:  # type: ignore[arg-type]
        for step in range(5):
            progress.status(f"step {step}", step * 25)
            await asyncio.sleep(0.06)
        progress.summary = "m: success"
    reports = [v for v in values(server) if isinstance(v, types.WorkDoneProgressReport)]
    assert [r.percentage for r in reports][-1] == 100
    assert reports[-1].message == "step 4"
    assert values(server)[-1].message == "m: success"


async def test_refused_create_means_no_progress_but_work_goes_on() -> None:
    server = StubServer()

    async def refuse(token: Any) -> None:
        raise RuntimeError("client said no")

    server.work_done_progress.create_async = refuse  # type: ignore[method-assign]
    async with Progress(server, "t", enabled=True) as progress:  # type: ignore[arg-type]
        result = await stream_into(progress, chunks(["a"]), "m")
    assert result.text == "a" and values(server) == []


def test_unknown_counts_read_unknown_not_zero() -> None:
    """What an OpenAI-compatible server did not count must not read as 0 tokens."""
    unknown = Metrics(model="m", latency_ms=1500.0)
    assert unknown.summary() == "unknown tokens · 1.5 s · unknown tok/s"
    assert "0 tokens" not in unknown.summary()


async def _one_race(cancel_after_s: float, via_progress: bool) -> StubServer:
    """An action whose cancel lands `cancel_after_s` into a short stream (before, during
    or after its last token, or while the last report waits for its window)."""
    server = StubServer()

    async def action() -> None:
        async with Progress(server, "Race", enabled=True, interval_s=0.004) as progress:  # type: ignore[arg-type]
            await stream_into(progress, chunks(["a", "b", "c"], delay=0.002), "m")
            await asyncio.sleep(0.003)  # e.g. writing the explanation file

    task = asyncio.ensure_future(action())
    await asyncio.sleep(cancel_after_s)
    if via_progress and server.work_done_progress.tokens:
        # window/workDoneProgress/cancel: pygls cancels the token's future.
        next(iter(server.work_done_progress.tokens.values())).cancel()
    else:
        task.cancel()  # $/cancelRequest
    await asyncio.gather(task, return_exceptions=True)  # cancelled, or finished first
    return server


async def test_progress_ends_exactly_once_whenever_the_cancel_lands() -> None:
    """Hammer the end of a generation with cancels: every begun progress ends once."""
    for attempt in range(240):
        delay = (attempt % 60) * 0.0004  # 0 .. 24 ms: before, during and after the stream
        server = await _one_race(delay, via_progress=attempt % 2 == 1)
        sent = values(server)
        begins = [v for v in sent if isinstance(v, types.WorkDoneProgressBegin)]
        ends = [v for v in sent if isinstance(v, types.WorkDoneProgressEnd)]
        assert len(ends) == len(begins), (attempt, sent)
        if ends:
            assert sent[-1] is ends[0]  # nothing after the end
        assert server.work_done_progress.tokens == {}


async def test_progress_end_survives_a_client_that_is_gone() -> None:
    server = StubServer()

    def broken(token: Any, value: Any) -> None:
        raise BrokenPipeError("client gone")

    server.work_done_progress.end = broken  # type: ignore[method-assign]
    async with Progress(server, "Gone", enabled=True) as progress:  # type: ignore[arg-type]
        await stream_into(progress, chunks(["a"]), "m")
    assert server.work_done_progress.tokens == {}
