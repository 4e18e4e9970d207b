"""The engine's error tree: one exception per failure a person can act on.

Every backend translates its low-level failures (httpx errors, HTTP statuses, error
lines inside a stream, llama.cpp exceptions) into these, in one place per backend.
`str(error)` is always a complete sentence that says what happened and what to do.

Two branches matter to a caller deciding what to do next: `EngineUnavailable` (the
engine could not answer: start it, wait, or fix it; the request may be fine) and the
request errors (`ModelNotFound`, `CapabilityMissing`, `InvalidRequest`,
`AuthenticationFailed`: change the request or the configuration).  The earlier
`LocalEngine`'s exception names are aliases at the end of this module.
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


class EngineUnavailable(EngineError):
    """The engine could not answer: nothing listens, no answer in time, queue full, it
    failed or broke off, or no backend is there to ask.  Retrying later, or starting or
    fixing the engine, helps; changing the request does not."""


class EngineOffline(EngineUnavailable):
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


class EngineBusy(EngineUnavailable):
    """HTTP 503 / 429: the engine's queue is full; retried with backoff before surfacing."""


class ServerError(EngineUnavailable):
    """HTTP 5xx from the engine."""


class StreamError(EngineUnavailable):
    """The engine reported an error inside a stream that had already started (HTTP 200)."""


class MalformedResponse(EngineUnavailable):
    """A line or body that is not what the protocol promises (bad JSON, truncated stream)."""


class EngineTimeout(EngineUnavailable):
    """No answer in time: `phase` is "connect", "first_token", "between_tokens", "read"
    (a non-streamed request such as `/api/tags` whose answer did not come in time), or
    "total" (the whole request outlived `EngineTimeouts.total_s`)."""

    def __init__(self, message: str, *, phase: str, host: str | None = None):
        super().__init__(message, host=host)
        self.phase = phase


class EngineNotInstalled(EngineUnavailable):
    """The selected backend's optional dependency (e.g. xllamacpp) is missing."""


class NoEngineAvailable(EngineUnavailable):
    """`engine = "auto"` found neither a running Ollama nor an installed embedded engine."""


# -- the earlier LocalEngine's names (Aethel's `aethel/ai/local_engine.py`) -------------------
# Aliases, not subclasses, so that `except OllamaNotAvailableError` and `except
# EngineUnavailable` are the same clause.  The earlier engine raised OllamaNotAvailableError
# for every HTTP failure, 4xx included; here a bad request is not "unavailable" (it is
# InvalidRequest / CapabilityMissing / AuthenticationFailed; catch EngineError for all).
OllamaNotAvailableError = EngineUnavailable
ModelNotFoundError = ModelNotFound
