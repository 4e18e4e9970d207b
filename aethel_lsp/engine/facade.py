"""A synchronous facade with the names people know from the earlier `LocalEngine`.

It is a thin layer over the async core, not a second implementation: a private event
loop runs in a background thread and every call is submitted to it.  What changed
from the earlier engine is honesty: token counts and speeds are the engine's own (no
`len(text)//4`), parameter counts are exact (no guessing from file size),
`check_ollama_available()` returns False instead of raising, and an offline Ollama is
never reported as a missing model.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import httpx

from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.metered import MeteredEngine
from aethel_lsp.engine.ollama import OllamaEngine
from aethel_lsp.engine.recommend import USE_CASES, recommend_all
from aethel_lsp.engine.stats import UsageStats
from aethel_lsp.engine.types import (
    EngineTimeouts,
    GenerateRequest,
    GenerationOptions,
    JsonDict,
    Metrics,
    ModelInfo,
    PullProgress,
)
from aethel_lsp.hosts import ollama_host_from_env

T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class OllamaModel:
    """An installed model (the earlier engine's shape, with exact numbers or `None`)."""

    name: str
    size_gb: float = 0.0
    parameters: int | None = None  # exact, from general.parameter_count; None when unknown
    context_length: int | None = None
    installed: bool = True
    family: str | None = None
    modified_at: str | None = None
    quantization: str | None = None
    capabilities: tuple[str, ...] = ()

    @classmethod
    def from_info(cls, info: ModelInfo) -> OllamaModel:
        return cls(
            name=info.name,
            size_gb=(info.size_bytes or 0) / 1024**3,
            parameters=info.parameters,
            context_length=info.context_length,
            family=info.family,
            modified_at=info.modified_at,
            quantization=info.quantization,
            capabilities=info.capabilities,
        )

    def to_dict(self) -> JsonDict:
        return {
            "name": self.name,
            "size_gb": self.size_gb,
            "parameters": self.parameters,
            "context_length": self.context_length,
            "installed": self.installed,
            "family": self.family,
            "modified_at": self.modified_at,
            "quantization": self.quantization,
            "capabilities": list(self.capabilities),
        }


@dataclass(frozen=True)
class LocalInferenceRequest:
    """One generation (the earlier engine's fields; `context` is gone, Ollama deprecated it)."""

    prompt: str
    model: str
    temperature: float = 0.7
    max_tokens: int = 2048
    stream: bool = False
    system: str | None = None
    suffix: str | None = None
    stop: tuple[str, ...] = ()
    keep_alive: str | float | None = None

    def to_generate_request(self) -> GenerateRequest:
        options = GenerationOptions(temperature=self.temperature, num_predict=self.max_tokens,
                                    stop=self.stop)
        return GenerateRequest(model=self.model, prompt=self.prompt, system=self.system,
                               suffix=self.suffix, options=options, keep_alive=self.keep_alive)


@dataclass(frozen=True)
class LocalInferenceResponse:
    """The generated text and what it cost, all from the engine's own accounting."""

    text: str
    model: str
    tokens_generated: int | None
    latency_ms: float | None
    tokens_per_second: float | None
    done: bool = True
    prompt_tokens: int | None = None
    time_to_first_token_ms: float | None = None
    load_ms: float | None = None
    done_reason: str | None = None
    metrics: Metrics | None = field(default=None, repr=False)

    @classmethod
    def from_result(cls, text: str, metrics: Metrics) -> LocalInferenceResponse:
        return cls(text=text, model=metrics.model, tokens_generated=metrics.tokens_generated,
                   latency_ms=metrics.latency_ms, tokens_per_second=metrics.tokens_per_second,
                   prompt_tokens=metrics.prompt_tokens,
                   time_to_first_token_ms=metrics.time_to_first_token_ms,
                   load_ms=metrics.load_ms, done_reason=metrics.done_reason, metrics=metrics)

    def to_json(self) -> JsonDict:
        """The CLI's generate shape."""
        return (self.metrics or Metrics(model=self.model)).to_json(self.text)


class _LoopThread:
    """A private asyncio loop in a daemon thread; sync callers submit coroutines to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aethel-engine",
                                        daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run to completion; if the caller is interrupted (Ctrl-C), cancel the coroutine."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """A sync iterator over an async one; closing it closes the async one (and its HTTP)."""
        try:
            while True:
                item = self.run(_next_or_end(items))
                if item is _END:
                    return
                yield item  # type: ignore[misc]
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None and self.loop.is_running():
                self.run(aclose())

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


async def _next_or_end(items: AsyncIterator[T]) -> T | object:
    return await anext(items, _END)


class LocalEngine:
    """The earlier engine's synchronous API on the async core (Ollama by default)."""

    def __init__(
        self,
        ollama_host: str | None = None,
        *,
        engine: Engine | None = None,
        stats: UsageStats | None = None,
        record_usage: bool = True,
        timeouts: EngineTimeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        inner = engine or OllamaEngine(ollama_host or ollama_host_from_env(),
                                       timeouts=timeouts, transport=transport)
        if stats is None and record_usage:
            stats = UsageStats()
        self.stats = stats
        self.engine = MeteredEngine(inner, stats)
        self.ollama_host = inner.host
        self.available_models: list[OllamaModel] = []
        self.last_metrics: Metrics | None = None
        self._loop = _LoopThread()

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections and stop the private loop."""
        if self._loop.loop.is_running():
            self._loop.run(self.engine.aclose())
        self._loop.close()

    def check_ollama_available(self) -> bool:
        """True when the engine answers; never raises."""
        try:
            return self._loop.run(self.engine.status()).available
        except Exception:
            return False

    def list_models(self) -> list[OllamaModel]:
        """Installed models with exact parameter counts and capabilities."""
        infos = self._loop.run(self.engine.list_models_detailed())
        self.available_models = [OllamaModel.from_info(info) for info in infos]
        return list(self.available_models)

    def get_model_info(self, model_name: str) -> OllamaModel:
        """Details of one model; `ModelNotFound` (with `ollama pull NAME`) when not installed."""
        return OllamaModel.from_info(self._loop.run(self.engine.show(model_name)))

    def generate(self, request: LocalInferenceRequest) -> LocalInferenceResponse:
        result = self._loop.run(self.engine.generate(request.to_generate_request()))
        self.last_metrics = result.metrics
        return LocalInferenceResponse.from_result(result.text, result.metrics)

    def stream_generate(self, request: LocalInferenceRequest) -> Iterator[str]:
        """Yield text as it arrives; `last_metrics` is set once the stream ends."""
        stream = self.engine.stream_generate(request.to_generate_request())
        for chunk in self._loop.iterate(stream):
            if chunk.text:
                yield chunk.text
            if chunk.done and chunk.metrics is not None:
                self.last_metrics = chunk.metrics

    def pull_model(self, model_name: str,
                   on_progress: Callable[[PullProgress], None] | None = None) -> PullProgress:
        """Download a model, reporting each progress line; returns the last one ("success")."""
        last = PullProgress(status="starting")
        for progress in self._loop.iterate(self.engine.pull(model_name)):
            last = progress
            if on_progress is not None:
                on_progress(progress)
        return last

    def get_recommended_models(self) -> dict[str, str]:
        """Use case -> model to use: the recommended one if installed, else the best installed
        one (see `recommend`); with no engine reachable, the recommended defaults."""
        try:
            models = self._loop.run(self.engine.list_models_detailed())
        except EngineError:
            return {use_case.name: use_case.default for use_case in USE_CASES}
        return {rec.use_case: rec.model or rec.recommended for rec in recommend_all(models)}

    def get_statistics(self) -> JsonDict:
        """Availability, installed models, and the usage statistics recorded so far."""
        available = self.check_ollama_available()
        if available:
            with contextlib.suppress(EngineError):
                self.list_models()
        return {
            "ollama_available": available,
            "host": self.ollama_host,
            "models_installed": len(self.available_models),
            "total_size_gb": sum(m.size_gb for m in self.available_models),
            "models": [m.to_dict() for m in self.available_models],
            "usage": self.stats.to_json() if self.stats is not None else {},
            "last": self.last_metrics.to_json() if self.last_metrics else None,
        }
