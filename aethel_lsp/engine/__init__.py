"""The inference engine: one async `Engine` interface, one module per backend, one factory.

Everything a caller needs is importable from here; `tests/unit/test_engine_api.py`
locks `__all__` so that a change to the public API is a deliberate one.

Names are resolved lazily (PEP 562 `__getattr__`): importing `aethel_lsp.engine` or one
of its light submodules (`base`, `types`, `errors`, `stats`, ...) does not import httpx
or any backend, so the language server answers `initialize` without paying for them;
the first use of `OllamaEngine`, `create_engine(...)`'s backend, etc. imports them.
`tests/unit/test_lazy_imports.py` locks this.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aethel_lsp.engine._http import RetryPolicy
    from aethel_lsp.engine.anthropic import AnthropicEngine
    from aethel_lsp.engine.auto import AutoEngine
    from aethel_lsp.engine.base import Engine, closing_stream, collect
    from aethel_lsp.engine.errors import (
        AuthenticationFailed,
        CapabilityMissing,
        EngineBusy,
        EngineError,
        EngineNotInstalled,
        EngineOffline,
        EngineTimeout,
        EngineUnavailable,
        InvalidRequest,
        MalformedResponse,
        ModelNotFound,
        ModelNotFoundError,
        NoEngineAvailable,
        OllamaNotAvailableError,
        ServerError,
        StreamError,
    )
    from aethel_lsp.engine.facade import (
        LocalEngine,
        LocalInferenceRequest,
        LocalInferenceResponse,
        OllamaModel,
        get_local_engine,
    )
    from aethel_lsp.engine.factory import EngineChoice, EngineConfig, create_engine
    from aethel_lsp.engine.metered import MeteredEngine
    from aethel_lsp.engine.ollama import OllamaEngine
    from aethel_lsp.engine.openai_compat import OpenAIEngine
    from aethel_lsp.engine.providers.limits import BudgetExceeded, RateLimited
    from aethel_lsp.engine.providers.router import ProviderRouter
    from aethel_lsp.engine.recommend import (
        USE_CASES,
        Recommendation,
        UseCase,
        recommend_all,
        recommend_installed,
    )
    from aethel_lsp.engine.stats import ModelUsage, ProbeResult, UsageStats
    from aethel_lsp.engine.types import (
        ChatMessage,
        ChatRequest,
        Chunk,
        EngineStatus,
        EngineTimeouts,
        FallbackNote,
        GenerateRequest,
        GenerateResult,
        GenerationOptions,
        Metrics,
        ModelInfo,
        PullProgress,
        RunningModel,
    )
    from aethel_lsp.hosts import is_loopback, ollama_host_from_env, parse_ollama_host

# public name -> submodule of aethel_lsp.engine that defines it
_SOURCES: dict[str, str] = {
    "AnthropicEngine": "anthropic",
    "BudgetExceeded": "aethel_lsp.engine.providers.limits",
    "FallbackNote": "types",
    "ProviderRouter": "aethel_lsp.engine.providers.router",
    "RateLimited": "aethel_lsp.engine.providers.limits",
    "AuthenticationFailed": "errors",
    "AutoEngine": "auto",
    "CapabilityMissing": "errors",
    "ChatMessage": "types",
    "ChatRequest": "types",
    "Chunk": "types",
    "Engine": "base",
    "EngineBusy": "errors",
    "EngineChoice": "factory",
    "EngineConfig": "factory",
    "EngineError": "errors",
    "EngineNotInstalled": "errors",
    "EngineOffline": "errors",
    "EngineStatus": "types",
    "EngineTimeout": "errors",
    "EngineTimeouts": "types",
    "EngineUnavailable": "errors",
    "GenerateRequest": "types",
    "GenerateResult": "types",
    "GenerationOptions": "types",
    "InvalidRequest": "errors",
    "LocalEngine": "facade",
    "LocalInferenceRequest": "facade",
    "LocalInferenceResponse": "facade",
    "MalformedResponse": "errors",
    "MeteredEngine": "metered",
    "Metrics": "types",
    "ModelInfo": "types",
    "ModelNotFound": "errors",
    "ModelNotFoundError": "errors",
    "ModelUsage": "stats",
    "NoEngineAvailable": "errors",
    "OllamaEngine": "ollama",
    "OllamaModel": "facade",
    "OllamaNotAvailableError": "errors",
    "OpenAIEngine": "openai_compat",
    "ProbeResult": "stats",
    "PullProgress": "types",
    "Recommendation": "recommend",
    "RetryPolicy": "_http",
    "RunningModel": "types",
    "ServerError": "errors",
    "StreamError": "errors",
    "USE_CASES": "recommend",
    "UsageStats": "stats",
    "UseCase": "recommend",
    "closing_stream": "base",
    "collect": "base",
    "create_engine": "factory",
    "get_local_engine": "facade",
    "is_loopback": "aethel_lsp.hosts",
    "ollama_host_from_env": "aethel_lsp.hosts",
    "parse_ollama_host": "aethel_lsp.hosts",
    "recommend_all": "recommend",
    "recommend_installed": "recommend",
}


def __getattr__(name: str) -> Any:
    """Import the submodule defining `name` on first use, then cache the value here."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = source if "." in source else f"{__name__}.{source}"  # host parsing sits lower
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "USE_CASES",
    "AnthropicEngine",
    "AuthenticationFailed",
    "AutoEngine",
    "BudgetExceeded",
    "CapabilityMissing",
    "ChatMessage",
    "ChatRequest",
    "Chunk",
    "Engine",
    "EngineBusy",
    "EngineChoice",
    "EngineConfig",
    "EngineError",
    "EngineNotInstalled",
    "EngineOffline",
    "EngineStatus",
    "EngineTimeout",
    "EngineTimeouts",
    "EngineUnavailable",
    "FallbackNote",
    "GenerateRequest",
    "GenerateResult",
    "GenerationOptions",
    "InvalidRequest",
    "LocalEngine",
    "LocalInferenceRequest",
    "LocalInferenceResponse",
    "MalformedResponse",
    "MeteredEngine",
    "Metrics",
    "ModelInfo",
    "ModelNotFound",
    "ModelNotFoundError",
    "ModelUsage",
    "NoEngineAvailable",
    "OllamaEngine",
    "OllamaModel",
    "OllamaNotAvailableError",
    "OpenAIEngine",
    "ProbeResult",
    "ProviderRouter",
    "PullProgress",
    "RateLimited",
    "Recommendation",
    "RetryPolicy",
    "RunningModel",
    "ServerError",
    "StreamError",
    "UsageStats",
    "UseCase",
    "closing_stream",
    "collect",
    "create_engine",
    "get_local_engine",
    "is_loopback",
    "ollama_host_from_env",
    "parse_ollama_host",
    "recommend_all",
    "recommend_installed",
]
