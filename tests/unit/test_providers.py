"""Providers against the fakes: failover, stickiness, 429 retry-after, limits, budget,
fallback reasons and cost (several fake endpoints at once, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator

import pytest

from aethel_lsp.config.provider_settings import (
    BudgetSettings,
    Price,
    ProviderConfig,
    ProviderSettings,
)
from aethel_lsp.engine import (
    EngineOffline,
    GenerateRequest,
    GenerationOptions,
    StreamError,
)
from aethel_lsp.engine.factory import EngineConfig, create_engine
from aethel_lsp.engine.providers.limits import (
    BudgetExceeded,
    BudgetGuard,
    RateLimited,
    report_waits,
)
from aethel_lsp.engine.providers.router import ProviderRouter
from aethel_lsp.engine.types import EngineTimeouts, GenerateResult
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.hosted import Fault, Reply
from tests.fakes.openai import FakeOpenAI

TIMEOUTS = EngineTimeouts(connect_s=2.0, first_token_s=8.0, between_tokens_s=8.0)
CLAUDE_KEY = "sk-ant-test"
CHAT_PATH = "/v1/chat/completions"


@pytest.fixture
def gpus() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as gpu1, FakeOpenAI() as gpu2:
        yield gpu1, gpu2


@pytest.fixture
def claude(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    monkeypatch.setenv("TEST_CLAUDE_KEY", CLAUDE_KEY)
    with FakeAnthropic(api_key=CLAUDE_KEY) as fake:
        yield fake


def team(*fakes: FakeOpenAI, **extra: object) -> ProviderSettings:
    return ProviderSettings("team", "openai", hosts=tuple(f.url + "/v1" for f in fakes),
                            **extra)  # type: ignore[arg-type]


def claude_provider(fake: FakeAnthropic, **extra: object) -> ProviderSettings:
    return ProviderSettings("claude", "anthropic", hosts=(fake.url,),
                            api_key_env="TEST_CLAUDE_KEY", api_version="2026-10-21",
                            **extra)  # type: ignore[arg-type]


def router(*providers: ProviderSettings, fallback: tuple[str, ...] = (),
           daily_usd: float | None = None, local_url: str = "http://127.0.0.1:9",
           timeouts: EngineTimeouts = TIMEOUTS) -> ProviderRouter:
    config = ProviderConfig(providers, fallback, BudgetSettings(daily_usd))
    engine = create_engine(EngineConfig(kind="ollama", host=local_url, timeouts=timeouts,
                                        providers=config))
    assert isinstance(engine, ProviderRouter)
    return engine


async def generate(engine: ProviderRouter, model: str, affinity: str | None = None,
                   **options: object) -> GenerateResult:
    request = GenerateRequest(model, "write code", affinity=affinity,
                              options=GenerationOptions(**options))  # type: ignore[arg-type]
    return await engine.generate(request)


async def test_flat_settings_build_the_plain_engine() -> None:
    engine = create_engine(EngineConfig(kind="ollama"))
    assert not isinstance(engine, ProviderRouter)
    await engine.aclose()


async def test_failover_to_the_next_endpoint_when_one_is_offline(
        gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, gpu2 = gpus
    engine = router(team(gpu1, gpu2))
    gpu1.go_offline()
    result = await generate(engine, "team/coder")
    assert result.text == "Hello from the fake."
    assert result.metrics.provider == "team" and result.metrics.model == "team/coder"
    assert len(gpu2.requests_to("/v1/chat/completions")) == 1
    endpoints = (await engine.providers_json(check=False))[0]["endpoints"]
    assert endpoints[0]["health"] == "unhealthy" and "Nothing answers" in endpoints[0]["error"]
    assert endpoints[1]["health"] == "healthy"
    await generate(engine, "team/coder")  # the unhealthy one cools down: gpu2 again
    assert len(gpu2.requests_to("/v1/chat/completions")) == 2
    await engine.aclose()


async def test_5xx_before_the_first_token_fails_over_but_not_after(
        gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, gpu2 = gpus
    engine = router(team(gpu1, gpu2))
    gpu1.inject(Fault.http(500), path=CHAT_PATH)
    assert (await generate(engine, "team/coder")).text == "Hello from the fake."
    assert len(gpu2.requests_to("/v1/chat/completions")) == 1
    gpu2.inject(Fault.error_event(after_tokens=2), path=CHAT_PATH)
    gpu1.inject(Fault.error_event(after_tokens=2), path=CHAT_PATH)
    with pytest.raises(StreamError):  # text was already shown: no second try
        await generate(engine, "team/coder")
    assert len(gpu1.requests_to("/v1/chat/completions")) + len(
        gpu2.requests_to("/v1/chat/completions")) == 3
    await engine.aclose()


async def test_least_outstanding_and_sticky_per_document(
        gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, gpu2 = gpus
    engine = router(team(gpu1, gpu2))
    gpu1.enqueue(Reply(text="slow " * 10, token_delay=0.1))
    slow = asyncio.create_task(generate(engine, "team/coder", affinity="file:///a"))
    await asyncio.to_thread(gpu1.wait_for_request, "/v1/chat/completions")
    await generate(engine, "team/coder", affinity="file:///b")  # gpu1 is busy: gpu2
    assert len(gpu2.requests_to("/v1/chat/completions")) == 1
    await slow
    await generate(engine, "team/coder", affinity="file:///b")  # b sticks to gpu2
    assert len(gpu2.requests_to("/v1/chat/completions")) == 2
    await generate(engine, "team/coder", affinity="file:///a")  # a sticks to gpu1
    assert len(gpu1.requests_to("/v1/chat/completions")) == 2
    await engine.aclose()


async def test_429_retry_after_is_honoured_and_the_wait_reported(
        claude: FakeAnthropic) -> None:
    engine = router(claude_provider(claude))
    claude.inject(Fault.http(429, retry_after="1"), path="/v1/messages")
    waits: list[str] = []
    with report_waits(waits.append):
        result = await generate(engine, "claude/claude-haiku-5-5")
    assert result.text == "Hello from the fake."
    assert waits == ["waiting for rate limit (2 s)"] or waits == ["waiting for rate limit (1 s)"]
    sent = claude.requests_to("/v1/messages")
    assert len(sent) == 2 and sent[1].at - sent[0].at >= 1.0
    await engine.aclose()


async def test_retry_after_beyond_the_deadline_falls_back_with_a_reason(
        claude: FakeAnthropic, gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, _ = gpus
    engine = router(claude_provider(claude), team(gpu1, model="coder"),
                    fallback=("claude", "team"))
    claude.inject(Fault.http(529, retry_after="600"), path="/v1/messages")
    result = await generate(engine, "claude/claude-haiku-5-5")
    assert result.metrics.provider == "team" and result.metrics.model == "team/coder"
    [note] = result.metrics.fallback_from
    assert note.provider == "claude" and "600 s" in note.reason
    assert result.to_json()["fallbackFrom"] == [note.to_json()]
    await engine.aclose()


async def test_own_rate_limit_waits_are_cancellable(gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, _ = gpus
    engine = router(team(gpu1, requests_per_minute=1),
                    timeouts=dataclasses.replace(TIMEOUTS, first_token_s=120.0))
    await generate(engine, "team/coder")
    waits: list[str] = []
    with report_waits(waits.append):
        task = asyncio.create_task(generate(engine, "team/coder"))
        for _ in range(1000):
            if waits or task.done():
                break
            await asyncio.sleep(0.01)
    assert waits == ["waiting for rate limit (60 s)"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(gpu1.requests_to("/v1/chat/completions")) == 1
    await engine.aclose()


async def test_own_rate_limit_beyond_the_deadline_is_refused(
        gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, _ = gpus
    engine = router(team(gpu1, tokens_per_minute=1000))
    gpu1.enqueue(Reply(text="x", input_tokens=50, output_tokens=900))
    await generate(engine, "team/coder", num_predict=900)  # the real count is taken: 950
    with pytest.raises(RateLimited) as caught:
        await generate(engine, "team/coder", num_predict=900)
    assert "tokensPerMinute" in str(caught.value)
    await engine.aclose()


async def test_cost_from_the_builtin_table_and_user_prices(claude: FakeAnthropic) -> None:
    engine = router(claude_provider(claude, prices=(("claude-opus-5-5", Price(1.0, 2.0)),)))
    claude.enqueue(Reply(text="a b", input_tokens=1000, output_tokens=200),
                   Reply(text="a b", input_tokens=1000, output_tokens=200))
    haiku = await generate(engine, "claude/claude-haiku-5-5")
    assert haiku.metrics.cost_usd == pytest.approx((1000 * 0.10 + 200 * 0.50) / 1e6)
    opus = await generate(engine, "claude/claude-opus-5-5")  # the user's price wins
    assert opus.metrics.cost_usd == pytest.approx((1000 * 1.0 + 200 * 2.0) / 1e6)
    assert opus.to_json()["costUsd"] == pytest.approx(0.0014)
    await engine.aclose()


async def test_llamacpp_timings_count_and_no_price_means_unknown_cost(
        gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    with FakeOpenAI(flavor="llamacpp") as llama:  # no `usage`: its `timings` count
        priced = router(team(llama, prices=(("coder", Price(1.0, 1.0)),)))
        result = await generate(priced, "team/coder")
        assert result.metrics.tokens_generated is not None
        assert result.metrics.cost_usd == pytest.approx(
            (result.metrics.prompt_tokens + result.metrics.tokens_generated) / 1e6)
        await priced.aclose()
    unpriced = router(team(gpus[0]))
    result = await generate(unpriced, "team/coder")
    assert result.metrics.tokens_generated is not None and result.metrics.cost_usd is None
    assert result.to_json()["costUsd"] is None
    await unpriced.aclose()


async def test_daily_budget_refuses_paid_requests_and_falls_back(
        claude: FakeAnthropic, gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, _ = gpus
    engine = router(claude_provider(claude), team(gpu1, model="coder"),
                    fallback=("claude", "team"), daily_usd=0.0001)
    claude.enqueue(Reply(text="x", input_tokens=100_000, output_tokens=10_000))
    first = await generate(engine, "claude/claude-haiku-5-5")
    assert first.metrics.provider == "claude" and first.metrics.cost_usd == pytest.approx(0.015)
    second = await generate(engine, "claude/claude-haiku-5-5")
    assert second.metrics.provider == "team"
    assert "daily budget of $0.000100 is spent" in second.metrics.fallback_from[0].reason
    assert len(claude.requests_to("/v1/messages")) == 1
    alone = router(claude_provider(claude), daily_usd=0.0)
    with pytest.raises(BudgetExceeded):
        await generate(alone, "claude/claude-haiku-5-5")
    await engine.aclose()
    await alone.aclose()


async def test_the_daily_spend_is_read_off_the_event_loop(claude: FakeAnthropic) -> None:
    """It is a read of the statistics file, which may wait for the writer or a lock."""
    released = threading.Event()

    def spent_today() -> float:
        assert released.wait(10), "the budget check blocked the event loop"
        return 0.0

    engine = router(claude_provider(claude), daily_usd=1.0)
    provider = engine.providers["claude"]
    provider.budget = BudgetGuard(1.0, spent_today)
    claude.enqueue(Reply(text="x", input_tokens=10, output_tokens=1))
    asyncio.get_running_loop().call_soon(released.set)  # runs only while the loop is free
    result = await generate(engine, "claude/claude-haiku-5-5")
    await engine.aclose()
    assert result.metrics.provider == "claude"


async def test_local_offline_falls_back_in_order_with_every_reason(
        claude: FakeAnthropic, gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, gpu2 = gpus
    engine = router(team(gpu1, gpu2), claude_provider(claude, model="claude-haiku-5-5"),
                    fallback=("local", "team", "claude"))
    gpu1.go_offline()
    gpu2.go_offline()
    result = await generate(engine, "qwen2.5-coder:1.5b")
    assert result.metrics.provider == "claude"
    assert result.metrics.model == "claude/claude-haiku-5-5"
    assert [n.provider for n in result.metrics.fallback_from] == ["local", "team"]
    assert "Ollama is not running" in result.metrics.fallback_from[0].reason
    assert "No endpoint of provider 'team'" in result.metrics.fallback_from[1].reason
    await engine.aclose()


async def test_code_never_goes_to_a_provider_fallback_does_not_list(
        claude: FakeAnthropic, gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, _ = gpus
    engine = router(team(gpu1), claude_provider(claude, model="claude-haiku-5-5"),
                    fallback=("local", "team"))
    gpu1.go_offline()
    with pytest.raises(EngineOffline) as caught:
        await generate(engine, "qwen2.5-coder:1.5b")
    assert "local:" in str(caught.value) and "team:" in str(caught.value)
    assert ".;" not in str(caught.value) and str(caught.value).endswith(".")
    assert claude.requests == []
    unlisted = router(claude_provider(claude))  # no fallback at all: local only
    with pytest.raises(EngineOffline):
        await generate(unlisted, "qwen2.5-coder:1.5b")
    assert claude.requests == []
    await engine.aclose()
    await unlisted.aclose()


async def test_status_lists_providers_with_endpoint_health(
        gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, gpu2 = gpus
    engine = router(team(gpu1, gpu2), fallback=("local", "team"))
    gpu2.go_offline()
    [entry] = await engine.providers_json()
    assert (entry["name"], entry["kind"], entry["inFallback"]) == ("team", "openai", True)
    assert [e["health"] for e in entry["endpoints"]] == ["healthy", "unhealthy"]
    assert [e["url"] for e in entry["endpoints"]] == [gpu1.url + "/v1", gpu2.url + "/v1"]
    await engine.aclose()


async def test_provider_status_asks_each_endpoint_once(
        gpus: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    gpu1, gpu2 = gpus
    engine = router(team(gpu1, gpu2))
    status = await engine.provider("team").status()
    await engine.aclose()
    assert status.available
    assert status.reason == "provider 'team': 2 of 2 endpoints healthy"
    assert [r.path for r in gpu1.requests] == ["/v1/models"]
    assert [r.path for r in gpu2.requests] == ["/v1/models"]


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProviderSettings("x", "openai").name = "y"  # type: ignore[misc]


async def test_the_inspector_shows_the_serving_endpoint_and_failovers(
        gpus: tuple[FakeOpenAI, FakeOpenAI], tmp_path: object) -> None:
    from pathlib import Path

    from aethel_lsp.engine.inspector import InspectingEngine, Inspector, Redactor

    gpu1, gpu2 = gpus
    ring = Inspector(path=Path(str(tmp_path)) / "i.sqlite3", size=10, redactor=Redactor())
    engine = InspectingEngine(router(team(gpu1, gpu2)), lambda: ring)
    gpu1.go_offline()
    await engine.generate(GenerateRequest("team/coder", "hi"))
    [record] = ring.last(1)
    assert record["host"] == f"{gpu2.url}/v1"
    assert record["metrics"]["provider"] == "team"
    assert record["metrics"]["endpointFailures"][0].startswith(f"{gpu1.url}/v1: Nothing answers")
    await engine.aclose()


async def test_the_distiller_sees_providers_and_costs(claude: FakeAnthropic) -> None:
    from aethel_lsp.config.providers import provider_name
    from aethel_lsp.distill.run import DistillOptions, distill
    from tests.fakes.ollama_models import AETHEL_ANSWER

    engine = router(claude_provider(claude))
    claude.enqueue(Reply(text=AETHEL_ANSWER, input_tokens=1000, output_tokens=100))
    result = await distill(
        engine, "move an amount between two accounts",
        DistillOptions(models=("claude/claude-haiku-5-5",), candidates=1, repair_rounds=0),
        provider_of=lambda model: provider_name(model, engine.config))
    [candidate] = result.candidates
    assert candidate.provider == "claude" and candidate.valid
    assert candidate.cost_usd == pytest.approx((1000 * 0.10 + 100 * 0.50) / 1e6)
    await engine.aclose()
