"""Measured recommendations: a short timed probe per model, then the best model per use
case for *this* machine, with the numbers behind the choice.

The fixed table (`recommend.py`) knows which models are good in general; only a
measurement knows whether one is fast enough here.  A probe is one tiny generation
(`num_predict` 16): Ollama reports the load time and the generation speed
(`eval_count / eval_duration`), the client measures the time to the first token and
the wall-clock rate at which tokens arrived.  Verdicts use the slower of the two rates,
because that is what the user waits for (a remote host adds its network to every token).

A use case needs an answer of a typical length within a time budget (an inline
completion of ~24 tokens within `completion.deadlineMs`; an explanation of ~300 tokens
within 30 s; an Aethel contract of ~400 tokens within a minute).  Among the installed
models that fit, the best for the use case wins (native fill-in-the-middle and code
models first for completion, then the larger model, because it writes better code).
When none fits, the model to pull is chosen by extrapolation: generation is memory-bound,
so tokens/s scale roughly with 1 / parameter count, and one measured model predicts the
others (said as an estimate, with the model it was extrapolated from).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aethel_lsp.engine.base import Engine, closing_stream
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.recommend import (
    USE_CASES,
    Recommendation,
    can_generate,
    install_advice,
    is_code_model,
    normalize_name,
    parameter_count,
    recommend,
)
from aethel_lsp.engine.stats import UsageStats
from aethel_lsp.engine.types import (
    EngineKind,
    GenerateRequest,
    GenerationOptions,
    JsonDict,
    KeepAlive,
    Metrics,
    ModelInfo,
)

FIXED_USE_CASES = {use_case.name: use_case for use_case in USE_CASES}
PROBE_PROMPT = "def fibonacci(n):\n"
PROBE_TOKENS = 16
PROBE_TIMEOUT_S = 90.0  # a cold model load can take a minute
B = 1_000_000_000
THINKING_MARKERS = ("deepseek-r1", "qwq", "qwen3", "-r1", "thinking", "reason", "magistral")
CHAT_MARKERS = ("instruct", "chat", "-it", ":it")
FIM_MARKERS = (
    "qwen2.5-coder", "qwen3-coder", "deepseek-coder", "codellama", "code-llama", "starcoder2",
    "codestral",
)


@dataclass(frozen=True)
class ProbeMeasurement:
    """One timed probe: what the engine reported and what the client saw."""

    model: str
    ok: bool
    load_ms: float | None = None
    ttft_ms: float | None = None  # client-measured, includes a cold load
    tokens_per_second: float | None = None  # the engine's own eval_count / eval_duration
    wall_tokens_per_second: float | None = None  # tokens after the first / their wall time
    tokens_generated: int | None = None
    latency_ms: float | None = None
    error: str | None = None

    @classmethod
    def from_metrics(cls, model: str, metrics: Metrics) -> ProbeMeasurement:
        wall: float | None = None
        tokens = metrics.tokens_generated or 0
        ttft, latency = metrics.time_to_first_token_ms, metrics.latency_ms
        if tokens >= 2 and ttft is not None and latency is not None and latency > ttft:
            wall = (tokens - 1) / ((latency - ttft) / 1000.0)
        return cls(model, True, metrics.load_ms, ttft, metrics.tokens_per_second, wall,
                   metrics.tokens_generated, latency)

    @property
    def warm_ttft_ms(self) -> float | None:
        """Time to first token once the model is loaded (the probe's TTFT minus the load)."""
        if self.ttft_ms is None:
            return None
        return max(0.0, self.ttft_ms - (self.load_ms or 0.0))

    @property
    def effective_tokens_per_second(self) -> float | None:
        """The slower of the engine's rate and the rate tokens reached us."""
        rates = [r for r in (self.tokens_per_second, self.wall_tokens_per_second) if r]
        return min(rates) if rates else None

    def estimate_ms(self, tokens: int) -> float | None:
        """How long a warm answer of `tokens` tokens takes here."""
        rate = self.effective_tokens_per_second
        if not self.ok or not rate:
            return None
        return (self.warm_ttft_ms or 0.0) + tokens / rate * 1000.0

    def summary(self) -> str:
        if not self.ok:
            return f"probe failed: {self.error}"
        rate = self.effective_tokens_per_second
        parts = [f"{_num(rate)} tok/s" if rate is not None else "speed unknown"]
        if self.warm_ttft_ms is not None:
            parts.append(f"first token {_num(self.warm_ttft_ms)} ms")
        if self.load_ms is not None and self.load_ms >= 1.0:
            parts.append(f"load {_num(self.load_ms)} ms")
        return ", ".join(parts)

    def to_json(self) -> JsonDict:
        return {
            "model": self.model,
            "ok": self.ok,
            "loadMs": _round(self.load_ms),
            "timeToFirstTokenMs": _round(self.ttft_ms),
            "warmTimeToFirstTokenMs": _round(self.warm_ttft_ms),
            "tokensPerSecond": _round(self.tokens_per_second),
            "wallTokensPerSecond": _round(self.wall_tokens_per_second),
            "effectiveTokensPerSecond": _round(self.effective_tokens_per_second),
            "tokensGenerated": self.tokens_generated,
            "latencyMs": _round(self.latency_ms),
            "error": self.error,
        }


async def probe_model(
    engine: Engine,
    model: str,
    *,
    keep_alive: KeepAlive = None,
    num_predict: int = PROBE_TOKENS,
    timeout_s: float = PROBE_TIMEOUT_S,
    stats: UsageStats | None = None,
) -> ProbeMeasurement:
    """One short timed generation; never raises for engine failures (they are findings).

    `keep_alive` should be the user's setting, so the probe leaves the model exactly as
    loaded as a real request would.  The measurement is kept in `stats` when given.
    """
    request = GenerateRequest(
        model=model,
        prompt=PROBE_PROMPT,
        options=GenerationOptions(temperature=0.0, num_predict=num_predict, seed=0),
        keep_alive=keep_alive,
    )
    try:
        metrics = await asyncio.wait_for(_final_metrics(engine, request), timeout_s)
    except (asyncio.TimeoutError, TimeoutError):  # distinct classes on Python 3.10
        return ProbeMeasurement(model, False, error=f"no answer within {timeout_s:.0f} s")
    except EngineError as exc:
        return ProbeMeasurement(model, False, error=str(exc))
    measurement = ProbeMeasurement.from_metrics(model, metrics)
    if stats is not None:
        stats.record_probe(model, measurement.load_ms, measurement.ttft_ms,
                           measurement.effective_tokens_per_second)
    return measurement


async def _final_metrics(engine: Engine, request: GenerateRequest) -> Metrics:
    async with contextlib.aclosing(closing_stream(engine.stream_generate(request))) as chunks:
        async for chunk in chunks:
            if chunk.done and chunk.metrics is not None:
                return chunk.metrics
    raise EngineError(f"The probe of {request.model} ended without its final line.")


# -- model traits -----------------------------------------------------------------------


def is_thinking_model(model: ModelInfo) -> bool:
    """A model that reasons before answering (capability `thinking`, or a known name)."""
    if model.has("thinking"):
        return True
    name = model.name.lower()
    return any(marker in name for marker in THINKING_MARKERS) and "coder" not in name


def is_chat_tuned(model: ModelInfo) -> bool:
    """An instruct/chat model (or a general model): it answers, it does not continue code."""
    name = model.name.lower()
    return any(marker in name for marker in CHAT_MARKERS) or not is_code_model(model)


def fim_rank(model: ModelInfo) -> int:
    """0 native fill-in-the-middle (`insert`), 1 a known FIM family template, 2 chat."""
    if model.has("insert"):
        return 0
    name = model.name.lower()
    return 1 if any(marker in name for marker in FIM_MARKERS) else 2


# -- use cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredUseCase:
    """What one use case asks of a model on this machine."""

    name: str  # camelCase id in JSON
    title: str
    answer_tokens: int  # a typical answer
    budget_ms: float  # it must be there within this (warm)
    wants_code: bool
    wants_fim: bool
    fixed_use_case: str  # the row of the fixed table (recommend.py) this use case extends
    pull_ladder: tuple[tuple[str, float], ...]  # what to pull, best first, with its size


def measured_use_cases(deadline_ms: float = 1500.0) -> tuple[MeasuredUseCase, ...]:
    """The three use cases; inline completion's budget is the user's completion deadline."""
    return (
        MeasuredUseCase(
            "inlineCompletion", "inline completion", 24, deadline_ms, True, True, "coding",
            (("qwen2.5-coder:3b", 3.1 * B), ("qwen2.5-coder:1.5b", 1.5 * B),
             ("qwen2.5-coder:0.5b", 0.5 * B)),
        ),
        MeasuredUseCase(
            "actions", "actions and chat (explain, improve, document, fix)", 300, 30_000.0,
            False, False, "general",
            (("qwen2.5-coder:7b", 7.6 * B), ("qwen2.5-coder:3b", 3.1 * B),
             ("qwen2.5-coder:1.5b", 1.5 * B)),
        ),
        MeasuredUseCase(
            "aethelGeneration", "Aethel contract generation", 400, 60_000.0, True, False,
            "code_large",
            (("qwen2.5-coder:14b", 14.8 * B), ("qwen2.5-coder:7b", 7.6 * B),
             ("qwen2.5-coder:3b", 3.1 * B), ("qwen2.5-coder:1.5b", 1.5 * B)),
        ),
    )


@dataclass(frozen=True)
class Candidate:
    model: ModelInfo
    probe: ProbeMeasurement
    estimate_ms: float | None
    fits: bool

    def to_json(self) -> JsonDict:
        return {
            "model": self.model.name,
            "estimatedMs": _round(self.estimate_ms),
            "fits": self.fits,
            "tokensPerSecond": _round(self.probe.effective_tokens_per_second),
            "timeToFirstTokenMs": _round(self.probe.warm_ttft_ms),
            "loadMs": _round(self.probe.load_ms),
            "error": self.probe.error,
        }


@dataclass(frozen=True)
class MeasuredRecommendation:
    """The answer for one use case on this machine, with its evidence."""

    use_case: str
    title: str
    model: str | None  # the installed model to use (None: nothing usable installed)
    fits: bool  # `model` answers within the budget
    reason: str
    budget_ms: float
    answer_tokens: int
    pull: str | None = None  # a model to pull, when nothing installed fits well
    pull_reason: str = ""
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    fixed_table: Recommendation | None = None  # what the fixed table says, unmeasured
    fixed_note: str = ""  # how the fixed table's choice fares on this machine

    def to_json(self) -> JsonDict:
        return {
            "useCase": self.use_case,
            "title": self.title,
            "model": self.model,
            "fits": self.fits,
            "reason": self.reason,
            "budgetMs": _round(self.budget_ms),
            "answerTokens": self.answer_tokens,
            "pull": self.pull,
            "pullReason": self.pull_reason,
            "candidates": [c.to_json() for c in self.candidates],
            "fixedTable": self.fixed_table.to_json() if self.fixed_table else None,
            "fixedNote": self.fixed_note,
        }


def recommend_measured(
    models: Sequence[ModelInfo],
    probes: Sequence[ProbeMeasurement],
    *,
    deadline_ms: float = 1500.0,
    kind: EngineKind = "ollama",
) -> list[MeasuredRecommendation]:
    """Per use case: the best installed model that is fast enough here, and what to pull
    (said the way `kind`, the engine measured, installs models)."""
    by_name = {normalize_name(p.model): p for p in probes}
    measured = [(m, by_name[normalize_name(m.name)]) for m in models
                if normalize_name(m.name) in by_name]
    out = []
    for use_case in measured_use_cases(deadline_ms):
        answer = _recommend_one(use_case, measured, kind)
        fixed = recommend(models, FIXED_USE_CASES[use_case.fixed_use_case], kind)
        out.append(dataclasses.replace(answer, fixed_table=fixed,
                                       fixed_note=_fixed_note(answer, fixed)))
    return out


def _fixed_note(answer: MeasuredRecommendation, fixed: Recommendation) -> str:
    """The fixed table's choice, judged by the measurements."""
    table = f"The fixed table recommends {fixed.recommended} for {fixed.use_case}"
    if not fixed.recommended_installed:
        table += " (not installed)"
        if fixed.model is None:
            return table + "."
        table += f"; its best installed pick is {fixed.model}"
    chosen = next((c for c in answer.candidates
                   if fixed.model and normalize_name(c.model.name) == normalize_name(fixed.model)),
                  None)
    if chosen is None or chosen.estimate_ms is None:
        return table + "."
    verdict = "fits" if chosen.fits else "is too slow"
    agree = " — the same choice" if fixed.model == answer.model and chosen.fits else ""
    return (f"{table}: measured, it {verdict} here (≈{_num(chosen.estimate_ms)} ms of "
            f"{_num(answer.budget_ms)} ms){agree}.")


def _recommend_one(
    use_case: MeasuredUseCase, measured: Sequence[tuple[ModelInfo, ProbeMeasurement]],
    kind: EngineKind,
) -> MeasuredRecommendation:
    candidates = []
    for model, probe in measured:
        estimate = probe.estimate_ms(use_case.answer_tokens)
        candidates.append(Candidate(model, probe, estimate,
                                    estimate is not None and estimate <= use_case.budget_ms))
    candidates.sort(key=lambda c: (c.estimate_ms is None, c.estimate_ms or 0.0))
    fitting = [c for c in candidates if c.fits]

    def answer(model: str | None, fits: bool, reason: str,
               pull: tuple[str | None, str]) -> MeasuredRecommendation:
        return MeasuredRecommendation(use_case.name, use_case.title, model, fits, reason,
                                      use_case.budget_ms, use_case.answer_tokens, pull[0],
                                      pull[1], tuple(candidates))

    if fitting:
        best = min(fitting, key=_preference(use_case))
        return answer(best.model.name, True, _why(use_case, best),
                      _upgrade(use_case, best, measured, kind))
    usable = [c for c in candidates if c.estimate_ms is not None]
    pull = _pull_for(use_case, measured, kind)
    if not usable:
        reason = ("No installed model could be measured"
                  if candidates else "No installed model can generate text")
        return answer(None, False, reason + ".", pull)
    fastest = usable[0]
    reason = (f"No installed model is fast enough: the fastest, {fastest.model.name}, needs "
              f"≈{_num(fastest.estimate_ms)} ms for {use_case.answer_tokens} tokens "
              f"({fastest.probe.summary()}), over the {_num(use_case.budget_ms)} ms budget.")
    return answer(fastest.model.name, False, reason, pull)


def _preference(use_case: MeasuredUseCase) -> Callable[[Candidate], tuple[float, ...]]:
    """Sort key among the models that fit: smaller is better."""

    def key(c: Candidate) -> tuple[float, ...]:
        m = c.model
        size = parameter_count(m) or 0.0
        thinking = float(is_thinking_model(m))
        code = 0.0 if is_code_model(m) else 1.0
        comfortable = 0.0 if (c.estimate_ms or 0.0) <= use_case.budget_ms / 2 else 1.0
        if use_case.wants_fim:
            return (float(fim_rank(m)), thinking, comfortable, -size)
        if use_case.wants_code:
            return (code, thinking, -size)
        return (thinking, -size)

    return key


def _why(use_case: MeasuredUseCase, best: Candidate) -> str:
    parts = [f"{best.model.name}: ≈{_num(best.estimate_ms)} ms for a "
             f"{use_case.answer_tokens}-token answer (budget {_num(use_case.budget_ms)} ms; "
             f"{best.probe.summary()})"]
    if use_case.wants_fim:
        parts.append(("native fill-in-the-middle (`insert`)", "FIM through its family's "
                      "template", "no fill-in-the-middle: chat prompts")[fim_rank(best.model)])
    elif use_case.wants_code and is_code_model(best.model):
        parts.append("a code model")
    size = parameter_count(best.model)
    if size:
        parts.append(f"{size / B:.1f}B parameters")
    return "; ".join(parts) + "."


def _upgrade(
    use_case: MeasuredUseCase, best: Candidate,
    measured: Sequence[tuple[ModelInfo, ProbeMeasurement]], kind: EngineKind,
) -> tuple[str | None, str]:
    """A model worth pulling even though one fits (inline completion without FIM)."""
    if use_case.wants_fim and fim_rank(best.model) == 2:
        pull, reason = _pull_for(use_case, measured, kind)
        return pull, (f"{best.model.name} cannot fill in the middle; " + reason) if pull else ""
    return None, ""


def _pull_for(
    use_case: MeasuredUseCase, measured: Sequence[tuple[ModelInfo, ProbeMeasurement]],
    kind: EngineKind = "ollama",
) -> tuple[str | None, str]:
    """The best model of the ladder predicted to fit, by extrapolation from a measured one."""
    installed = {normalize_name(m.name) for m, _ in measured}
    reference = _best_reference(measured)
    for name, size in use_case.pull_ladder:
        if normalize_name(name) in installed:
            continue
        if reference is None:
            return name, (f"{install_advice(kind, name)}: a good size for {use_case.title}; "
                          "nothing installed could be measured to predict its speed here.")
        ref_model, ref_probe, ref_size = reference
        rate = (ref_probe.effective_tokens_per_second or 0.0) * ref_size / size
        if rate <= 0:
            continue
        estimate = (ref_probe.warm_ttft_ms or 0.0) + use_case.answer_tokens / rate * 1000.0
        if estimate <= use_case.budget_ms:
            return name, (f"{install_advice(kind, name)}: predicted ≈{_num(rate)} tok/s here "
                          f"(≈{_num(estimate)} ms for {use_case.answer_tokens} tokens), "
                          f"extrapolated from {ref_model.name}'s measured "
                          f"{_num(ref_probe.effective_tokens_per_second)} tok/s.")
    smallest = use_case.pull_ladder[-1][0]
    if normalize_name(smallest) in installed:
        return None, ("Even the smallest suitable model is too slow here: raise the budget "
                      "(e.g. `completion.deadlineMs`) or run the model on a GPU.")
    return smallest, (f"{install_advice(kind, smallest)}: the smallest suitable model; this "
                      "machine may still be too slow for it (run the model on a GPU or raise "
                      "the budget).")


def _best_reference(
    measured: Sequence[tuple[ModelInfo, ProbeMeasurement]],
) -> tuple[ModelInfo, ProbeMeasurement, float] | None:
    """The measured model with the highest rate × size (the machine's best showing)."""
    best: tuple[ModelInfo, ProbeMeasurement, float] | None = None
    for model, probe in measured:
        size = parameter_count(model)
        rate = probe.effective_tokens_per_second
        if not probe.ok or not size or not rate:
            continue
        if best is None or rate * size > (best[1].effective_tokens_per_second or 0.0) * best[2]:
            best = (model, probe, size)
    return best


async def measure_installed(
    engine: Engine,
    *,
    keep_alive: KeepAlive = None,
    deadline_ms: float = 1500.0,
    stats: UsageStats | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> tuple[list[ModelInfo], list[ProbeMeasurement], list[MeasuredRecommendation]]:
    """Probe every installed *local* model that can generate, one after another, and
    recommend.  Cloud models (Ollama's `remote_host`) are not probed: a probe would spend
    the user's cloud quota and measure the network, not this machine."""
    models = [
        m for m in await engine.list_models_detailed() if can_generate(m) and not m.is_remote
    ]
    probes = [await probe_model(engine, m.name, keep_alive=keep_alive, stats=stats,
                                timeout_s=timeout_s) for m in models]
    return models, probes, recommend_measured(models, probes, deadline_ms=deadline_ms,
                                              kind=engine.kind)


def measured_json(probes: Sequence[ProbeMeasurement],
                  recommendations: Sequence[MeasuredRecommendation]) -> JsonDict:
    """The result of `aethel.recommendModels` (and `aethel-lsp recommend --measure --json`)."""
    return {
        "measurements": [p.to_json() for p in probes],
        "recommendations": [r.to_json() for r in recommendations],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
