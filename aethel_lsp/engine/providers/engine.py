"""`ProviderEngine`: one named provider as an `Engine` over its endpoints.

Each generation: refuse if the daily budget is spent (paid models only), wait for the
provider's own rate limit, then try endpoints best first.  Before the first token, an
endpoint that is offline, times out or answers 5xx is marked unhealthy and the next one
is tried at once; one that is busy (429/503/529) is retried after the server's
`retry-after` (or a jittered backoff), up to `maxRetries` times and never longer than the
first-token budget.  After the first token nothing is retried: text already shown
cannot be taken back.  Every reason is logged and kept, so the final metrics (and the
error when nothing served) say what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from aethel_lsp.config.provider_settings import ProviderSettings
from aethel_lsp.engine.base import Engine, close_all, closing_stream
from aethel_lsp.engine.errors import (
    EngineBusy,
    EngineError,
    EngineOffline,
    EngineTimeout,
    ServerError,
)
from aethel_lsp.engine.providers.endpoints import Endpoint, EndpointPool
from aethel_lsp.engine.providers.limits import (
    BudgetGuard,
    RateLimited,
    RateLimiter,
    announce_wait,
    estimate_tokens,
    retry_delay,
)
from aethel_lsp.engine.providers.prices import cost_of, price_of
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineKind,
    EngineStatus,
    EngineTimeouts,
    GenerateRequest,
    JsonDict,
    Metrics,
    ModelInfo,
    PullProgress,
    RunningModel,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
# Failures of one endpoint (not of the request): the next endpoint may well serve.
ENDPOINT_FAILURES = (EngineOffline, EngineTimeout, ServerError)


def endpoint_failure(exc: EngineError) -> bool:
    return isinstance(exc, ENDPOINT_FAILURES) and not isinstance(exc, EngineBusy)


class ProviderEngine(Engine):
    """A named provider: endpoints, limits, retries, prices, budget."""

    def __init__(self, settings: ProviderSettings, endpoints: list[Endpoint], *,
                 timeouts: EngineTimeouts | None = None, budget: BudgetGuard | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not endpoints:
            raise ValueError(f"provider {settings.name!r} has no endpoint")
        self.settings = settings
        self.name = settings.name
        self.kind: EngineKind = settings.kind
        self.pool = EndpointPool(endpoints)
        self.limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute,
                                   clock=clock)
        self.timeouts = timeouts or EngineTimeouts()
        self.budget = budget
        self._clock = clock

    @property
    def host(self) -> str:  # type: ignore[override]
        return self.pool.order(None)[0].url

    def __repr__(self) -> str:
        return f"ProviderEngine({self.name!r}, kind={self.kind!r}, hosts={self.hosts})"

    @property
    def hosts(self) -> list[str]:
        return [e.url for e in self.pool.endpoints]

    def is_paid(self, model: str) -> bool:
        price = price_of(self.settings, model)
        return price is not None and (price.input > 0 or price.output > 0)

    # -- model management: the first endpoint that answers ------------------------------
    async def _on_any(self, call: Callable[[Engine], Awaitable[T]]) -> T:
        last: EngineError | None = None
        for endpoint in self.pool.order(None):
            try:
                result = await call(endpoint.engine)
            except EngineError as exc:
                if not endpoint_failure(exc):
                    raise
                self.pool.failed(endpoint, str(exc))
                last = exc
                continue
            self.pool.succeeded(endpoint, None)
            return result
        assert last is not None
        raise last

    async def status(self) -> EngineStatus:
        healthy = [status for status in await self.pool.check() if status.available]
        if not healthy:
            errors = "; ".join(f"{e.url}: {e.last_error}" for e in self.pool.endpoints)
            return EngineStatus(False, self.host, self.kind, offline=True,
                                error=f"No endpoint of provider '{self.name}' answers ({errors}).")
        return dataclasses.replace(healthy[0], reason=f"provider '{self.name}': {len(healthy)} "
                                                      f"of {len(self.pool.endpoints)} endpoints "
                                                      "healthy")

    async def version(self) -> str:
        return await self._on_any(lambda engine: engine.version())

    async def list_models(self) -> list[ModelInfo]:
        return await self._on_any(lambda engine: engine.list_models())

    async def show(self, model: str) -> ModelInfo:
        return await self._on_any(lambda engine: engine.show(model))

    async def running(self) -> list[RunningModel]:
        return await self._on_any(lambda engine: engine.running())

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        return self.pool.order(None)[0].engine.pull(model)

    # -- generation ---------------------------------------------------------------------
    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        chars = len(request.prompt) + len(request.system or "") + len(request.suffix or "")
        return self._serve(lambda engine: engine.stream_generate(request), request.model,
                           estimate_tokens(chars, request.options.num_predict),
                           request.affinity)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        chars = sum(len(m.content) for m in request.messages)
        return self._serve(lambda engine: engine.stream_chat(request), request.model,
                           estimate_tokens(chars, request.options.num_predict),
                           request.affinity)

    async def _serve(self, start: Callable[[Engine], AsyncIterator[Chunk]], model: str,
                     estimate: int, affinity: str | None) -> AsyncIterator[Chunk]:
        if self.budget is not None and self.is_paid(model):
            # Off the loop: today's spend is a read of the statistics file, which first
            # waits for queued rows and may wait for another process's lock.
            await asyncio.to_thread(self.budget.check, f"'{self.name}'")
        deadline = self._clock() + self.timeouts.first_token_s
        await self.limiter.acquire(estimate, max_wait_s=self.timeouts.first_token_s,
                                   who=f"Provider '{self.name}'")
        reasons: list[str] = []
        for attempt in range(self.settings.max_retries + 1):
            busy: EngineBusy | None = None
            for endpoint in self.pool.order(affinity):
                outcome = _Attempt()
                try:
                    async for chunk in self._through(endpoint, start, model, outcome,
                                                     tuple(reasons)):
                        if chunk.done:  # before yielding: the reader may stop right here
                            self.pool.succeeded(endpoint, affinity)
                            self.limiter.settle(estimate, outcome.tokens)
                        yield chunk
                    return
                except EngineError as exc:
                    if outcome.started:
                        raise
                    reason = f"{endpoint.url}: {exc}"
                    log.info("provider %s: %s", self.name, reason)
                    reasons.append(reason)
                    if isinstance(exc, EngineBusy):
                        busy = exc
                    elif endpoint_failure(exc):
                        self.pool.failed(endpoint, str(exc))
                    else:
                        raise
            if busy is None or attempt == self.settings.max_retries:
                break
            await self._wait_before_retry(attempt, busy, deadline)
        raise self._gave_up(reasons, busy)

    async def _through(self, endpoint: Endpoint, start: Callable[[Engine], AsyncIterator[Chunk]],
                       model: str, outcome: _Attempt,
                       failures: tuple[str, ...]) -> AsyncIterator[Chunk]:
        """One endpoint's stream, counted as outstanding; the final metrics get cost."""
        endpoint.outstanding += 1
        try:
            async with contextlib.aclosing(closing_stream(start(endpoint.engine))) as chunks:
                async for chunk in chunks:
                    if chunk.text or chunk.thinking:
                        outcome.started = True
                    if chunk.done and chunk.metrics is not None:
                        outcome.started = True
                        metrics = dataclasses.replace(chunk.metrics, endpoint=endpoint.url,
                                                      endpoint_failures=failures)
                        chunk = dataclasses.replace(chunk, metrics=self._priced(metrics, model))
                        outcome.tokens = _total_tokens(chunk.metrics)
                    yield chunk
        finally:
            endpoint.outstanding -= 1

    def _priced(self, metrics: Metrics, model: str) -> Metrics:
        cost = cost_of(metrics, price_of(self.settings, model))
        if self.budget is not None:
            self.budget.add(cost)
        return dataclasses.replace(metrics, provider=self.name, cost_usd=cost)

    async def _wait_before_retry(self, attempt: int, busy: EngineBusy, deadline: float) -> None:
        delay = retry_delay(attempt, busy.retry_after_s)
        left = deadline - self._clock()
        if delay > left:
            asked = (f"asks to wait {busy.retry_after_s:.0f} s (retry-after)"
                     if busy.retry_after_s is not None else f"needs {delay:.0f} s of backoff")
            raise RateLimited(
                f"Provider '{self.name}' is busy (HTTP {busy.status}) and {asked}, longer than "
                f"the {max(left, 0):.0f} s left for a first token.", status=busy.status)
        announce_wait(delay)
        await asyncio.sleep(delay)

    def _gave_up(self, reasons: list[str], busy: EngineBusy | None) -> EngineError:
        summary = "; ".join(reasons[-4:])
        if busy is not None:
            return RateLimited(f"Provider '{self.name}' stayed busy after "
                               f"{self.settings.max_retries} retries ({summary}).",
                               status=busy.status)
        return EngineOffline(f"No endpoint of provider '{self.name}' could serve "
                             f"({summary}).", host=self.hosts[0])

    def to_json(self) -> JsonDict:
        """The `providers` entry of `status --json`."""
        return {"name": self.name, "kind": self.kind, "endpoints": self.pool.to_json()}

    async def aclose(self) -> None:
        await close_all([endpoint.engine for endpoint in self.pool.endpoints])


@dataclasses.dataclass
class _Attempt:
    started: bool = False  # a token (or the final line) arrived: no more failover
    tokens: int | None = None


def _total_tokens(metrics: Metrics | None) -> int | None:
    if metrics is None or metrics.prompt_tokens is None or metrics.tokens_generated is None:
        return None
    return metrics.prompt_tokens + metrics.tokens_generated
