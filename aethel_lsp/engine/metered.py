"""An `Engine` wrapper that records every generation's outcome: ok, error or cancelled.

It is also where streamed text loses any known key value (`redacted_chunks`), for both
faces.  The server always talks to a `MeteredEngine`, so `aethel.throughput`, the status bar and
`aethel-lsp stats` all read the same numbers, measured once, where generations happen.
A stream closed before its final line (`aclose()`, `break`, or its task cancelled)
counts as cancelled; an engine error counts as an error; the final chunk's metrics
(Ollama's own numbers) count as ok and become `last_metrics`.  A reply that only loaded
or unloaded the model (Ollama's `done_reason` "load" / "unload" for an empty prompt,
REFERENCE §1.5) generated nothing and is not counted at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from aethel_lsp.engine.base import Engine, closing_stream
from aethel_lsp.engine.delegating import DelegatingEngine
from aethel_lsp.engine.errors import (
    AuthenticationFailed,
    EngineError,
    EngineNotInstalled,
    EngineOffline,
    InvalidRequest,
    ModelNotFound,
    NoEngineAvailable,
)
from aethel_lsp.engine.redaction import Redactor, StreamRedactor
from aethel_lsp.engine.stats import Outcome, UsageStats
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    GenerateRequest,
    Metrics,
)


class MeteredEngine(DelegatingEngine):
    """Delegates everything to `inner` and meters generations into `stats` (if any)."""

    def __init__(
        self,
        inner: Engine,
        stats: UsageStats | None = None,
        redactor: Callable[[], Redactor] | None = None,
    ) -> None:
        super().__init__(inner)
        self.stats = stats
        self.redactor = redactor  # the current key values: none reaches a caller's text
        self.last_metrics: Metrics | None = None

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self._redacted(self._metered(self.inner.stream_generate(request), request.model))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self._redacted(self._metered(self.inner.stream_chat(request), request.model))

    def _redacted(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        redactor = self.redactor() if self.redactor is not None else None
        return redacted_chunks(chunks, redactor) if redactor else chunks

    async def _metered(self, chunks: AsyncIterator[Chunk], model: str) -> AsyncIterator[Chunk]:
        """Pass chunks through; record exactly one outcome however the stream ends."""
        finished = False
        try:
            async with contextlib.aclosing(closing_stream(chunks)) as stream:
                async for chunk in stream:
                    if chunk.done and chunk.metrics is not None and not finished:
                        finished = True
                        if not is_load_reply(chunk.metrics):
                            self.last_metrics = chunk.metrics
                            # a provider router names who really served
                            served = chunk.metrics.model if chunk.metrics.provider else model
                            self._record(served, "ok", chunk.metrics)
                    yield chunk
        except EngineError as exc:
            if not finished:
                finished = True
                if not isinstance(exc, NOT_SERVED):  # a typo'd model is not a row forever
                    self._record(model, "error", error=type(exc).__name__)
            raise
        except (GeneratorExit, asyncio.CancelledError):
            if not finished:
                finished = True
                self._record(model, "cancelled")
            raise
        if not finished:  # ended without a final line (backends raise first; be safe)
            self._record(model, "error", error="MalformedResponse")

    def _record(self, model: str, outcome: Outcome, metrics: Metrics | None = None,
                error: str | None = None) -> None:
        if self.stats is not None:
            self.stats.record(model, outcome, metrics, error)


async def redacted_chunks(chunks: AsyncIterator[Chunk], redactor: Redactor) -> AsyncIterator[Chunk]:
    """`chunks` with every known key value removed from text and thinking, even when an
    upstream (which was sent the key) splits it across tokens."""
    text, thinking = StreamRedactor(redactor), StreamRedactor(redactor)
    async with contextlib.aclosing(closing_stream(chunks)) as stream:
        async for chunk in stream:
            if chunk.done:
                yield replace(chunk, text=text.feed(chunk.text) + text.flush(),
                              thinking=thinking.feed(chunk.thinking) + thinking.flush())
            else:
                yield replace(chunk, text=text.feed(chunk.text),
                              thinking=thinking.feed(chunk.thinking))


# Failures before any model ran: no such model, no engine, a refused request. Counting
# them would turn every typo (`-m nosuch`) into a permanent row of the statistics.
NOT_SERVED = (ModelNotFound, EngineOffline, InvalidRequest, AuthenticationFailed,
              EngineNotInstalled, NoEngineAvailable)


# Ollama answers an empty prompt by loading (or, with keep_alive 0, unloading) the model:
# one final object with this `done_reason` and no tokens (REFERENCE §1.5).
NOT_A_GENERATION = frozenset({"load", "unload"})


def is_load_reply(metrics: Metrics) -> bool:
    """True for a reply that only loaded/unloaded the model: not a generation to count.

    >>> is_load_reply(Metrics(model="m", done_reason="load"))
    True
    >>> is_load_reply(Metrics(model="m", done_reason="stop", tokens_generated=3))
    False
    """
    return metrics.done_reason in NOT_A_GENERATION
