"""The Anthropic backend: Claude through the Messages API (`POST /v1/messages`, streamed).

Streams named server-sent events: `message_start` carries `usage.input_tokens`,
`content_block_delta` (`text_delta`) the text, `message_delta` the stop reason and
`usage.output_tokens`, `message_stop` the end; `ping` keeps the connection alive and an
`error` event (e.g. `overloaded_error`) may arrive after HTTP 200.  Token counts are
Anthropic's own; time to first token, latency and tokens per second are measured here.

API versions (`anthropic-version`, a provider setting): the current `2026-10-21` removed
`temperature`, `top_p` and `top_k` (a request sending any of them is refused with HTTP 400,
even at default values), so none is sent under it; `2023-06-01` still takes them.  The key
goes out as `Authorization: Bearer` under 2026-10-21, as Anthropic's SDKs send it, and as
`x-api-key` under 2023-06-01.  It is read from the environment at each request, never
stored, logged, or echoed in a message.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from aethel_lsp.engine._http import MAX_ERROR_TEXT, HttpSession, RetryPolicy, StreamClock
from aethel_lsp.engine._remote import (
    KeyFromEnv,
    api_client,
    failed_status,
    failing_stream,
    key_advice,
    scrub_key,
)
from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import (
    AuthenticationFailed,
    CapabilityMissing,
    EngineBusy,
    EngineError,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    StreamError,
)
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineKind,
    EngineStatus,
    EngineTimeouts,
    GenerateRequest,
    GenerationOptions,
    JsonDict,
    Metrics,
    ModelInfo,
    PullProgress,
    RunningModel,
    WireRequest,
)

CURRENT_API_VERSION = "2026-10-21"
LEGACY_API_VERSION = "2023-06-01"
API_VERSIONS = (CURRENT_API_VERSION, LEGACY_API_VERSION)
DEFAULT_HOST = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 1024  # `max_tokens` is required by the Messages API
BUSY = (429, 503, 529)
# Anthropic's stop reasons in the vocabulary the rest of the code uses (Ollama's).
_DONE_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def normalize_anthropic_host(raw: str) -> str:
    """The API root without a trailing `/v1` (paths are added per request).

    >>> normalize_anthropic_host("https://api.anthropic.com/v1/")
    'https://api.anthropic.com'
    >>> normalize_anthropic_host("127.0.0.1:8080")
    'http://127.0.0.1:8080'
    """
    text = raw.strip().rstrip("/").removesuffix("/v1")
    return text if "://" in text else f"http://{text}"


class AnthropicEngine(Engine):
    """An `Engine` on Anthropic's Messages API (or a server that speaks it)."""

    kind: EngineKind = "anthropic"

    def __init__(
        self,
        base_url: str = DEFAULT_HOST,
        *,
        api_key_env: str = "ANTHROPIC_API_KEY",
        api_version: str = CURRENT_API_VERSION,
        timeouts: EngineTimeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if api_version not in API_VERSIONS:
            raise InvalidRequest(f"Unknown anthropic-version {api_version!r}: use "
                                 f"{CURRENT_API_VERSION} or {LEGACY_API_VERSION}.")
        self.host = normalize_anthropic_host(base_url or DEFAULT_HOST)
        self.api_key_env = api_key_env
        self.api_version = api_version
        self.timeouts = timeouts or EngineTimeouts()
        self._errors = _AnthropicErrors(self.host, api_key_env)
        self._client = api_client(
            self.host, self.timeouts, transport, headers={"anthropic-version": api_version},
            auth=_anthropic_key(api_key_env, bearer=api_version == CURRENT_API_VERSION))
        retry = retry or RetryPolicy()
        self._http = HttpSession(
            self._client, host=self.host, timeouts=self.timeouts, errors=self._errors,
            retry=RetryPolicy(retry.attempts, retry.backoff_s, busy_statuses=BUSY))

    def __repr__(self) -> str:
        return (f"AnthropicEngine(host={self.host!r}, api_key_env={self.api_key_env!r}, "
                f"api_version={self.api_version!r})")

    async def version(self) -> str:
        await self.list_models()
        return f"anthropic-version {self.api_version}"

    async def status(self) -> EngineStatus:
        """Never raises."""
        try:
            models = tuple(await self.list_models())
        except Exception as exc:  # a health check reports, it does not crash its caller
            return failed_status(self.kind, self.host, exc)
        return EngineStatus(True, self.host, self.kind,
                            version=f"anthropic-version {self.api_version}", models=models,
                            reason=f"The Messages API answered at {self.host}")

    async def list_models(self) -> list[ModelInfo]:
        data = await self._http.request_json("GET", "/v1/models?limit=1000", None,
                                             what="the model list", model=None)
        entries = data.get("data")
        if not isinstance(entries, list):
            return []
        return [self._model(entry) for entry in entries if isinstance(entry, dict)]

    async def show(self, model: str) -> ModelInfo:
        data = await self._http.request_json("GET", f"/v1/models/{quote(model, safe='')}", None,
                                             what=f"the details of '{model}'", model=model)
        return self._model(data)

    async def running(self) -> list[RunningModel]:
        return []  # a hosted API has no notion of loaded models

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        if request.suffix is not None:
            return failing_stream(CapabilityMissing(
                f"The Messages API at {self.host} cannot fill in the middle (a suffix was "
                f"given for '{request.model}') — use a local FIM model for completion.",
                model=request.model, capability="insert", host=self.host))
        body = messages_body(request.model, request.system,
                             [{"role": "user", "content": request.prompt}], request.options,
                             self.api_version)
        return self._generation(request, body)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        turns = [{"role": "assistant" if m.role == "assistant" else "user",
                  "content": m.content} for m in request.messages if m.role != "system"]
        body = messages_body(request.model, system or None, turns, request.options,
                             self.api_version)
        return self._generation(request, body)

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Raises on first use: hosted models are not downloaded."""
        return failing_stream(InvalidRequest(
            f"'{model}' is a hosted model at {self.host}: there is nothing to download.",
            host=self.host))

    async def _generation(self, request: GenerateRequest | ChatRequest,
                          body: JsonDict) -> AsyncIterator[Chunk]:
        model = request.model
        request.sent(WireRequest("messages", "/v1/messages", body))
        clock = StreamClock()
        state = _StreamState()
        async with contextlib.aclosing(self._http.stream_lines(
                "/v1/messages", body, model=model, clock=clock,
                what="the generation")) as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue  # `event:` names repeat the data's own `type`
                event = self._errors.event(line[5:].strip(), model)
                text = state.absorb(event)
                if text:
                    clock.mark_token()
                    yield Chunk(text=text)
                if state.stopped:
                    yield Chunk(done=True, metrics=state.metrics(model, clock))
                    return
        raise MalformedResponse(
            f"The stream from '{model}' at {self.host} ended without `message_stop` "
            "(connection closed or truncated) — try again.", host=self.host)

    def _model(self, entry: JsonDict) -> ModelInfo:
        name = entry.get("id")
        window = entry.get("max_input_tokens")
        return ModelInfo(
            name=name if isinstance(name, str) else "",
            context_length=window if isinstance(window, int) else None,
            family="claude",
            capabilities=("completion",),
            modified_at=entry.get("created_at") if isinstance(entry.get("created_at"),
                                                              str) else None,
            remote_host=self.host,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def messages_body(model: str, system: str | None, messages: list[JsonDict],
                  options: GenerationOptions, api_version: str) -> JsonDict:
    """The exact `/v1/messages` body; sampling parameters only where the version takes them.

    >>> messages_body("m", None, [], GenerationOptions(temperature=0.2), "2026-10-21")
    {'model': 'm', 'max_tokens': 1024, 'messages': [], 'stream': True}
    >>> messages_body("m", "s", [], GenerationOptions(temperature=0.2), "2023-06-01")["temperature"]
    0.2
    """
    body: JsonDict = {"model": model, "max_tokens": options.num_predict or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = system
    body["messages"] = messages
    body["stream"] = True
    if options.stop:
        body["stop_sequences"] = list(options.stop)
    if api_version == LEGACY_API_VERSION:
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.top_p is not None:
            body["top_p"] = options.top_p
    return body


def _anthropic_key(env_name: str, *, bearer: bool) -> KeyFromEnv:
    """The key from the environment at send time: Bearer (2026-10-21) or x-api-key."""
    return KeyFromEnv(env_name) if bearer else KeyFromEnv(env_name, header="x-api-key",
                                                          scheme="")


@dataclass
class _StreamState:
    """What the events said so far: counts, stop reason, and whether it ended."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None
    stopped: bool = False

    def absorb(self, event: JsonDict) -> str:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self.input_tokens = _prompt_tokens(usage)
        elif kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                return text if isinstance(text, str) else ""
        elif kind == "message_delta":
            delta, usage = event.get("delta"), event.get("usage")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self.stop_reason = str(delta["stop_reason"])
            if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
                self.output_tokens = int(usage["output_tokens"])
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def metrics(self, model: str, clock: StreamClock) -> Metrics:
        generating_s = clock.since_first_token_s()
        rate = (self.output_tokens / generating_s
                if self.output_tokens and generating_s else None)
        return Metrics(
            model=model,
            prompt_tokens=self.input_tokens,
            tokens_generated=self.output_tokens,
            time_to_first_token_ms=clock.ttft_ms(),
            latency_ms=clock.elapsed_ms(),
            tokens_per_second=rate,
            done_reason=_DONE_REASONS.get(self.stop_reason or "", self.stop_reason),
        )


def _prompt_tokens(usage: JsonDict) -> int | None:
    """Input tokens including the cached ones (Anthropic reports them apart)."""
    parts = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens",
                                    "cache_read_input_tokens")]
    numbers = [p for p in parts if isinstance(p, int) and not isinstance(p, bool)]
    return sum(numbers) if numbers else None


