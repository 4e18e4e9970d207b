"""Ask several models for a contract, check every answer, return them ranked.

Candidates run concurrently, at most `concurrency` at a time per provider; each one goes
parse -> checker -> repair rounds like "Generate Aethel contract". Events say how far the
run is ("3/6 checked, 2 valid"); cancelling the task that awaits `distill` cancels every
candidate, and cancelling a candidate closes its upstream stream. The run stops early
when `agree` valid candidates have the same canonical program.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aethel_lsp.config import Settings
from aethel_lsp.distill import scoring
from aethel_lsp.distill.candidate import Candidate
from aethel_lsp.engine.base import Engine, collect
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.types import (
    ChatMessage,
    ChatRequest,
    GenerateResult,
    GenerationOptions,
    KeepAlive,
    Metrics,
)
from aethel_lsp.language import Diagnostic, Severity
from aethel_lsp.language.checker import analyze_in_thread
from aethel_lsp.language.formatter import format_text
from aethel_lsp.language.grammar_prompt import extract_aethel
from aethel_lsp.prompts import actions as prompts
from aethel_lsp.prompts.context import estimate_tokens

BASE_TEMPERATURE = 0.2
TEMPERATURE_STEP = 0.3  # each further sample of one model is more adventurous
MAX_TEMPERATURE = 1.0


@dataclass(frozen=True)
class DistillOptions:
    """How many candidates, from which models, and how they are generated."""

    models: tuple[str, ...]
    candidates: int = 4
    agree: int = 2  # stop when this many valid candidates agree; 0 = never stop early
    concurrency: int = 2  # candidates at once per provider
    repair_rounds: int = 2
    max_tokens: int | None = None
    context_size: int | None = None
    keep_alive: KeepAlive = None

    @classmethod
    def from_settings(
        cls, settings: Settings, models: Sequence[str], candidates: int | None = None
    ) -> DistillOptions:
        """The editor's and the CLI's options: the `distill.*` and generation settings."""
        return cls(
            models=tuple(models), candidates=candidates or settings.distill.candidates,
            agree=settings.distill.agree, concurrency=settings.distill.concurrency,
            repair_rounds=settings.generation.repair_rounds, max_tokens=settings.max_tokens,
            context_size=settings.context_size, keep_alive=settings.keep_alive_value,
        )

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("the distiller needs at least one model")
        if self.candidates < 1:
            raise ValueError("the distiller needs at least one candidate")


@dataclass(frozen=True)
class DistillEvent:
    """Progress: `message` is for people ("3/6 checked, 2 valid"), the numbers for bars."""

    message: str
    checked: int
    valid: int
    total: int

    @property
    def percentage(self) -> int:
        return (100 * self.checked) // max(1, self.total)


@dataclass(frozen=True)
class DistillResult:
    best: Candidate | None  # the top candidate, or None when none produced any text
    candidates: tuple[Candidate, ...]  # ranked, best first
    explanation: str

    @property
    def valid(self) -> bool:
        return self.best is not None and self.best.valid

    def to_json(self) -> dict[str, object]:
        """The pinned result of `aethel.distillContract` / `aethel-lsp distill --json`."""
        return {
            "best": self.best.to_json() if self.best is not None else None,
            "candidates": [c.to_json() for c in self.candidates],
            "explanation": self.explanation,
        }


class DescriptionTooLong(ValueError):
    """The prompt cannot fit the context window: the engine would silently keep its end."""


def ensure_fits(description: str, draft: str, options: DistillOptions) -> None:
    """Refuse, before any request, a description (and draft) the context cannot hold."""
    context = options.context_size
    if not context:
        return
    prompt = prompts.generate_contract(description, draft)
    reserve = min(options.max_tokens or 0, context // 2)
    needed = estimate_tokens(prompt.system) + estimate_tokens(prompt.user)
    if needed > context - reserve:
        raise DescriptionTooLong(
            f"The description is too large for the model's context: about {needed:,} "
            f"tokens, and the context is {context:,} tokens ({reserve:,} kept for the "
            "answer). Shorten it or raise `contextSize`."
        )


ProviderOf = Callable[[str], str]
CostOf = Callable[[GenerateResult], "float | None"]


def local_provider(_model: str) -> str:
    return "local"


def _reported_cost(result: GenerateResult) -> float | None:
    """The provider's price of the generation (issue 19), None when unknown."""
    return result.metrics.cost_usd


