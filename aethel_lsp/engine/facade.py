"""A synchronous facade with the public names of the earlier `LocalEngine` (issue 20).

Programs written for Aethel's earlier `aethel/ai/local_engine.py` run on it with only
their import changed: the same classes, fields, methods, exception names and the
`get_local_engine()` singleton.  It is a thin layer over the async core, not a second
implementation: a private event loop runs in a background thread and every call is
submitted to it.

What changed is honesty, and each difference is in docs/engines.md ("Migrating from the
earlier LocalEngine"): token counts and speeds are the engine's own (never
`len(text)//4`), parameter counts are exact (never guessed from the file size), an
offline engine is never reported as a missing model, and `check_ollama_available()`
answers False instead of raising.  Where the earlier fields were numbers they still are:
a count the engine did not report becomes 0, and `response.metrics` keeps `None`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import httpx

from aethel_lsp.engine.base import Engine, show_with_listing
from aethel_lsp.engine.errors import EngineError, ModelNotFoundError, OllamaNotAvailableError
from aethel_lsp.engine.metered import MeteredEngine
from aethel_lsp.engine.ollama import OllamaEngine
from aethel_lsp.engine.recommend import USE_CASES, normalize_name, recommend_all
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

__all__ = [
    "LocalEngine",
    "LocalInferenceRequest",
    "LocalInferenceResponse",
    "ModelNotFoundError",
    "OllamaModel",
    "OllamaNotAvailableError",
    "get_local_engine",
]

T = TypeVar("T")
_END = object()
GIB = 1024**3  # the earlier engine's "GB" (and ours, so that sizes compare)


@dataclass
class OllamaModel:
    """An installed model: the earlier engine's fields, with exact numbers.

    The defaults are the earlier ones.  Filled from the engine, a number it does not
    report is 0 (never a guess) and an unknown family is "unknown".
    """

    name: str
    size_gb: float = 0.0  # size on disk in GiB (bytes / 1024**3), as before
    parameters: int = 0  # exact, from general.parameter_count
    context_length: int = 4096  # the trained window (general metadata), read from the engine
    installed: bool = False
    family: str = "unknown"  # the architecture family Ollama reports, e.g. "qwen2"
    modified_at: str | None = None
    quantization: str | None = None
    capabilities: tuple[str, ...] = ()

    @classmethod
    def from_info(cls, info: ModelInfo) -> OllamaModel:
        return cls(
            name=info.name,
            size_gb=(info.size_bytes or 0) / GIB,
            parameters=info.parameters or 0,
            context_length=info.context_length or 0,
            installed=True,
            family=info.family or "unknown",
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


@dataclass
class LocalInferenceRequest:
    """One generation: the earlier fields in their order, then ours.

    `context` is the token state of an earlier Ollama reply (`response.context`), sent
    as Ollama's `/api/generate` `context`; the OpenAI-compatible and embedded backends
    have no such field and generate without it.  `stream` is accepted and, as before,
    ignored: `generate()` returns a whole reply and `stream_generate()` streams.
    """

    prompt: str
    model: str
    temperature: float = 0.7
    max_tokens: int = 2048
    stream: bool = False
    system: str | None = None
    context: list[int] | None = None
    suffix: str | None = None
    stop: tuple[str, ...] = ()
    keep_alive: str | float | None = None

    def to_generate_request(self) -> GenerateRequest:
        options = GenerationOptions(temperature=self.temperature, num_predict=self.max_tokens,
                                    stop=tuple(self.stop))
        return GenerateRequest(model=self.model, prompt=self.prompt, system=self.system,
                               suffix=self.suffix, options=options, keep_alive=self.keep_alive,
                               context=tuple(self.context or ()))


@dataclass
class LocalInferenceResponse:
    """The generated text and what it cost, all from the engine's own accounting.

    `tokens_generated`, `latency_ms` and `tokens_per_second` are numbers, as before; one
    the engine did not report (an OpenAI-compatible server without `usage`) is 0, and
    `metrics` (the same figures with `None` for "not reported") tells the two apart.
    `context` is Ollama's token state to continue from; [] where the backend has none.
    """

    text: str
    model: str
    tokens_generated: int
    latency_ms: float
    tokens_per_second: float
    context: list[int] | None = None
    done: bool = True
    prompt_tokens: int | None = None
    time_to_first_token_ms: float | None = None
    load_ms: float | None = None
    done_reason: str | None = None
    metrics: Metrics | None = field(default=None, repr=False)

    @classmethod
    def from_result(cls, text: str, metrics: Metrics,
                    context: tuple[int, ...] = ()) -> LocalInferenceResponse:
        return cls(text=text, model=metrics.model,
                   tokens_generated=metrics.tokens_generated or 0,
                   latency_ms=metrics.latency_ms or 0.0,
                   tokens_per_second=metrics.tokens_per_second or 0.0,
                   context=list(context), prompt_tokens=metrics.prompt_tokens,
                   time_to_first_token_ms=metrics.time_to_first_token_ms,
                   load_ms=metrics.load_ms, done_reason=metrics.done_reason, metrics=metrics)

    def to_dict(self) -> JsonDict:
        """The earlier engine's keys (snake_case), then ours."""
        return {
            "text": self.text,
            "model": self.model,
            "tokens_generated": self.tokens_generated,
            "latency_ms": self.latency_ms,
            "tokens_per_second": self.tokens_per_second,
            "context": self.context,
            "done": self.done,
            "prompt_tokens": self.prompt_tokens,
            "time_to_first_token_ms": self.time_to_first_token_ms,
            "load_ms": self.load_ms,
            "done_reason": self.done_reason,
        }

    def to_json(self) -> JsonDict:
        """The CLI's generate shape (camelCase, `None` for what was not reported)."""
        return (self.metrics or Metrics(model=self.model)).to_json(self.text)


