"""Client-side rate limits, retry delays, waits people can see, and the daily budget.

A provider's `requestsPerMinute` / `tokensPerMinute` are token buckets refilled
continuously, so a burst up to the limit goes at once and the rest is spread out.  The
tokens a request will use are not known before it runs: it takes an estimate (about four
characters per token of prompt plus its `max_tokens`) and the bucket is corrected with
the engine's own counts afterwards.  Every wait is an `asyncio.sleep`, so cancelling the
request cancels the wait; it is announced through `report_waits` as
"waiting for rate limit (n s)".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aethel_lsp.engine.errors import EngineBusy, EngineError
from aethel_lsp.engine.types import format_usd
from aethel_lsp.paths import USER_CONFIG_DISPLAY

Clock = Callable[[], float]
WaitReporter = Callable[[str], None]

_reporter: contextvars.ContextVar[WaitReporter | None] = contextvars.ContextVar(
    "aethel_wait_reporter", default=None)


@contextlib.contextmanager
def report_waits(reporter: WaitReporter) -> Iterator[None]:
    """Within this block (this task and the tasks it starts), waits call `reporter`."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def announce_wait(seconds: float) -> str:
    """Tell the current reporter (if any) about a wait; returns the sentence."""
    text = f"waiting for rate limit ({max(1, math.ceil(seconds))} s)"
    reporter = _reporter.get()
    if reporter is not None:
        reporter(text)
    return text


class RateLimited(EngineBusy):
    """The provider's limit (ours or the server's 429/529) needs a longer wait than allowed."""


class BudgetExceeded(EngineError):
    """Today's spend reached `budget.dailyUsd`: paid requests are refused until tomorrow."""


@dataclass
class TokenBucket:
    """`capacity` units, refilled at `capacity` per minute."""

    capacity: float
    clock: Clock = time.monotonic
    level: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.level = self.capacity
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (a request above capacity waits for a full one).

        >>> bucket = TokenBucket(60, clock=lambda: 0.0)
        >>> bucket.take(60); bucket.wait_for(1)
        1.0
        """
        self._refill()
        needed = min(amount, self.capacity) - self.level
        return max(0.0, needed * 60 / self.capacity)

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Requests- and tokens-per-minute buckets of one provider (either may be absent)."""

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None, *,
                 clock: Clock = time.monotonic) -> None:
        self.requests = TokenBucket(requests_per_minute, clock) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, clock) if tokens_per_minute else None

    def wait_for(self, tokens: int) -> float:
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.wait_for(1))
        if self.tokens is not None:
            waits.append(self.tokens.wait_for(tokens))
        return max(waits)

    async def acquire(self, tokens: int, *, max_wait_s: float, who: str) -> None:
        """Wait (announced, cancellable) until both buckets allow the request, then take."""
        while (wait := self.wait_for(tokens)) > 0:
            if wait > max_wait_s:
                raise RateLimited(
                    f"{who} is over its own rate limit (requestsPerMinute/tokensPerMinute): "
                    f"the next slot is {wait:.0f} s away, longer than the {max_wait_s:.0f} s "
                    "a request may wait.", status=429)
            announce_wait(wait)
            await asyncio.sleep(wait)
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)

    def settle(self, estimated: int, actual: int | None) -> None:
        """Correct the token bucket with the engine's own count, once known."""
        if self.tokens is None or actual is None:
            return
        if actual > estimated:
            self.tokens.take(actual - estimated)
        else:
            self.tokens.give_back(estimated - actual)


def estimate_tokens(prompt_chars: int, max_tokens: int | None) -> int:
    """A request's token use before it runs: ~4 characters per prompt token + its budget."""
    return prompt_chars // 4 + 1 + (max_tokens or 256)


def retry_delay(attempt: int, retry_after_s: float | None,
                rng: Callable[[], float] = random.random) -> float:
    """The wait before retry `attempt` (0-based): the server's `retry-after` plus up to 10 %
    jitter, else exponential backoff (0.5 s, 1 s, 2 s, ...) with full jitter.

    >>> retry_delay(0, 2.0, rng=lambda: 0.5), retry_delay(2, None, rng=lambda: 1.0)
    (2.1, 2.0)
    """
    if retry_after_s is not None:
        return retry_after_s * (1.0 + 0.1 * rng())
    return 0.5 * 2.0**attempt * rng()


@dataclass
class BudgetGuard:
    """The daily budget: `spent_today()` against `daily_usd` before each paid request.

    With `UsageStats` the spend is what was recorded today (local time), across every
    process that shares the statistics file; without, it is this process's own tally.
    """

    daily_usd: float
    spent_today: Callable[[], float]
    _tally: float = 0.0

    @classmethod
    def in_memory(cls, daily_usd: float) -> BudgetGuard:
        guard = cls(daily_usd, lambda: 0.0)
        guard.spent_today = lambda: guard._tally
        return guard

    def check(self, who: str) -> None:
        spent = self.spent_today()
        if spent >= self.daily_usd:
            raise BudgetExceeded(
                f"The daily budget of {format_usd(self.daily_usd)} is spent "
                f"({format_usd(spent)} today), so paid requests to {who} are refused until "
                "midnight; local models still work. Raise `budget.dailyUsd` in "
                f"{USER_CONFIG_DISPLAY} to allow more.", status=402)

    def add(self, cost: float | None) -> None:
        if cost:
            self._tally += cost


def start_of_today() -> float:
    """The epoch time of the last local midnight."""
    now = time.localtime()
    return time.mktime((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0, 0, 0, -1))
