"""The inference engine: one async `Engine` interface, one module per backend, one factory.

Everything a caller needs is importable from here; `tests/unit/test_engine_api.py`
locks `__all__` so that a change to the public API is a deliberate one.
"""

from __future__ import annotations

from aethel_lsp.engine._http import RetryPolicy
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
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    NoEngineAvailable,
    ServerError,
    StreamError,
)
from aethel_lsp.engine.facade import (
    LocalEngine,
    LocalInferenceRequest,
    LocalInferenceResponse,
    OllamaModel,
)
from aethel_lsp.engine.factory import EngineChoice, EngineConfig, create_engine
from aethel_lsp.engine.hosts import is_loopback, ollama_host_from_env, parse_ollama_host
from aethel_lsp.engine.metered import MeteredEngine
from aethel_lsp.engine.ollama import OllamaEngine
from aethel_lsp.engine.openai_compat import OpenAIEngine
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
    GenerateRequest,
    GenerateResult,
    GenerationOptions,
    Metrics,
    ModelInfo,
    PullProgress,
    RunningModel,
)

__all__ = [
    "USE_CASES",
    "AuthenticationFailed",
    "AutoEngine",
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
    "ModelUsage",
    "NoEngineAvailable",
    "OllamaEngine",
    "OllamaModel",
    "OpenAIEngine",
    "ProbeResult",
    "PullProgress",
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
    "is_loopback",
    "ollama_host_from_env",
    "parse_ollama_host",
    "recommend_all",
    "recommend_installed",
]
