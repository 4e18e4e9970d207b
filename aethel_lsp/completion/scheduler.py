"""Inline completion without waste: who gets an answer, when, and from which stream.

This module knows nothing about LSP (no pygls): the inline-completion feature turns each
`textDocument/inlineCompletion` request into an `InlineRequest` and awaits
`CompletionScheduler.complete()`, which always returns an `Outcome` (empty text means
"no suggestion").  The rules, all per document ("lane"):

* **Latest wins.** A new request answers the previous pending one *at once* with an
  empty result (never dropped: every LSP request gets exactly one response).
* **Typed-through cache.** A small LRU keeps shown suggestions with an anchor (the text
  around the cursor when they were made).  If the user has since typed the start of
  one, the rest is served with no engine request at all.
* **Stream reuse.** If the upstream generation of a superseded request is still running
  and the new request's prefix extends its prompt by text the model has produced (or
  may still produce), the new request adopts that stream instead of starting another.
  Otherwise the stream is closed at once, so the GPU stops working on text nobody sees.
* **Adaptive debounce.** Automatic requests wait a little before asking the engine;
  the wait follows the user's typing rhythm (between `debounce_min_ms` and
  `debounce_max_ms`), so a burst of keystrokes costs no upstream request at all.
* **Time budget.** `num_predict` caps the answer; at the deadline the complete lines
  available so far are returned, and the stream keeps running (for the cache) until
  the next request decides its fate.  An answer that a stop rule has already settled
  is returned at once and its stream closed.
* **Model loads are never cancelled by a keystroke.**  While a cold model has not
  produced its first token, superseding its request does not close the stream (which
  would abort the load in Ollama's scheduler and make the next request load again);
  the stream is closed as soon as the first token shows the model is loaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aethel_lsp.completion.cache import Anchor, CacheEntry, CompletionCache
from aethel_lsp.completion.debounce import TypingRhythm
from aethel_lsp.completion.generation import Generation, may_settle
from aethel_lsp.completion.requests import (
    SUPERSEDED,
    InlineRequest,
    Outcome,
    SchedulerSettings,
    Source,
)
from aethel_lsp.config import Settings
from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import EngineError, EngineOffline
from aethel_lsp.engine.types import (
    Chunk,
    GenerationOptions,
    KeepAlive,
    ModelInfo,
    keep_alive_seconds,
)
from aethel_lsp.prompts.context import (
    ContextBudget,
    SnippetIndex,
    build_context,
)
from aethel_lsp.prompts.fim import (
    FimMode,
    FimPlan,
    build_chat_request,
    build_generate_request,
    choose_mode,
    plan_for_empty_prefix,
)
from aethel_lsp.prompts.postprocess import (
    PostprocessContext,
    clean,
    complete_lines,
)

ORPHAN_GRACE_S = 0.05  # a cancelled request's stream waits this long for a successor
OFFLINE_BACKOFF_S = 2.0  # after "engine offline", completions wait this long to retry


# --- the scheduler --------------------------------------------------------------------


@dataclass
class _Lane:
    """Latest-wins state of one (document, lane)."""

    seq: int = 0
    pending: asyncio.Future[Outcome] | None = None
    generation: Generation | None = None
    rhythm: TypingRhythm = field(default_factory=TypingRhythm)
    orphan_timer: asyncio.TimerHandle | None = None


@dataclass
class SchedulerStats:
    requests: int = 0
    cache_hits: int = 0
    reused: int = 0
    upstream_requests: int = 0
    superseded: int = 0
    streams_closed: int = 0
    loads_protected: int = 0


class CompletionScheduler:
    """Runs inline completions against an engine under the rules in the module doc."""

    def __init__(
        self,
        engine: Callable[[], Engine | None],
        settings: Callable[[], SchedulerSettings],
        *,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_capacity: int = 64,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._log = log or (lambda _message: None)
        self._clock = clock
        self.cache = CompletionCache(cache_capacity)
        self.stats = SchedulerStats()
        self.snippets = SnippetIndex()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._plans: dict[tuple[str, str], FimPlan] = {}  # (engine kind, model) -> plan
        self._planned_engine: Engine | None = None  # the engine `_plans` were asked of
        self._warm: dict[str, float] = {}  # model -> last time it answered
        self._background: set[Generation] = set()
        self._empty_prefix_logged: set[str] = set()
        self._offline_until = 0.0  # no upstream request before this time (engine offline)
        self._offline_message = ""
        self.generations: list[Generation] = []  # recent ones, for tests and the bench

    # -- public API --------------------------------------------------------------

    async def complete(self, request: InlineRequest) -> Outcome:
        """Answer one request; never raises except for cancellation of the caller."""
        started = self._clock()
        settings = self._settings()
        lane = self._lanes.setdefault((request.uri, request.lane), _Lane())
        lane.rhythm.note(started)
        self.stats.requests += 1
        # 1. Latest wins: answer the previous request of this lane now.
        if lane.pending is not None and not lane.pending.done():
            lane.pending.set_result(SUPERSEDED)
            self.stats.superseded += 1
        if lane.orphan_timer is not None:
            lane.orphan_timer.cancel()
            lane.orphan_timer = None
        lane.seq += 1
        seq = lane.seq
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        lane.pending = fut
        try:
            return await self._complete(request, settings, lane, fut, started)
        except asyncio.CancelledError:
            if lane.seq == seq:
                self._orphan(lane)
            raise
        finally:
            if lane.pending is fut:
                lane.pending = None

    def forget_document(self, uri: str) -> None:
        """The document was closed: close its streams and drop its cache entries."""
        for key in [k for k in self._lanes if k[0] == uri]:
            lane = self._lanes.pop(key)
            if lane.pending is not None and not lane.pending.done():
                lane.pending.set_result(SUPERSEDED)
            if lane.generation is not None:
                self._release(lane.generation)
        self.cache.forget(uri)

    def document_uris(self) -> list[str]:
        return list(dict.fromkeys(uri for uri, _lane in self._lanes))

    def forget_models(self) -> None:
        """Settings or engine changed: FIM plans and warmth must be found again."""
        self._plans.clear()
        self._warm.clear()

    async def aclose(self) -> None:
        for lane in self._lanes.values():
            if lane.generation is not None:
                lane.generation.close()
        for generation in list(self._background):
            generation.close()

    # -- the steps ---------------------------------------------------------------

    async def _complete(
        self,
        request: InlineRequest,
        settings: SchedulerSettings,
        lane: _Lane,
        fut: asyncio.Future[Outcome],
        started: float,
    ) -> Outcome:
        model = settings.model
        if not model:
            self._drop_generation(lane, None)
            return Outcome("", Source.EMPTY, message="No model is configured for completion.")
        # 2. Typed-through: the user is typing a suggestion we already have.
        hit = self.cache.lookup(request.uri, model, request.text, request.offset)
        running = lane.generation
        typed = self._extends(running, request, model)
        if running is not None and typed is None:
            self._drop_generation(lane, running)
        if hit is not None:
            self.stats.cache_hits += 1
            return Outcome(hit, Source.CACHE, self._ms(started))
        # 3. Adopt the running stream if this request extends its prompt.
        if running is not None and typed is not None and lane.generation is running:
            outcome = await self._answer_from(running, typed, request, settings, fut, started)
            if outcome is not None:
                if outcome.source is Source.FRESH:
                    outcome = Outcome(
                        outcome.text,
                        Source.REUSED,
                        outcome.elapsed_ms,
                        outcome.mode,
                        outcome.partial,
                        outcome.message,
                        outcome.metrics,
                    )
                    self.stats.reused += 1
                return outcome
            self._drop_generation(lane, running)  # diverged from what the user typed
        # 4. Debounce automatic requests; a newer request answers us meanwhile.
        if not request.invoked:
            delay = lane.rhythm.debounce_s(settings.debounce_min_ms, settings.debounce_max_ms)
            done, _ = await asyncio.wait({fut}, timeout=delay)
            if done:
                return fut.result()
        try:
            engine = self._engine()
        except EngineError as exc:  # e.g. the configured engine cannot be built
            return Outcome("", Source.ERROR, self._ms(started), message=str(exc))
        if engine is None:
            return Outcome("", Source.EMPTY, self._ms(started), message="No engine is available.")
        # 5. A new upstream request (unless the engine was just found offline).
        if self._clock() < self._offline_until:
            return Outcome("", Source.EMPTY, self._ms(started), message=self._offline_message)
        deadline = started + settings.deadline_ms / 1000.0
        plan = await self._plan(engine, model, max(0.0, deadline - self._clock()))
        if fut.done():
            return fut.result()
        generation = self._start(engine, plan, request, settings)
        lane.generation = generation
        outcome = await self._answer_from(generation, "", request, settings, fut, started)
        return outcome if outcome is not None else Outcome("", Source.EMPTY, self._ms(started))

    def _extends(
        self, running: Generation | None, request: InlineRequest, model: str
    ) -> str | None:
        """What the user typed since `running`'s prompt, if it may still be what the
        model is writing; None if `running` cannot serve this request."""
        if running is None or running.closed or running.model != model:
            return None
        if running.finished and not running.completed:
            return None
        typed = running.anchor.typed_since(request.text, request.offset)
        if typed is None:
            return None
        seen = running.visible()
        if seen.startswith(typed) or (typed.startswith(seen) and not running.finished):
            return typed
        return None

    async def _answer_from(
        self,
        generation: Generation,
        typed: str,
        request: InlineRequest,
        settings: SchedulerSettings,
        fut: asyncio.Future[Outcome],
        started: float,
    ) -> Outcome | None:
        """Wait until `generation` settles the answer, the deadline passes, or a newer
        request supersedes us.  None: the stream diverged from what the user typed."""
        deadline = started + settings.deadline_ms / 1000.0
        post = _post_context(request)
        while True:
            seen = generation.visible()
            if not seen.startswith(typed):
                if typed.startswith(seen) and not generation.finished:
                    pass  # the model has not caught up with the typing yet
                else:
                    return None
            rest = seen[len(typed) :] if seen.startswith(typed) else None
            # Cleaning is only needed at the end, at the deadline, or when the new text
            # could trigger a stop rule (a newline, a special token, a fence).
            cleaned = (
                clean(rest, post, chat=generation.chat)
                if rest is not None and (generation.finished or may_settle(rest))
                else None
            )
            if generation.finished:
                if generation.error is not None:
                    return Outcome(
                        "",
                        Source.ERROR,
                        self._ms(started),
                        generation.plan.mode,
                        message=str(generation.error),
                    )
                text = cleaned.text if cleaned is not None else ""
                return Outcome(
                    text,
                    Source.FRESH,
                    self._ms(started),
                    generation.plan.mode,
                    metrics=generation.metrics,
                )
            if cleaned is not None and cleaned.final:
                # A stop rule settled the answer: the rest of the stream is waste.
                generation.close()
                self.stats.streams_closed += 1
                self._cache_generation(generation, typed, cleaned.text, request)
                return Outcome(cleaned.text, Source.FRESH, self._ms(started), generation.plan.mode)
            remaining = deadline - self._clock()
            if remaining <= 0:
                partial = ""
                if rest is not None:
                    lines = complete_lines(rest)
                    partial = clean(lines, post, chat=generation.chat).text if lines else ""
                return Outcome(
                    partial, Source.FRESH, self._ms(started), generation.plan.mode, partial=True
                )
            # Still catching up with what the user typed: every token matters.
            changed = generation.changed(every_token=rest is None)
            waiting: set[asyncio.Future[Any]] = {fut, changed}
            try:
                await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
            if fut.done():
                return fut.result()

    async def _plan(self, engine: Engine, model: str, budget_s: float) -> FimPlan:
        """The FIM plan of `model`, from `/api/show` (cached per model and engine kind,
        until the engine is rebuilt).  The lookup is bounded by the request's deadline;
        without an answer the mode is guessed from the name for this request only."""
        if engine is not self._planned_engine:  # new settings: ask the new engine
            self.forget_models()
            self._planned_engine = engine
        key = (engine.kind, model)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        info: ModelInfo | None
        try:
            info = await asyncio.wait_for(engine.show(model), timeout=budget_s)
        except (EngineError, asyncio.TimeoutError) as exc:
            info = None
            reason = str(exc) or "no answer before the deadline"
            self._log(
                f"Could not read the capabilities of {model} ({reason}); guessing from its name."
            )
        plan = choose_mode(model, info, continuation=engine.kind == "embedded")
        if info is not None:
            self._plans[key] = plan
        self._log(plan.describe())
        return plan

    def _start(
        self, engine: Engine, plan: FimPlan, request: InlineRequest, settings: SchedulerSettings
    ) -> Generation:
        documents = request.documents() if (request.documents and settings.other_documents) else ()
        context = build_context(
            uri=request.uri,
            language_id=request.language_id,
            before=request.text[: request.offset],
            after=request.text[request.offset :],
            budget=ContextBudget(
                settings.prefix_tokens, settings.suffix_tokens, settings.other_documents
            ),
            documents=documents,
            index=self.snippets,
        )
        if plan.mode in (FimMode.NATIVE, FimMode.CONTINUE) and not context.prompt.prefix:
            plan = plan_for_empty_prefix(plan)
            if plan.model not in self._empty_prefix_logged:
                self._empty_prefix_logged.add(plan.model)
                self._log(plan.describe())
        options = GenerationOptions(
            temperature=settings.temperature,
            num_predict=settings.max_tokens,
            num_ctx=settings.num_ctx,
        )
        chunks: AsyncIterator[Chunk]
        if plan.mode is FimMode.CHAT:
            chunks = engine.stream_chat(
                build_chat_request(plan, context.prompt, options, settings.keep_alive)
            )
        else:
            chunks = engine.stream_generate(
                build_generate_request(plan, context.prompt, options, settings.keep_alive)
            )
        self.stats.upstream_requests += 1
        loading = self._is_cold(plan.model, settings.keep_alive)
        generation = Generation(
            uri=request.uri,
            lane=request.lane,
            model=plan.model,
            plan=plan,
            anchor=Anchor.of(request.text, request.offset),
            post=_post_context(request),
            chunks=chunks,
            loading=loading,
            clock=self._clock,
            on_first_token=self._first_token,
            on_finish=self._finished,
        )
        self.generations.append(generation)
        del self.generations[:-256]
        return generation

    # -- stream lifecycle --------------------------------------------------------

    def _drop_generation(self, lane: _Lane, generation: Generation | None) -> None:
        generation = generation or lane.generation
        if lane.generation is generation:
            lane.generation = None
        if generation is not None:
            self._release(generation)

    def _release(self, generation: Generation) -> None:
        if generation.finished:
            return
        if generation.release():
            self.stats.streams_closed += 1
        else:
            self.stats.loads_protected += 1
            self._background.add(generation)
            self._log(
                f"Keeping the request to {generation.model} open until the model has loaded "
                "(closing it would abort the load)."
            )

    def _orphan(self, lane: _Lane) -> None:
        """The latest request was cancelled by the client.  Editors cancel *before*
        sending the next request, so give the successor a moment to adopt the stream."""
        generation = lane.generation
        if generation is None or generation.finished:
            return

        def close_if_still_orphaned() -> None:
            lane.orphan_timer = None
            if lane.generation is generation and (lane.pending is None or lane.pending.done()):
                self._drop_generation(lane, generation)

        lane.orphan_timer = asyncio.get_running_loop().call_later(
            ORPHAN_GRACE_S, close_if_still_orphaned
        )

    def _first_token(self, generation: Generation) -> None:
        self._warm[generation.model] = self._clock()
        if generation.close_on_first_token:
            self.stats.streams_closed += 1

    def _finished(self, generation: Generation) -> None:
        self._background.discard(generation)
        if isinstance(generation.error, EngineOffline):
            # Do not knock on a closed door at every keystroke; the next request after
            # the pause tries again, so a restarted Ollama is picked up at once.
            self._offline_until = self._clock() + OFFLINE_BACKOFF_S
            self._offline_message = str(generation.error)
        if generation.completed:
            self._warm[generation.model] = self._clock()
            cleaned = clean(generation.visible(), generation.post, chat=generation.chat)
            self.cache.put(
                CacheEntry(generation.uri, generation.model, generation.anchor, cleaned.text)
            )
        lane = self._lanes.get((generation.uri, generation.lane))
        if lane is not None and lane.generation is generation and not generation.completed:
            lane.generation = None

    def _cache_generation(
        self, generation: Generation, typed: str, text: str, request: InlineRequest
    ) -> None:
        anchor = Anchor.of(request.text, request.offset) if typed else generation.anchor
        self.cache.put(CacheEntry(generation.uri, generation.model, anchor, text))

    def _is_cold(self, model: str, keep_alive: KeepAlive) -> bool:
        last = self._warm.get(model)
        if last is None:
            return True
        ttl = keep_alive_seconds(keep_alive)
        return ttl is not None and self._clock() - last > ttl

    def _ms(self, started: float) -> float:
        return (self._clock() - started) * 1000.0


def _post_context(request: InlineRequest) -> PostprocessContext:
    text, offset = request.text, request.offset
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    if line_end == -1:
        line_end = len(text)
    return PostprocessContext(
        language_id=request.language_id,
        line_prefix=text[line_start:offset],
        line_suffix=text[offset:line_end],
        suffix=text[offset : offset + 2048],
    )


def scheduler_settings(settings: Settings, model: str) -> SchedulerSettings:
    """The scheduler's view of the `completion` settings.

    `num_ctx` is the actions' `contextSize` on purpose: Ollama reloads a model whose
    `num_ctx` changes, so completion and actions must ask for the same one.
    """
    c = settings.completion
    return SchedulerSettings(
        model=model,
        max_tokens=c.max_tokens,
        deadline_ms=c.deadline_ms,
        debounce_min_ms=c.debounce_min_ms,
        debounce_max_ms=c.debounce_max_ms,
        prefix_tokens=c.prefix_tokens,
        suffix_tokens=c.suffix_tokens,
        other_documents=c.other_documents,
        temperature=c.temperature,
        keep_alive=settings.keep_alive_value,
        num_ctx=settings.context_size,
    )


class ModelChoice:
    """The completion model when none is configured: found once (it costs a request to
    the engine), then remembered until the settings change."""

    def __init__(self) -> None:
        self._key: object = None
        self._model = ""

    async def get(self, configured: str, key: object, find: Callable[[], Awaitable[str]]) -> str:
        if configured:
            return configured
        if self._key != key or not self._model:
            self._model = await find()
            self._key = key
        return self._model