@dataclass
class _Run:
    engine: Engine
    description: str
    draft: str
    options: DistillOptions
    provider_of: ProviderOf
    cost_of: CostOf
    on_event: Callable[[DistillEvent], None]
    finished: list[Candidate] = field(default_factory=list)
    failures: list[EngineError] = field(default_factory=list)  # of candidates with no answer
    limits: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    agreed: asyncio.Event = field(default_factory=asyncio.Event)

    def plan(self) -> list[tuple[int, str, float]]:
        """(index, model, temperature): round-robin over the models, then hotter samples.

        A model named twice is one model: its second sample must run hotter, not repeat.
        """
        models = tuple(dict.fromkeys(self.options.models))
        planned = []
        for index in range(self.options.candidates):
            sample = index // len(models)
            temperature = min(MAX_TEMPERATURE, BASE_TEMPERATURE + TEMPERATURE_STEP * sample)
            planned.append((index, models[index % len(models)], temperature))
        return planned

    def limit(self, provider: str) -> asyncio.Semaphore:
        if provider not in self.limits:
            self.limits[provider] = asyncio.Semaphore(max(1, self.options.concurrency))
        return self.limits[provider]

    def emit(self, note: str = "") -> None:
        total = self.options.candidates
        valid = sum(c.valid for c in self.finished)
        message = f"{len(self.finished)}/{total} checked, {valid} valid"
        self.on_event(DistillEvent(f"{message}{' · ' + note if note else ''}",
                                   len(self.finished), valid, total))

    async def candidate(self, index: int, model: str, temperature: float) -> None:
        provider = self.provider_of(model)
        async with self.limit(provider):
            self.emit(f"#{index + 1} {model} writing")
            found = await self._generate_and_check(index, model, provider, temperature)
        self.finished.append(found)
        verdict = "valid" if found.valid else "rejected"
        self.emit(f"#{index + 1} {model} {verdict}")
        if self._agreement() is not None:
            self.agreed.set()

    async def _generate_and_check(
        self, index: int, model: str, provider: str, temperature: float
    ) -> Candidate:
        prompt = prompts.generate_contract(self.description, self.draft)
        code, attempts = "", 0
        problems: tuple[Diagnostic, ...] = ()
        metrics: Metrics | None = None
        cost: float | None = None
        while True:
            attempts += 1
            try:
                result = await self._ask(model, prompt, temperature, seed=index * 101 + attempts)
            except EngineError as exc:
                if attempts == 1:
                    self.failures.append(exc)
                    return Candidate(index, model, provider, "", (), attempts, error=str(exc))
                break  # keep the last checked answer
            metrics = result.metrics
            spent = self.cost_of(result)
            cost = spent if cost is None else cost + (spent or 0.0)
            code = extract_aethel(result.text).rstrip("\n")
            problems = await check(code)
            errors = [d for d in problems if d.severity == Severity.ERROR]
            if not errors or attempts > self.options.repair_rounds:
                break
            listed = [f"line {d.range.start.line + 1}: {d.message}" for d in errors]
            prompt = prompts.repair_contract(self.description, code, listed)
        canonical = _canonical(code)
        return Candidate(index, model, provider, code, tuple(problems), attempts, metrics, cost,
                         canonical=canonical)

    async def _ask(
        self, model: str, prompt: prompts.ActionPrompt, temperature: float, *, seed: int
    ) -> GenerateResult:
        request = ChatRequest(
            model=model,
            messages=(ChatMessage("system", prompt.system), ChatMessage("user", prompt.user)),
            options=GenerationOptions(temperature=temperature, seed=seed,
                                      num_predict=self.options.max_tokens,
                                      num_ctx=self.options.context_size),
            keep_alive=self.options.keep_alive,
        )
        return await collect(self.engine.stream_chat(request), model)  # closes the stream

    def _agreement(self) -> str | None:
        """The canonical program that `agree` valid candidates share, if any."""
        if self.options.agree < 1:
            return None
        counts: dict[str, int] = {}
        for found in self.finished:
            if found.valid and found.canonical:
                counts[found.canonical] = counts.get(found.canonical, 0) + 1
                if counts[found.canonical] >= self.options.agree:
                    return found.canonical
        return None


def _canonical(code: str) -> str | None:
    """The program without comments or layout: what two answers must share to agree."""
    formatted = format_text(code) if code.strip() else None
    if formatted is None:
        return None
    lines = [line.strip() for line in formatted.splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith("#"))


async def check(code: str) -> tuple[Diagnostic, ...]:
    """Parser and checker on a worker thread; a cancelled run stops the checker too."""
    if not code.strip():
        return ()
    return tuple((await analyze_in_thread(code)).diagnostics)


async def distill(
    engine: Engine,
    description: str,
    options: DistillOptions,
    *,
    draft: str = "",
    provider_of: ProviderOf = local_provider,
    cost_of: CostOf = _reported_cost,
    on_event: Callable[[DistillEvent], None] | None = None,
) -> DistillResult:
    """Generate `options.candidates` contracts for `description`, check and rank them.

    Raises the first `EngineError` when no candidate got any answer at all (the engine is
    down, the model missing): that is a setup problem, not a verdict on the contracts;
    `DescriptionTooLong` before any request when the prompt cannot fit the context.
    """
    ensure_fits(description, draft, options)
    run = _Run(engine, description, draft, options, provider_of, cost_of,
               on_event or (lambda _event: None))
    tasks: list[asyncio.Future[object]] = [
        asyncio.ensure_future(run.candidate(*planned)) for planned in run.plan()
    ]
    agreed: asyncio.Future[object] = asyncio.ensure_future(run.agreed.wait())
    try:
        pending: set[asyncio.Future[object]] = set(tasks)
        while pending and not run.agreed.is_set():
            done, pending = await asyncio.wait(
                pending | {agreed}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(agreed)
            for task in done - {agreed}:
                failure = task.exception()
                if failure is not None:
                    raise failure
    finally:  # agreement, a failure or our own cancellation: close every other stream
        for task in (*tasks, agreed):
            task.cancel()
        await asyncio.gather(*tasks, agreed, return_exceptions=True)
    return _result(run)


def _result(run: _Run) -> DistillResult:
    finished = run.finished
    answered = [c for c in finished if c.error is None]
    if finished and not answered:  # the engine's own error: offline stays offline
        raise run.failures[0]
    ranked = scoring.rank(finished, run.description)
    stopped = ""
    if run.agreed.is_set() and len(finished) < run.options.candidates:
        stopped = (f"Stopped after {len(finished)} of {run.options.candidates}: "
                   f"{run.options.agree} valid candidates agree.")
    return DistillResult(
        ranked[0] if ranked else None,
        tuple(ranked),
        scoring.explanation(ranked, run.options.candidates, stopped),
    )


def candidates_text(candidates: Sequence[Candidate]) -> str:
    """One line per candidate, best first (for the CLI and editors without a picker)."""
    return "\n".join(
        f"{'✓' if c.valid else '✗'} {c.label} score {c.score:g}: {c.reason}" for c in candidates
    )
