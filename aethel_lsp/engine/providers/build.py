"""Build a `ProviderRouter` from the provider settings: one backend per endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aethel_lsp.config.provider_settings import ProviderConfig, ProviderSettings
from aethel_lsp.engine._http import RetryPolicy
from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import EngineNotInstalled
from aethel_lsp.engine.providers.endpoints import Endpoint
from aethel_lsp.engine.providers.engine import ProviderEngine
from aethel_lsp.engine.providers.limits import BudgetGuard, start_of_today
from aethel_lsp.engine.providers.router import ProviderRouter
from aethel_lsp.engine.types import EngineTimeouts

if TYPE_CHECKING:
    import httpx

    from aethel_lsp.engine.stats import UsageStats

# The provider layer retries busy answers itself (honouring retry-after, reporting the
# wait, trying another endpoint first), so each endpoint's backend answers at once.
NO_BACKEND_RETRY = RetryPolicy(attempts=1)


def build_router(local: Engine, config: ProviderConfig, timeouts: EngineTimeouts, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 stats: UsageStats | None = None) -> ProviderRouter:
    budget = _budget(config, stats)
    providers = {
        settings.name: ProviderEngine(settings, _endpoints(settings, timeouts, transport),
                                      timeouts=timeouts, budget=budget)
        for settings in config.providers
    }
    return ProviderRouter(local, providers, config)


def _budget(config: ProviderConfig, stats: UsageStats | None) -> BudgetGuard | None:
    daily = config.budget.daily_usd
    if daily is None:
        return None
    if stats is None:
        return BudgetGuard.in_memory(daily)
    return BudgetGuard(daily, lambda: stats.cost_since(start_of_today()))


def _endpoints(settings: ProviderSettings, timeouts: EngineTimeouts,
               transport: httpx.AsyncBaseTransport | None) -> list[Endpoint]:
    if settings.kind == "embedded":
        return [Endpoint("embedded", _embedded())]
    return [Endpoint(host, _backend(settings, host, timeouts, transport))
            for host in settings.hosts]


def _backend(settings: ProviderSettings, host: str, timeouts: EngineTimeouts,
             transport: httpx.AsyncBaseTransport | None) -> Engine:
    if settings.kind == "ollama":
        from aethel_lsp.engine.ollama import OllamaEngine

        return OllamaEngine(host, timeouts=timeouts, transport=transport,
                            retry=NO_BACKEND_RETRY)
    if settings.kind == "openai":
        from aethel_lsp.engine.openai_compat import OpenAIEngine

        return OpenAIEngine(host, api_key_env=settings.api_key_env, timeouts=timeouts,
                            transport=transport, retry=NO_BACKEND_RETRY)
    from aethel_lsp.engine.anthropic import AnthropicEngine

    return AnthropicEngine(host, api_key_env=settings.api_key_env,
                           api_version=settings.api_version, timeouts=timeouts,
                           transport=transport, retry=NO_BACKEND_RETRY)


def _embedded() -> Engine:
    from aethel_lsp.engine.auto import load_embedded_engine, with_install_hint

    engine, why_not = load_embedded_engine(None, 0)
    if engine is None:
        raise EngineNotInstalled(with_install_hint(why_not), host="embedded")
    return engine