class _AnthropicErrors:
    """HTTP statuses, error bodies and `error` events of the Messages API -> engine errors."""

    def __init__(self, host: str, api_key_env: str) -> None:
        self.host = host
        self.api_key_env = api_key_env

    def offline_message(self) -> str:
        return f"Nothing answers at {self.host} — check the network or the provider's `hosts`."

    def scrub(self, text: str) -> str:
        return scrub_key(text, self.api_key_env)

    def from_status(self, status: int, body: str, *, model: str | None, attempts: int,
                    path: str) -> EngineError:
        kind, text, details = _error_parts(body)
        text = self.scrub(text)
        where = f"{self.host} (HTTP {status} {kind}: {text})"
        if status in (401, 403) or kind in ("authentication_error", "permission_error"):
            return AuthenticationFailed(f"{where} — {self._key_advice()}.", host=self.host,
                                        status=status)
        if status == 404 and model is not None:
            return ModelNotFound(f"Model '{model}' is not served by {self.host} ({text}) — "
                                 "pick one that `aethel-lsp models --provider ...` lists.",
                                 model=model, host=self.host)
        if status == 429 and details.get("error_code") == "enforced_spend_limit_reached":
            return InvalidRequest(f"{where} — the organisation's monthly spend limit is "
                                  "reached; retrying will not help until it resets or is "
                                  "raised in the Claude Console.", host=self.host, status=status)
        if status in BUSY:
            return EngineBusy(f"{where} — still busy after {attempts} attempt(s); try again "
                              "in a moment.", host=self.host, status=status)
        if status >= 500:
            return ServerError(f"{where} — Anthropic's side failed; try again.", host=self.host,
                               status=status)
        if "Extra inputs are not permitted" in text:
            return InvalidRequest(f"{where} — this API version refuses that parameter; set the "
                                  "provider's `apiVersion` to \"2023-06-01\" if you need it.",
                                  host=self.host, status=status)
        return InvalidRequest(f"{where}.", host=self.host, status=status)

    def _key_advice(self) -> str:
        return key_advice(self.api_key_env, "the provider's `apiKeyEnv`")

    def event(self, payload: str, model: str) -> JsonDict:
        """One `data:` payload; an `error` event raises (busy kinds as `EngineBusy`)."""
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise MalformedResponse(f"{self.host} sent an event that is not JSON while "
                                    f"'{model}' was streaming: {payload[:120]!r}.",
                                    host=self.host) from exc
        if not isinstance(data, dict):
            raise MalformedResponse(f"{self.host} sent an event that is not a JSON object.",
                                    host=self.host)
        if data.get("type") == "error":
            kind, text, _ = _error_parts(payload)
            message = (f"{self.host} reported {kind} while '{model}' was generating: "
                       f"{self.scrub(text)}")
            if kind in ("overloaded_error", "rate_limit_error"):
                raise EngineBusy(message + " — try again in a moment.", host=self.host,
                                 status=529 if kind == "overloaded_error" else 429)
            raise StreamError(message, host=self.host)
        return data


def _error_parts(body: str) -> tuple[str, str, JsonDict]:
    """(error.type, error.message, error.details) of an Anthropic error body, or raw text."""
    try:
        data = json.loads(body)
    except ValueError:
        return "error", body.strip()[:MAX_ERROR_TEXT], {}
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "error", body.strip()[:MAX_ERROR_TEXT], {}
    details = error.get("details")
    return (str(error.get("type") or "error"), str(error.get("message") or ""),
            details if isinstance(details, dict) else {})
