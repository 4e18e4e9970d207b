"""Pure logic of providers: endpoint order (least outstanding, sticky, cooldown), token
buckets, retry delays, prices and the budget guard — with injected clocks, no network."""

from __future__ import annotations

import pytest

from aethel_lsp.config.provider_settings import Price, ProviderSettings
from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.providers.endpoints import Endpoint, EndpointPool
from aethel_lsp.engine.providers.limits import (
    BudgetExceeded,
    BudgetGuard,
    RateLimiter,
    TokenBucket,
    retry_delay,
)
from aethel_lsp.engine.providers.prices import cost_of, price_of
from aethel_lsp.engine.types import Metrics
from tests.unit.scripted_engine import ScriptedEngine


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pool(clock: Clock, count: int = 3) -> tuple[EndpointPool, list[Endpoint]]:
    engine: Engine = ScriptedEngine()
    endpoints = [Endpoint(f"http://gpu{i}", engine) for i in range(1, count + 1)]
    return EndpointPool(endpoints, cooldown_s=30.0, clock=clock), endpoints


def test_least_outstanding_first_then_configured_order() -> None:
    endpoints_pool, (a, b, c) = pool(Clock())
    assert endpoints_pool.order(None) == [a, b, c]
    a.outstanding, b.outstanding = 2, 1
    assert endpoints_pool.order(None) == [c, b, a]


def test_a_document_sticks_while_its_endpoint_is_healthy() -> None:
    clock = Clock()
    endpoints_pool, (a, b, _c) = pool(clock)
    endpoints_pool.succeeded(b, "file:///x")
    b.outstanding = 5
    assert endpoints_pool.order("file:///x")[0] is b
    assert endpoints_pool.order("file:///y")[0] is a
    endpoints_pool.failed(b, "HTTP 500")
    assert endpoints_pool.order("file:///x")[0] is a


def test_a_failed_endpoint_cools_down_then_comes_back() -> None:
    clock = Clock()
    endpoints_pool, (a, b, c) = pool(clock)
    endpoints_pool.failed(a, "connection refused")
    assert endpoints_pool.order(None) == [b, c, a]  # still tried, last
    assert a.to_json() == {"url": "http://gpu1", "health": "unhealthy", "outstanding": 0,
                           "error": "connection refused"}
    clock.now = 31.0
    assert endpoints_pool.order(None) == [a, b, c]


def test_token_bucket_refills_per_minute() -> None:
    clock = Clock()
    bucket = TokenBucket(120, clock)
    bucket.take(120)
    assert bucket.wait_for(1) == pytest.approx(0.5)
    clock.now = 30.0
    assert bucket.wait_for(60) == 0.0
    assert bucket.wait_for(500) == pytest.approx(30.0)  # above capacity: a full bucket


def test_limiter_corrects_estimates_with_real_counts() -> None:
    clock = Clock()
    limiter = RateLimiter(None, 1000, clock=clock)
    assert limiter.tokens is not None
    limiter.tokens.take(600)
    limiter.settle(600, 100)
    assert limiter.tokens.level == pytest.approx(900)
    limiter.settle(100, 400)
    assert limiter.tokens.level == pytest.approx(600)
    limiter.settle(100, None)  # unknown counts leave the estimate standing
    assert limiter.tokens.level == pytest.approx(600)


def test_retry_delay_honours_retry_after_with_bounded_jitter() -> None:
    assert retry_delay(0, 3.0, rng=lambda: 0.0) == 3.0
    assert retry_delay(5, 3.0, rng=lambda: 1.0) == pytest.approx(3.3)
    assert [retry_delay(n, None, rng=lambda: 1.0) for n in range(3)] == [0.5, 1.0, 2.0]


def test_prices_user_first_then_builtin_and_unknown_is_none() -> None:
    claude = ProviderSettings("claude", "anthropic",
                              prices=(("claude-haiku-5-5", Price(1.0, 5.0)),))
    assert price_of(claude, "claude-haiku-5-5") == Price(1.0, 5.0)
    assert price_of(claude, "claude-opus-5-5") == Price(4.0, 20.0)
    assert price_of(claude, "claude-unknown") is None
    metrics = Metrics("m", prompt_tokens=2_000_000, tokens_generated=100_000)
    assert cost_of(metrics, Price(1.0, 5.0)) == pytest.approx(2.5)
    assert cost_of(Metrics("m", prompt_tokens=5), Price(1.0, 5.0)) is None


def test_budget_guard_says_what_to_do() -> None:
    guard = BudgetGuard.in_memory(1.0)
    guard.check("'claude'")
    guard.add(0.75)
    guard.add(None)
    guard.check("'claude'")
    guard.add(0.5)
    with pytest.raises(BudgetExceeded) as caught:
        guard.check("'claude'")
    assert "daily budget of $1.00 is spent ($1.25 today)" in str(caught.value)
    assert "budget.dailyUsd" in str(caught.value)
