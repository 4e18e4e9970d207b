"""The one interface every backend implements (Ollama, OpenAI-compatible, embedded).

Streaming methods are async generators: closing one (``aclose()``, ``break``, or the
cancellation of the task iterating it) must close the upstream request at once, so
that the engine stops generating tokens nobody will read.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TypeVar

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

T = TypeVar("T")


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

    async def list_models_detailed(self) -> list[ModelInfo]:
        """Installed models enriched with `show` (capabilities, exact sizes).

        A model whose details cannot be read is kept as listed, so one broken model
        does not hide the others.
        """
        from aethel_lsp.engine.errors import EngineError

        detailed: list[ModelInfo] = []
        for listed in await self.list_models():
            try:
                shown = await self.show(listed.name)
            except EngineError:
                detailed.append(listed)
                continue
            detailed.append(merge_model_info(listed, shown))
        return detailed

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        return await collect(self.stream_generate(request), request.model)

    async def chat(self, request: ChatRequest) -> GenerateResult:
        return await collect(self.stream_chat(request), request.model)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections / model memory."""


def merge_model_info(listed: ModelInfo, shown: ModelInfo) -> ModelInfo:
    """`shown`'s details with what only the listing knows (size on disk, digest, date)."""
    return dataclasses.replace(
        shown,
        name=listed.name,
        size_bytes=listed.size_bytes if listed.size_bytes is not None else shown.size_bytes,
        digest=listed.digest or shown.digest,
        modified_at=listed.modified_at or shown.modified_at,
        capabilities=shown.capabilities or listed.capabilities,
        context_length=shown.context_length or listed.context_length,
        family=shown.family or listed.family,
        quantization=shown.quantization or listed.quantization,
        parameter_size=shown.parameter_size or listed.parameter_size,
        remote_host=shown.remote_host or listed.remote_host,
    )


async def show_with_listing(engine: Engine, name: str) -> ModelInfo:
    """`show` plus what only the listing knows (size on disk): the same model shape as
    `list_models_detailed`, so an installed model never reads "size unknown"."""
    from aethel_lsp.engine.errors import EngineError
    from aethel_lsp.engine.ollama_store import canonical_name

    shown = await engine.show(name)
    try:
        listed = await engine.list_models()
    except EngineError:
        return shown
    wanted = canonical_name(name)
    for entry in listed:
        if canonical_name(entry.name) == wanted:
            return dataclasses.replace(merge_model_info(entry, shown), name=shown.name)
    return shown


async def collect(chunks: AsyncIterator[Chunk], model: str) -> GenerateResult:
    """Drain a stream into one result (the final chunk carries the metrics).

    The stream is closed on return, so its HTTP response is released at once rather
    than whenever the garbage collector finalizes the suspended generator.
    """
    from aethel_lsp.engine.errors import MalformedResponse

    parts: list[str] = []
    thinking: list[str] = []
    async with contextlib.aclosing(closing_stream(chunks)) as stream:
        async for chunk in stream:
            parts.append(chunk.text)
            thinking.append(chunk.thinking)
            if chunk.done:
                if chunk.metrics is None:
                    break
                return GenerateResult("".join(parts), chunk.metrics, "".join(thinking),
                                      chunk.context)
    raise MalformedResponse(f"The stream from model {model} ended before its final line.")


async def closing_stream(items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Wrap any async iterator in an async generator whose `aclose()` closes the inner one.

    Wrappers (auto, metered) use this with `contextlib.aclosing` so that closing the
    outer stream, or cancelling the task iterating it, closes the HTTP response below.
    """
    try:
        async for item in items:
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


async def close_all(engines: Sequence[Engine]) -> None:
    """`aclose()` each engine, all of them even if one fails; then raise the first failure."""
    failures = [r for r in await asyncio.gather(*(e.aclose() for e in engines),
                                                return_exceptions=True)
                if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
