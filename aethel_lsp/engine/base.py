"""The one interface every backend implements (Ollama, OpenAI-compatible, embedded).

Streaming methods are async generators: closing one (``aclose()``, ``break``, or the
cancellation of the task iterating it) must close the upstream request at once, so
that the engine stops generating tokens nobody will read.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineKind,
    EngineStatus,
    GenerateRequest,
    GenerateResult,
    ModelInfo,
    PullProgress,
    RunningModel,
)


class Engine(abc.ABC):
    """An inference engine: model management plus whole and streamed generation."""

    kind: EngineKind
    host: str

    @abc.abstractmethod
    async def status(self) -> EngineStatus:
        """Never raises: an unreachable engine is `available=False` with a clear `error`."""

    async def is_available(self) -> bool:
        return (await self.status()).available

    @abc.abstractmethod
    async def version(self) -> str: ...

    @abc.abstractmethod
    async def list_models(self) -> list[ModelInfo]: ...

    @abc.abstractmethod
    async def show(self, model: str) -> ModelInfo:
        """Details of one model, including capabilities; cached by backends."""

    @abc.abstractmethod
    async def running(self) -> list[RunningModel]: ...

    @abc.abstractmethod
    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]: ...

    @abc.abstractmethod
    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]: ...

    @abc.abstractmethod
    def pull(self, model: str) -> AsyncIterator[PullProgress]: ...

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        return await collect(self.stream_generate(request), request.model)

    async def chat(self, request: ChatRequest) -> GenerateResult:
        return await collect(self.stream_chat(request), request.model)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections / model memory."""


async def collect(chunks: AsyncIterator[Chunk], model: str) -> GenerateResult:
    """Drain a stream into one result (the final chunk carries the metrics)."""
    from aethel_lsp.engine.errors import MalformedResponse

    parts: list[str] = []
    thinking: list[str] = []
    async for chunk in chunks:
        parts.append(chunk.text)
        thinking.append(chunk.thinking)
        if chunk.done:
            if chunk.metrics is None:
                break
            return GenerateResult("".join(parts), chunk.metrics, "".join(thinking))
    raise MalformedResponse(f"The stream from model {model} ended before its final line.")
