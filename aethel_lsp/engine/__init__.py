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
from aethel_lsp.engine.factory import EngineConfig, create_engine
from aethel_lsp.engine.hosts import is_loopback, ollama_host_from_env, parse_ollama_host
from aethel_lsp.engine.ollama import OllamaEngine
from aethel_lsp.engine.openai_compat import OpenAIEngine
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
    "AuthenticationFailed",
    "AutoEngine",
    "CapabilityMissing",
    "ChatMessage",
    "ChatRequest",
    "Chunk",
    "Engine",
    "EngineBusy",
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
    "MalformedResponse",
    "Metrics",
    "ModelInfo",
    "ModelNotFound",
    "NoEngineAvailable",
    "OllamaEngine",
    "OpenAIEngine",
    "PullProgress",
    "RetryPolicy",
    "RunningModel",
    "ServerError",
    "StreamError",
    "closing_stream",
    "collect",
    "create_engine",
    "is_loopback",
    "ollama_host_from_env",
    "parse_ollama_host",
]
