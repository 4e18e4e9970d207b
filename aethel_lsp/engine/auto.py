"""`engine = "auto"`: Ollama when it answers, else the embedded engine, else a clear message.

The choice is re-made cheaply and often (a probe cached for `probe_ttl_s`, and again as
soon as a call finds Ollama offline), so starting or stopping Ollama while the editor
runs is picked up with no restart.  The embedded backend is imported lazily: it runs
llama.cpp through xllamacpp, an optional extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aethel_lsp.engine.base import Engine, closing_stream
from aethel_lsp.engine.errors import EngineError, EngineOffline, EngineTimeout, NoEngineAvailable
from aethel_lsp.engine.ollama import OllamaEngine
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineStatus,
    EngineTimeouts,
    GenerateRequest,
    ModelInfo,
    PullProgress,
    RunningModel,
)

T = TypeVar("T")
EmbeddedLoader = Callable[[], "tuple[Engine | None, str]"]
ProgressListener = Callable[[Any], None]
# From PyPI; from a clone of the repository it is `pip install -e '.[embedded]'`.
EMBEDDED_INSTALL_HINT = "pip install 'aethel-lsp[embedded]'"


def with_install_hint(why_not: str) -> str:
    """`why_not` as a sentence that ends with how to install the embedded engine, unless
    it already names a fix (the embedded module's own messages do)."""
    text = why_not.strip().rstrip(".")
    if any(fix in why_not for fix in (EMBEDDED_INSTALL_HINT, "embedded.modelPath", "pull")):
        return text + "."
    return f"{text}: install it with `{EMBEDDED_INSTALL_HINT}`."


def load_embedded_engine(
    model_path: str | None,
    threads: int = 0,
    *,
    progress: ProgressListener | None = None,
    timeouts: EngineTimeouts | None = None,
    require_model: bool = True,
) -> tuple[Engine | None, str]:
    """The embedded engine, or `(None, why-not)` when it is not installed or cannot run.

    `require_model=False` (`engine = "embedded"`) still builds the engine when it has no
    model yet, so that `pull` can fetch one and `status` can say how.
    """
    try:
        module = importlib.import_module("aethel_lsp.engine.embedded")
    except ImportError as exc:
        return None, f"the embedded engine is not installed ({exc})"
    ok, why = module.embedded_available(model_path)
    if not ok and (require_model or not module.xllamacpp_installed() or model_path):
        return None, str(why)
    engine = module.EmbeddedEngine(model_path, threads=threads, progress=progress,
                                   timeouts=timeouts)
    assert isinstance(engine, Engine)
    return engine, ""


def is_offline(exc: BaseException) -> bool:
    """Nothing answered at all (as opposed to an engine that answered with an error)."""
    if isinstance(exc, EngineOffline):
        return True
    return isinstance(exc, EngineTimeout) and exc.phase == "connect"


class AutoEngine(Engine):
    """Delegates to Ollama or to the embedded engine, whichever can serve right now."""

    def __init__(
        self,
        ollama: OllamaEngine,
        *,
        embedded_loader: EmbeddedLoader | None = None,
        probe_ttl_s: float = 2.0,
        probe_timeout_s: float = 1.0,
    ) -> None:
        self.kind = "ollama"
        self.host = ollama.host
        self.reason = ""
        self._ollama = ollama
        self._load_embedded = embedded_loader or (lambda: load_embedded_engine(None))
        self._embedded: tuple[Engine | None, str] | None = None
        self._probe_ttl_s = probe_ttl_s
        # A local Ollama answers /api/version in milliseconds even while busy; a short bound
        # keeps an unreachable remote host from delaying every call on the embedded engine.
        self._probe_timeout_s = min(probe_timeout_s, ollama.timeouts.connect_s)
        self._probed_at = float("-inf")
        self._ollama_up = False

    def __repr__(self) -> str:
        return f"AutoEngine(ollama={self._ollama!r}, serving={self.kind!r})"

    # -- choosing ---------------------------------------------------------------------

    async def current(self) -> Engine:
        """The engine that serves now (raises `NoEngineAvailable` when none can)."""
        if await self._ollama_answers():
            return self._serve(self._ollama, f"Ollama answered at {self._ollama.host}")
        embedded, why_not = self._embedded_engine()
        if embedded is not None:
            return self._serve(embedded, f"Ollama is not running at {self._ollama.host}; "
                                         "serving with the embedded engine")
        raise NoEngineAvailable(self._nothing_message(why_not), host=self._ollama.host)

    def invalidate(self) -> None:
        """Forget the last probe (a call just found Ollama offline)."""
        self._probed_at = float("-inf")

    async def _ollama_answers(self) -> bool:
        if time.monotonic() - self._probed_at < self._probe_ttl_s:
            return self._ollama_up
        try:
            await asyncio.wait_for(self._ollama.version(), self._probe_timeout_s)
            self._ollama_up = True
        except (EngineError, TimeoutError, asyncio.TimeoutError):  # distinct on 3.10
            self._ollama_up = False
        self._probed_at = time.monotonic()
        return self._ollama_up

    def _embedded_engine(self) -> tuple[Engine | None, str]:
        """Loaded once; a failure is retried on the next call, so a model fetched by
        `aethel-lsp pull` meanwhile is picked up without a restart."""
        if self._embedded is None or self._embedded[0] is None:
            self._embedded = self._load_embedded()
        return self._embedded

    def _serve(self, engine: Engine, reason: str) -> Engine:
        self.kind = engine.kind
        self.host = engine.host
        self.reason = reason
        return engine

    def _nothing_message(self, why_not: str) -> str:
        return (
            f"No engine is available. Ollama is not running at {self._ollama.host}: install "
            f"it from https://ollama.com and start it with `ollama serve`. "
            f"{with_install_hint(why_not)}"
        )

    # -- delegation -------------------------------------------------------------------

    async def _call(self, call: Callable[[Engine], Awaitable[T]]) -> T:
        """Run on the current engine; if Ollama turns out offline, choose again once."""
        engine = await self.current()
        try:
            return await call(engine)
        except EngineError as exc:
            if engine is not self._ollama or not is_offline(exc):
                raise
            self.invalidate()
            return await call(await self._fallback(exc))

    async def _fallback(self, exc: EngineError) -> Engine:
        try:
            return await self.current()
        except NoEngineAvailable as none:
            raise none from exc

    async def _stream(self, open_stream: Callable[[Engine], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Stream from the current engine; an offline Ollama before the first item falls back."""
        engine = await self.current()
        started = False
        try:
            async with contextlib.aclosing(closing_stream(open_stream(engine))) as items:
                async for item in items:
                    started = True
                    yield item
            return
        except EngineError as exc:
            if started or engine is not self._ollama or not is_offline(exc):
                raise
            self.invalidate()
            engine = await self._fallback(exc)
        async with contextlib.aclosing(closing_stream(open_stream(engine))) as items:
            async for item in items:
                yield item

    async def status(self) -> EngineStatus:
        """Which engine serves and why; never raises."""
        ollama_status = await self._ollama.status()
        self._ollama_up, self._probed_at = ollama_status.available, time.monotonic()
        if ollama_status.available:
            self._serve(self._ollama, f"Ollama answered at {self._ollama.host}")
            return dataclasses.replace(ollama_status, reason=self.reason)
        embedded, why_not = self._embedded_engine()
        if embedded is None:
            self.reason = self._nothing_message(why_not)
            return dataclasses.replace(ollama_status, error=self.reason, reason=self.reason)
        self._serve(embedded, f"Ollama is not running at {self._ollama.host}; serving with "
                              "the embedded engine")
        embedded_status = await embedded.status()
        return dataclasses.replace(embedded_status, reason=self.reason)

    async def version(self) -> str:
        return await self._call(lambda engine: engine.version())

    async def list_models(self) -> list[ModelInfo]:
        return await self._call(lambda engine: engine.list_models())

    async def show(self, model: str) -> ModelInfo:
        return await self._call(lambda engine: engine.show(model))

    async def running(self) -> list[RunningModel]:
        return await self._call(lambda engine: engine.running())

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self._stream(lambda engine: engine.stream_generate(request))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self._stream(lambda engine: engine.stream_chat(request))

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        return self._stream(lambda engine: engine.pull(model))

    async def aclose(self) -> None:
        await self._ollama.aclose()
        if self._embedded is not None and self._embedded[0] is not None:
            await self._embedded[0].aclose()

