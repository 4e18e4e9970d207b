"""`ProviderRouter`: the engine the server and the CLI talk to once providers are configured.

A model named `provider/model` goes to that provider; a bare name goes to the local engine
(today's `engine` setting), so flat settings keep working unchanged.  When `fallback`
lists the provider a request starts at, and that provider is offline, overloaded, over
its rate limit beyond the first-token budget, or over budget, the next one in the list
serves instead — never a provider the list does not name, so code goes nowhere the user
did not choose.  The final metrics say who served (`provider`, and `model` as
`provider/model`) and why the ones before did not (`fallback_from`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aethel_lsp.config.provider_settings import ProviderConfig
from aethel_lsp.config.providers import LOCAL, split_model
from aethel_lsp.engine.base import Engine, close_all, closing_stream
from aethel_lsp.engine.delegating import DelegatingEngine
from aethel_lsp.engine.errors import (
    EngineBusy,
    EngineError,
    EngineNotInstalled,
    EngineOffline,
    EngineTimeout,
    ModelNotFound,
    NoEngineAvailable,
    ServerError,
)
from aethel_lsp.engine.providers.engine import ProviderEngine
from aethel_lsp.engine.providers.limits import BudgetExceeded
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    FallbackNote,
    GenerateRequest,
    JsonDict,
    ModelInfo,
    PullProgress,
)
from aethel_lsp.paths import USER_CONFIG_DISPLAY

log = logging.getLogger(__name__)
# A provider that fails like this did not serve, and the next in `fallback` may.
UNAVAILABLE = (EngineOffline, EngineBusy, EngineTimeout, ServerError, BudgetExceeded,
               NoEngineAvailable, EngineNotInstalled)


@dataclass(frozen=True)
class Leg:
    """One provider of a request's chain, with the model it would serve."""

    provider: str  # "local" or a provider name
    engine: Engine
    model: str


class ProviderRouter(DelegatingEngine):
    """Routes `provider/model` names; walks the fallback chain; the local engine otherwise.

    Everything that is not a generation (status, models, pull) is the local engine's, as
    before; `provider(name)` gives the CLI's `--provider` the named one.
    """

    def __init__(self, local: Engine, providers: dict[str, ProviderEngine],
                 config: ProviderConfig) -> None:
        super().__init__(local)
        self.providers = providers
        self.config = config

    def provider(self, name: str) -> Engine:
        """The named provider (`local` = the local engine); unknown names are an error."""
        if name == LOCAL:
            return self.inner
        engine = self.providers.get(name)
        if engine is None:
            known = ", ".join([LOCAL, *self.providers])
            raise EngineError(f"There is no provider named {name!r} (known: {known}); "
                              f"providers are defined in {USER_CONFIG_DISPLAY}.")
        return engine

    def chain(self, model: str) -> list[Leg]:
        """Who may serve `model`, in order: its provider, then the rest of `fallback`."""
        name, bare = split_model(model, self.config)
        first = name or LOCAL
        legs = [Leg(first, self.provider(first), bare)]
        if first in self.config.fallback:
            after = self.config.fallback[self.config.fallback.index(first) + 1:]
            for other in after:
                settings = self.config.get(other)
                other_model = settings.model if settings is not None and settings.model else bare
                legs.append(Leg(other, self.provider(other), other_model))
        return legs

    # -- generation ---------------------------------------------------------------------
    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self._walk(request.model, lambda leg: leg.engine.stream_generate(
            dataclasses.replace(request, model=leg.model)))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self._walk(request.model, lambda leg: leg.engine.stream_chat(
            dataclasses.replace(request, model=leg.model)))

    async def _walk(self, model: str,
                    start: Callable[[Leg], AsyncIterator[Chunk]]) -> AsyncIterator[Chunk]:
        notes: list[FallbackNote] = []
        first_error: EngineError | None = None
        for index, leg in enumerate(self.chain(model)):
            started = False
            try:
                async with contextlib.aclosing(closing_stream(start(leg))) as chunks:
                    async for chunk in chunks:
                        started = started or bool(chunk.text or chunk.thinking or chunk.done)
                        yield self._labelled(chunk, leg, notes)
                return
            except EngineError as exc:
                skippable = isinstance(exc, UNAVAILABLE) or (
                    index > 0 and isinstance(exc, ModelNotFound))
                if started or not skippable:
                    raise
                log.info("fallback: %s did not serve: %s", leg.provider, exc)
                notes.append(FallbackNote(leg.provider, str(exc)))
                first_error = first_error or exc
        assert first_error is not None
        if len(notes) > 1:
            first_error.message = "No provider of the fallback chain could serve: " + "; ".join(
                f"{note.provider}: {note.reason.rstrip('.')}" for note in notes) + "."
        raise first_error

    @staticmethod
    def _labelled(chunk: Chunk, leg: Leg, notes: list[FallbackNote]) -> Chunk:
        if not chunk.done or chunk.metrics is None:
            return chunk
        served = leg.model if leg.provider == LOCAL else f"{leg.provider}/{leg.model}"
        metrics = dataclasses.replace(chunk.metrics, model=served,
                                      provider=chunk.metrics.provider or leg.provider,
                                      fallback_from=tuple(notes))
        return dataclasses.replace(chunk, metrics=metrics)

    # -- model management: local, or the named provider -----------------------------------
    async def show(self, model: str) -> ModelInfo:
        name, bare = split_model(model, self.config)
        if name is None:
            return await self.inner.show(model)
        info = await self.provider(name).show(bare)
        return dataclasses.replace(info, name=model)

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        name, bare = split_model(model, self.config)
        return self.inner.pull(model) if name is None else self.provider(name).pull(bare)

    async def providers_json(self, *, check: bool = True) -> list[JsonDict]:
        """`status --json`'s `providers`: each with kind, endpoints and their health."""
        if check:  # all at once: each check may wait for its connect timeout
            await asyncio.gather(*(engine.pool.check() for engine in self.providers.values()))
        out: list[JsonDict] = []
        for engine in self.providers.values():
            entry = engine.to_json()
            entry["inFallback"] = engine.name in self.config.fallback
            out.append(entry)
        return out

    async def aclose(self) -> None:
        """Close every engine, even when one of them fails to close (the first failure is
        raised once all have been tried)."""
        await close_all([self.inner, *self.providers.values()])


def router_of(engine: Engine) -> ProviderRouter | None:
    """The `ProviderRouter` under any wrappers (metering, inspection), if there is one."""
    current: Engine | None = engine
    while current is not None:
        if isinstance(current, ProviderRouter):
            return current
        inner = getattr(current, "inner", None)
        current = inner if isinstance(inner, Engine) else None
    return None
