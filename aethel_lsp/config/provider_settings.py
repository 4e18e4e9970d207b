"""The typed, frozen form of the machine-scoped provider settings (parsed in providers.py).

Kept apart from the parsing so that `schema.Settings` can hold a `ProviderConfig`
without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ProviderKind = Literal["ollama", "openai", "anthropic", "embedded"]


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, generated_tokens: int) -> float:
        return (prompt_tokens * self.input + generated_tokens * self.output) / 1_000_000


@dataclass(frozen=True)
class ProviderSettings:
    """One named engine: what it is, where it answers, its key, limits and prices."""

    name: str
    kind: ProviderKind
    hosts: tuple[str, ...] = ()
    api_key_env: str = ""
    api_version: str = ""  # anthropic only
    model: str = ""  # the model it serves when the fallback chain reaches it
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    prices: tuple[tuple[str, Price], ...] = ()  # model -> price, user overrides
    max_retries: int = 3  # 429/529 retries honouring retry-after

    def price_for(self, model: str) -> Price | None:
        return dict(self.prices).get(model)


@dataclass(frozen=True)
class BudgetSettings:
    daily_usd: float | None = None


@dataclass(frozen=True)
class ProviderConfig:
    """Everything machine-scoped about providers; empty = today's single engine."""

    providers: tuple[ProviderSettings, ...] = ()
    fallback: tuple[str, ...] = ()
    budget: BudgetSettings = BudgetSettings()

    def get(self, name: str) -> ProviderSettings | None:
        return next((p for p in self.providers if p.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)
