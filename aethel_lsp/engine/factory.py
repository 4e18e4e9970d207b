"""The one factory: a tagged `EngineConfig` in, the matching `Engine` out.

Backends are chosen by `kind` only here, so nothing else in the code base needs to know
which classes exist.  Every backend is imported only when `create_engine` builds one:
`EngineConfig` is needed at server start, httpx and the backends only at the first
request (and the embedded backend is an optional extra).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aethel_lsp.config import Settings
from aethel_lsp.config.provider_settings import ProviderConfig
from aethel_lsp.engine.errors import EngineError, EngineNotInstalled, InvalidRequest
from aethel_lsp.engine.types import EngineKind, EngineStatus, EngineTimeouts

if TYPE_CHECKING:
    import httpx

    from aethel_lsp.engine.base import Engine
    from aethel_lsp.engine.stats import UsageStats

EngineChoice = Literal["auto", "ollama", "openai", "embedded"]

__all__ = ["EngineChoice", "EngineConfig", "EngineTimeouts", "create_engine", "import_backends",
           "unbuilt_status"]


@dataclass(frozen=True)
class EngineConfig:
    """Which engine to talk to and how; the resolved form of the user's settings."""

    kind: EngineChoice = "auto"
    host: str | None = None  # any OLLAMA_HOST form; None = http://127.0.0.1:11434
    openai_base_url: str = ""
    openai_api_key_env: str = ""
    embedded_model_path: str | None = None
    embedded_threads: int = 0
    timeouts: EngineTimeouts = field(default_factory=EngineTimeouts)
    # Named providers, fallback chain and budget (user config only); empty = one engine.
    providers: ProviderConfig = field(default_factory=ProviderConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        """The engine part of the settings; the CLI overrides kind and host from its flags."""
        return cls(
            kind=settings.engine,
            host=settings.host,
            openai_base_url=settings.openai.base_url,
            openai_api_key_env=settings.openai.api_key_env,
            embedded_model_path=settings.embedded.model_path or None,
            embedded_threads=settings.embedded.threads,
            timeouts=EngineTimeouts(
                connect_s=settings.timeouts.connect_ms / 1000,
                first_token_s=settings.timeouts.first_token_ms / 1000,
                between_tokens_s=settings.timeouts.between_tokens_ms / 1000,
                total_s=settings.timeouts.total_ms / 1000,
            ),
            providers=settings.providers,
        )


def create_engine(
    config: EngineConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Callable[[Any], None] | None = None,
    stats: UsageStats | None = None,
) -> Engine:
    """Build the engine `config.kind` names (`transport` is the test seam for HTTP backends).

    `progress` hears the embedded engine's long first steps (`EmbeddedProgress`: model
    load, first prompt), for a command line that wants to show them.  With providers
    configured, that engine becomes the "local" one of a `ProviderRouter` (`stats`, when
    given, is where the daily budget reads today's spend).
    """
    local = _local_engine(config, transport, progress)
    if not config.providers.providers:
        return local
    from aethel_lsp.engine.providers.build import build_router

    return build_router(local, config.providers, config.timeouts, transport=transport,
                        stats=stats)


def _local_engine(config: EngineConfig, transport: httpx.AsyncBaseTransport | None,
                  progress: Callable[[Any], None] | None) -> Engine:
    from aethel_lsp.engine.auto import AutoEngine, load_embedded_engine
    from aethel_lsp.engine.ollama import OllamaEngine
    from aethel_lsp.engine.openai_compat import OpenAIEngine

    if config.kind == "ollama":
        return OllamaEngine(config.host, timeouts=config.timeouts, transport=transport)
    if config.kind == "openai":
        return OpenAIEngine(config.openai_base_url, api_key_env=config.openai_api_key_env,
                            timeouts=config.timeouts, transport=transport)
    if config.kind == "embedded":
        return _embedded(config, progress)
    if config.kind == "auto":
        ollama = OllamaEngine(config.host, timeouts=config.timeouts, transport=transport)
        return AutoEngine(ollama, embedded_loader=lambda: load_embedded_engine(
            config.embedded_model_path, config.embedded_threads, progress=progress,
            timeouts=config.timeouts))
    raise InvalidRequest(f"Unknown engine {config.kind!r}: use auto, ollama, openai or embedded.")


def import_backends() -> None:
    """Import the HTTP backends (and httpx) now.

    The server calls this on a worker thread right after `initialize` has been answered,
    so neither `initialize` nor the first request pays for the import on the event loop.
    """
    import aethel_lsp.engine.auto
    import aethel_lsp.engine.ollama
    import aethel_lsp.engine.openai_compat  # noqa: F401


def _embedded(config: EngineConfig, progress: Callable[[Any], None] | None) -> Engine:
    from aethel_lsp.engine.auto import load_embedded_engine, with_install_hint

    engine, why_not = load_embedded_engine(config.embedded_model_path, config.embedded_threads,
                                           progress=progress, timeouts=config.timeouts,
                                           require_model=False)
    if engine is None:
        raise EngineNotInstalled(with_install_hint(why_not), host="embedded")
    return engine


def unbuilt_status(config: EngineConfig, error: EngineError) -> EngineStatus:
    """The status when `create_engine(config)` itself failed (e.g. `embedded.modelPath`
    names no file): not available, with that reason — `status` exists to say exactly this."""
    kind: EngineKind = "ollama" if config.kind == "auto" else config.kind
    return EngineStatus(False, error.host or config.host or kind, kind, error=str(error))
