"""The engine's error tree: one exception per failure a person can act on.

Every backend translates its low-level failures (httpx errors, HTTP statuses, error
lines inside a stream, llama.cpp exceptions) into these, in one place per backend.
`str(error)` is always a complete sentence that says what happened and what to do.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every engine failure; `host` says where we were talking to.

    `retry_after_s` is the server's own `retry-after` (HTTP 429/503/529), when it sent one:
    the provider layer waits that long instead of guessing.
    """

    retry_after_s: float | None = None

    def __init__(self, message: str, *, host: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.host = host
        self.status = status

    def __str__(self) -> str:
        return self.message


class EngineOffline(EngineError):
    """Nothing answers at the host (connection refused, DNS failure, unreachable)."""


class ModelNotFound(EngineError):
    """The engine answered, and the model is not installed there (HTTP 404)."""

    def __init__(self, message: str, *, model: str, host: str | None = None):
        super().__init__(message, host=host, status=404)
        self.model = model


class CapabilityMissing(EngineError):
    """The model cannot do what was asked, e.g. `suffix` without the `insert` capability."""

    def __init__(self, message: str, *, model: str, capability: str, host: str | None = None):
        super().__init__(message, host=host, status=400)
        self.model = model
        self.capability = capability


class InvalidRequest(EngineError):
    """The engine rejected the request (HTTP 400 other than a missing capability)."""


class ContextTooLong(InvalidRequest):
    """The prompt does not fit in the context the server runs with (llama.cpp's
    `exceed_context_size_error`, vLLM's "maximum context length"): trying again cannot help."""

    def __init__(self, message: str, *, prompt_tokens: int | None = None,
                 context_size: int | None = None, host: str | None = None) -> None:
        super().__init__(message, host=host, status=400)
        self.prompt_tokens = prompt_tokens
        self.context_size = context_size


class LoadedModelsUnknown(EngineError):
    """The engine cannot say which models are loaded (an OpenAI-compatible server that
    lists what it can serve, not what is in memory)."""


class AuthenticationFailed(EngineError):
    """HTTP 401/403 from an OpenAI-compatible server: the API key is missing or wrong."""


class EngineBusy(EngineError):
    """HTTP 503 / 429: the engine's queue is full; retried with backoff before surfacing."""


class ServerError(EngineError):
    """HTTP 5xx from the engine."""


class StreamError(EngineError):
    """The engine reported an error inside a stream that had already started (HTTP 200)."""


class MalformedResponse(EngineError):
    """A line or body that is not what the protocol promises (bad JSON, truncated stream)."""


class EngineTimeout(EngineError):
    """No answer in time: `phase` is "connect", "first_token", "between_tokens", or "read"
    (a non-streamed request such as `/api/tags` whose answer did not come in time)."""

    def __init__(self, message: str, *, phase: str, host: str | None = None):
        super().__init__(message, host=host)
        self.phase = phase


class EngineNotInstalled(EngineError):
    """The selected backend's optional dependency (e.g. xllamacpp) is missing."""


class NoEngineAvailable(EngineError):
    """`engine = "auto"` found neither a running Ollama nor an installed embedded engine."""
