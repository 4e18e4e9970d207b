"""Locks the engine's public API: changing it must be a deliberate edit of this list."""

from __future__ import annotations

from pathlib import Path

import aethel_lsp.engine as engine

PUBLIC_API = [
    "USE_CASES", "AuthenticationFailed", "AutoEngine", "CapabilityMissing", "ChatMessage",
    "ChatRequest", "Chunk", "Engine", "EngineBusy", "EngineChoice", "EngineConfig",
    "EngineError", "EngineNotInstalled", "EngineOffline", "EngineStatus", "EngineTimeout",
    "EngineTimeouts", "GenerateRequest", "GenerateResult", "GenerationOptions",
    "InvalidRequest", "LocalEngine", "LocalInferenceRequest", "LocalInferenceResponse",
    "MalformedResponse", "MeteredEngine", "Metrics", "ModelInfo", "ModelNotFound",
    "ModelUsage", "NoEngineAvailable", "OllamaEngine", "OllamaModel", "OpenAIEngine",
    "ProbeResult", "PullProgress", "Recommendation", "RetryPolicy", "RunningModel",
    "ServerError", "StreamError", "UsageStats", "UseCase", "closing_stream", "collect",
    "create_engine", "is_loopback", "ollama_host_from_env", "parse_ollama_host",
    "recommend_all", "recommend_installed",
    # issue 19: providers
    "AnthropicEngine", "BudgetExceeded", "FallbackNote", "ProviderRouter", "RateLimited",
    # issue 20: the earlier LocalEngine's names, and the branch they alias
    "EngineUnavailable", "ModelNotFoundError", "OllamaNotAvailableError", "get_local_engine",
]


def test_all_is_locked() -> None:
    assert sorted(engine.__all__) == sorted(PUBLIC_API)


def test_every_public_name_exists() -> None:
    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert missing == []


def test_error_tree() -> None:
    errors = [engine.EngineOffline, engine.ModelNotFound, engine.CapabilityMissing,
              engine.InvalidRequest, engine.AuthenticationFailed, engine.EngineBusy,
              engine.ServerError, engine.StreamError, engine.MalformedResponse,
              engine.EngineTimeout, engine.EngineNotInstalled, engine.NoEngineAvailable,
              engine.BudgetExceeded, engine.RateLimited]
    assert all(issubclass(error, engine.EngineError) for error in errors)


def test_unavailable_is_every_failure_of_the_engine_and_no_failure_of_the_request() -> None:
    unavailable = [engine.EngineOffline, engine.EngineTimeout, engine.EngineBusy,
                   engine.ServerError, engine.StreamError, engine.MalformedResponse,
                   engine.EngineNotInstalled, engine.NoEngineAvailable]
    request_errors = [engine.ModelNotFound, engine.CapabilityMissing, engine.InvalidRequest,
                      engine.AuthenticationFailed]
    assert all(issubclass(error, engine.EngineUnavailable) for error in unavailable)
    assert not any(issubclass(error, engine.EngineUnavailable) for error in request_errors)


def test_the_earlier_engines_exception_names_are_aliases() -> None:
    assert engine.OllamaNotAvailableError is engine.EngineUnavailable
    assert engine.ModelNotFoundError is engine.ModelNotFound


def test_engine_layer_has_no_lsp_imports() -> None:
    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith("aethel_lsp.engine") and module is not None:
            source = getattr(module, "__file__", "") or ""
            if source.endswith(".py"):
                text = Path(source).read_text(encoding="utf-8")
                assert "import pygls" not in text and "from pygls" not in text, name
                assert "lsprotocol" not in text, name