class _LoopThread:
    """A private asyncio loop in a daemon thread; sync callers submit coroutines to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="aethel-engine", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run to completion; if the caller is interrupted (Ctrl-C), cancel the coroutine."""
        if not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("This LocalEngine is closed; create a new one.")
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
            if aclose is not None and self._thread.is_alive():
                self.run(aclose())

    def shutdown(self, engine: Engine, *, wait: bool = False) -> None:
        """Close `engine`'s connections, then stop the loop (which then closes itself).

        Without `wait` nothing blocks: a finalizer may run in any thread, even one that
        holds an import lock the loop needs, so it only hands the work to the loop.
        """
        try:
            done = asyncio.run_coroutine_threadsafe(engine.aclose(), self.loop)
        except RuntimeError:  # the loop is already closed
            return
        done.add_done_callback(lambda _: self.loop.call_soon_threadsafe(self.loop.stop))
        if not wait or threading.current_thread() is self._thread:
            return
        with contextlib.suppress(Exception):
            done.result()
        self._thread.join(timeout=5)


async def _next_or_end(items: AsyncIterator[T]) -> T | object:
    return await anext(items, _END)


class LocalEngine:
    """The earlier engine's synchronous API on the async core (Ollama by default).

    `ollama_host` defaults to `OLLAMA_HOST` (else 127.0.0.1:11434).  Any other backend
    can be given as `engine`.  Connections and the private loop are released by
    `close()`, by `with LocalEngine() as engine:`, or when the object is collected.
    """

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
        # When collected unclosed (the earlier engine had no close()); not a method of
        # self, since a finalizer that referenced self would keep it alive.
        self._finalizer = weakref.finalize(self, self._loop.shutdown, self.engine)

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections and stop the private loop (idempotent)."""
        if self._finalizer.detach() is not None:
            self._loop.shutdown(self.engine, wait=True)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def check_ollama_available(self) -> bool:
        """True when the engine answers; never raises (the earlier one raised when offline)."""
        try:
            return self._loop.run(self.engine.status()).available
        except Exception:
            return False

    def list_models(self) -> list[OllamaModel]:
        """Installed models with exact sizes, parameter counts and capabilities.

        Raises `OllamaNotAvailableError` (`EngineUnavailable`) when the engine is offline.
        """
        infos = self._loop.run(self.engine.list_models_detailed())
        self.available_models = [OllamaModel.from_info(info) for info in infos]
        return list(self.available_models)

    def get_model_info(self, model_name: str) -> OllamaModel:
        """Details of one model; `ModelNotFoundError` (with `ollama pull NAME`) if missing."""
        return OllamaModel.from_info(self._loop.run(show_with_listing(self.engine, model_name)))

    def _is_model_installed(self, model_name: str) -> bool:
        """Is `model_name` installed (`llama3` and `llama3:latest` are one model)?

        Private in the earlier engine too, but its callers use it; asks the engine each
        time (the earlier one trusted a list cached on first use) and, as before, says
        False instead of raising when the engine cannot answer.
        """
        try:
            listed = self._loop.run(self.engine.list_models())
        except EngineError:
            return False
        wanted = normalize_name(model_name)
        return any(normalize_name(info.name) == wanted for info in listed)

    def generate(self, request: LocalInferenceRequest) -> LocalInferenceResponse:
        """The whole reply; `ModelNotFoundError` if the model is missing, and
        `OllamaNotAvailableError` if the engine cannot answer (never the other way round)."""
        result = self._loop.run(self.engine.generate(request.to_generate_request()))
        self.last_metrics = result.metrics
        return LocalInferenceResponse.from_result(result.text, result.metrics, result.context)

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


_local_engine: LocalEngine | None = None
_local_engine_lock = threading.Lock()


def get_local_engine() -> LocalEngine:
    """The process-wide `LocalEngine()`, created on first use (a new one if it was closed)."""
    global _local_engine
    with _local_engine_lock:
        if _local_engine is None or _local_engine.closed:
            _local_engine = LocalEngine()
        return _local_engine
