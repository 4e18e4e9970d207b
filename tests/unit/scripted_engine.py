"""An in-process `Engine` whose streams the test drives token by token (no HTTP, no clock).

Each call to `stream_generate` / `stream_chat` creates a `ScriptedStream` recorded in
`engine.streams`.  In manual mode the test feeds tokens (`stream.feed("abc")`) and ends
the stream (`stream.finish()`); otherwise the stream yields `auto_tokens(request)` at
once.  `closed_early` tells whether the consumer closed the stream before its end —
what the scheduler must do for superseded requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineStatus,
    GenerateRequest,
    Metrics,
    ModelInfo,
    PullProgress,
    RunningModel,
)

_END = object()


@dataclass
class ScriptedStream:
    request: GenerateRequest | ChatRequest
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    started: bool = False
    finished: bool = False
    closed_early: bool = False
    tokens_sent: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def feed(self, *tokens: str) -> None:
        for token in tokens:
            self.queue.put_nowait(token)

    def finish(self) -> None:
        self.queue.put_nowait(_END)

    def fail(self, error: Exception) -> None:
        self.queue.put_nowait(error)

    async def run(self) -> AsyncIterator[Chunk]:
        self.started = True
        done = False
        try:
            while True:
                item = await self.queue.get()
                if item is _END:
                    done = True
                    yield Chunk(
                        done=True,
                        metrics=Metrics(
                            model=self.request.model, tokens_generated=self.tokens_sent
                        ),
                    )
                    return
                if isinstance(item, Exception):
                    done = True
                    raise item
                assert isinstance(item, str)
                self.tokens_sent += 1
                yield Chunk(text=item)
        finally:
            self.finished = True
            self.closed_early = not done
            self.closed.set()


class ScriptedEngine(Engine):
    kind = "ollama"
    host = "scripted"

    def __init__(
        self,
        models: dict[str, ModelInfo] | None = None,
        *,
        manual: bool = True,
        auto_tokens: Callable[[GenerateRequest | ChatRequest], list[str]] | None = None,
    ) -> None:
        self.models = models or {}
        self.manual = manual
        self.auto_tokens = auto_tokens or (lambda _r: ["x"])
        self.streams: list[ScriptedStream] = []
        self.show_calls: list[str] = []
        self.show_delay = 0.0
        self.new_stream = asyncio.Event()

    async def status(self) -> EngineStatus:
        return EngineStatus(True, self.host, "ollama")

    async def version(self) -> str:
        return "0.0.0"

    async def list_models(self) -> list[ModelInfo]:
        return list(self.models.values())

    async def show(self, model: str) -> ModelInfo:
        self.show_calls.append(model)
        if self.show_delay:
            await asyncio.sleep(self.show_delay)
        if model not in self.models:
            raise EngineError(f"model '{model}' not found")
        return self.models[model]

    async def running(self) -> list[RunningModel]:
        return []

    def _stream(self, request: GenerateRequest | ChatRequest) -> AsyncIterator[Chunk]:
        stream = ScriptedStream(request)
        if not self.manual:
            stream.feed(*self.auto_tokens(request))
            stream.finish()
        self.streams.append(stream)
        self.new_stream.set()
        return stream.run()

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self._stream(request)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self._stream(request)

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:  # pragma: no cover
        yield PullProgress("success")

    async def next_stream(self, count: int) -> ScriptedStream:
        """Wait until the `count`-th stream exists (1-based) and has started."""
        for _ in range(5000):
            if len(self.streams) >= count and self.streams[count - 1].started:
                return self.streams[count - 1]
            await asyncio.sleep(0.001)
        raise AssertionError(f"stream {count} never started ({len(self.streams)} so far)")
