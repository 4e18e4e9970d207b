"""`DelegatingEngine`: an Engine that forwards everything to an inner engine.

The base of the engine wrappers (metering, inspection): a wrapper overrides only the
generation methods it observes, and everything else — model management, status, the
`kind`/`host` of the engine actually serving (an `AutoEngine` may switch) — stays the
inner engine's, in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineKind,
    EngineStatus,
    GenerateRequest,
    ModelInfo,
    PullProgress,
    RunningModel,
)


class DelegatingEngine(Engine):
    """Forwards every call to `inner`; subclasses override what they wrap."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    @property
    def kind(self) -> EngineKind:
        return self.inner.kind

    @kind.setter
    def kind(self, value: EngineKind) -> None:
        self.inner.kind = value

    @property
    def host(self) -> str:
        return self.inner.host

    @host.setter
    def host(self, value: str) -> None:
        self.inner.host = value

    @property
    def reason(self) -> str:
        """Why this engine serves (set by `AutoEngine`; empty for a fixed backend)."""
        return str(getattr(self.inner, "reason", ""))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def status(self) -> EngineStatus:
        return await self.inner.status()

    async def version(self) -> str:
        return await self.inner.version()

    async def list_models(self) -> list[ModelInfo]:
        return await self.inner.list_models()

    async def list_models_detailed(self) -> list[ModelInfo]:
        return await self.inner.list_models_detailed()

    async def show(self, model: str) -> ModelInfo:
        return await self.inner.show(model)

    async def running(self) -> list[RunningModel]:
        return await self.inner.running()

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        return self.inner.pull(model)

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self.inner.stream_generate(request)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self.inner.stream_chat(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
