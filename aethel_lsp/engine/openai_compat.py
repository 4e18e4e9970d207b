"""The OpenAI-compatible backend: vLLM, llama.cpp server, LM Studio, hosted APIs.

Streams as server-sent events (`data: {...}` frames, ended by `data: [DONE]`) and asks
for `stream_options.include_usage`, so token counts are the server's own `usage`, never
estimated.  What such servers do not report, we measure and say so: time to first token
and latency are client-side `perf_counter` times, and `tokens_per_second` is
`usage.completion_tokens` divided by the client-measured time from the first token to
the end of the stream.  A server that ignores `include_usage` yields `None` counts.

The API key is read from the environment variable named in config at each request; it
is sent only as `Authorization: Bearer ...`, never stored on the object, logged, or put
into an error message (server texts that echo it are scrubbed).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from aethel_lsp import __version__
from aethel_lsp.engine._http import (
    BUSY_STATUSES,
    HttpSession,
    RetryPolicy,
    StreamClock,
    error_text,
    request_timeout,
)
from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import (
    AuthenticationFailed,
    CapabilityMissing,
    EngineBusy,
    EngineError,
    EngineOffline,
    EngineTimeout,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    StreamError,
)
from aethel_lsp.engine.types import (
    ChatMessage,
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
)

DONE_SENTINEL = "[DONE]"


def normalize_base_url(raw: str) -> str:
    """`http://h:8000` -> `http://h:8000/v1`; a URL that already has a path is kept as is.

    >>> normalize_base_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> normalize_base_url("https://api.example.com/v1/")
    'https://api.example.com/v1'
    """
    text = raw.strip().rstrip("/")
    if "://" not in text:
        text = f"http://{text}"
    if not urlsplit(text).path:
        text = f"{text}/v1"
    return text


class OpenAIEngine(Engine):
    """An `Engine` on an OpenAI-compatible `/v1` API."""

    kind: EngineKind = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str = "",
        timeouts: EngineTimeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not base_url.strip():
            raise InvalidRequest("engine = \"openai\" needs `openai.baseUrl`, e.g. "
                                 "http://127.0.0.1:8000/v1 for a local vLLM.")
        self.host = normalize_base_url(base_url)
        self.api_key_env = api_key_env
        self.timeouts = timeouts or EngineTimeouts()
        self._errors = _OpenAIErrors(self.host, api_key_env)
        self._client = httpx.AsyncClient(
            base_url=self.host,
            transport=transport,
            timeout=request_timeout(self.timeouts, streaming=False),
            headers={"User-Agent": f"aethel-lsp/{__version__}"},
            auth=_BearerFromEnv(api_key_env),
        )
        self._http = HttpSession(self._client, host=self.host, timeouts=self.timeouts,
                                 retry=retry or RetryPolicy(), errors=self._errors)

    def __repr__(self) -> str:
        return f"OpenAIEngine(host={self.host!r}, api_key_env={self.api_key_env!r})"

    async def version(self) -> str:
        """OpenAI-compatible servers have no version endpoint; `/models` proves they answer."""
        await self.list_models()
        return "openai-compatible"

    async def status(self) -> EngineStatus:
        """Never raises."""
        try:
            models = tuple(await self.list_models())
        except EngineError as exc:
            offline = isinstance(exc, EngineOffline) or (
                isinstance(exc, EngineTimeout) and exc.phase == "connect")
            return EngineStatus(False, self.host, self.kind, error=str(exc), offline=offline)
        except Exception as exc:  # a health check reports, it does not crash its caller
            return EngineStatus(False, self.host, self.kind,
                                error=f"Checking {self.host} failed unexpectedly: {exc!r}")
        return EngineStatus(True, self.host, self.kind, version="openai-compatible",
                            models=models, reason=f"An OpenAI-compatible server answered at "
                                                  f"{self.host}")

    async def list_models(self) -> list[ModelInfo]:
        data = await self._http.request_json("GET", "/models", None, what="the model list",
                                             model=None)
        entries = data.get("data")
        if not isinstance(entries, list):
            return []
        return [_model_from_openai(entry) for entry in entries if isinstance(entry, dict)]

    async def show(self, model: str) -> ModelInfo:
        """`/v1/models` knows only ids; a model not listed there is `ModelNotFound`."""
        for info in await self.list_models():
            if info.name == model:
                return info
        raise self._errors.not_found(model)

    async def running(self) -> list[RunningModel]:
        return []  # the OpenAI API has no notion of loaded models

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """FIM (a suffix) and raw prompts go to `/completions`; the rest to the chat API,
        so that the server applies the model's chat template and the system prompt."""
        if request.suffix is not None or request.raw:
            return self._generation("/completions", completions_body(request), request.model)
        messages: list[ChatMessage] = []
        if request.system:
            messages.append(ChatMessage("system", request.system))
        messages.append(ChatMessage("user", request.prompt))
        chat = ChatRequest(request.model, tuple(messages), options=request.options)
        return self.stream_chat(chat)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self._generation("/chat/completions", chat_completions_body(request),
                                request.model)

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Raises on first use: the OpenAI API has no download endpoint."""
        nothing: tuple[PullProgress, ...] = ()
        for progress in nothing:  # makes this an async generator, so errors surface on use
            yield progress
        raise InvalidRequest(
            f"{self.host} is an OpenAI-compatible server, which cannot download models: "
            f"install '{model}' on that server itself.", host=self.host)

    async def _generation(self, path: str, body: JsonDict, model: str) -> AsyncIterator[Chunk]:
        clock = StreamClock()
        state = _SseState()
        async with contextlib.aclosing(self._http.stream_lines(
            path, body, model=model, clock=clock, what="the generation")) as lines:
            async for line in lines:
                payload = _sse_data(line)
                if payload is None:
                    continue
                if payload == DONE_SENTINEL:
                    yield Chunk(done=True, metrics=state.metrics(model, clock))
                    return
                text = state.absorb(self._errors.frame(payload, model))
                if text:
                    clock.mark_token()
                    yield Chunk(text=text)
        raise MalformedResponse(
            f"The stream from '{model}' at {self.host} ended without `data: [DONE]` (connection "
            "closed or truncated) — try again.", host=self.host)

    async def aclose(self) -> None:
        await self._client.aclose()


class _BearerFromEnv(httpx.Auth):
    """Adds `Authorization: Bearer $ENV` at send time; the key lives only in the environment."""

    def __init__(self, env_name: str) -> None:
        self.env_name = env_name

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        key = os.environ.get(self.env_name, "") if self.env_name else ""
        if key:
            request.headers["Authorization"] = f"Bearer {key}"
        yield request


@dataclass
class _SseState:
    """What a stream has said so far: usage and the finish reason."""

    usage: JsonDict = field(default_factory=dict)
    finish_reason: str | None = None

    def absorb(self, frame: JsonDict) -> str:
        """Remember usage / finish reason; return the frame's text."""
        usage = frame.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        text = ""
        for choice in frame.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reason = reason
            text += _choice_text(choice)
        return text

    def metrics(self, model: str, clock: StreamClock) -> Metrics:
        generated = _int(self.usage.get("completion_tokens"))
        generating_s = clock.since_first_token_s()
        rate = generated / generating_s if generated and generating_s else None
        return Metrics(
            model=model,
            prompt_tokens=_int(self.usage.get("prompt_tokens")),
            tokens_generated=generated,
            time_to_first_token_ms=clock.ttft_ms(),
            latency_ms=clock.elapsed_ms(),
            tokens_per_second=rate,
            done_reason=self.finish_reason,
        )


def _choice_text(choice: JsonDict) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _sse_data(line: str) -> str | None:
    """The payload of a `data:` line; comments, `event:` and `id:` lines carry none."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


class _OpenAIErrors:
    """HTTP statuses and error frames of an OpenAI-compatible server -> engine errors."""

    def __init__(self, host: str, api_key_env: str) -> None:
        self.host = host
        self.api_key_env = api_key_env

    def offline_message(self) -> str:
        return (f"Nothing answers at {self.host} — start the OpenAI-compatible server "
                "(vLLM, llama.cpp server, LM Studio) or fix `openai.baseUrl`.")

    def scrub(self, text: str) -> str:
        """Servers sometimes echo the key they rejected; never let it reach a message."""
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return text.replace(key, "***") if key else text

    def from_status(
        self, status: int, body: str, *, model: str | None, attempts: int, path: str
    ) -> EngineError:
        text = self.scrub(error_text(body))
        if status in (401, 403):
            return AuthenticationFailed(self._auth_advice(status, text), host=self.host,
                                        status=status)
        if status == 404:
            if model is not None and "model" in text.lower():
                return self.not_found(model)
            return MalformedResponse(f"{self.host} has no {path} ({text}) — is `openai.baseUrl` "
                                     "right (it usually ends in /v1)?", host=self.host, status=404)
        if status in BUSY_STATUSES:
            return EngineBusy(f"{self.host} is busy (HTTP {status}: {text}) and still was after "
                              f"{attempts} attempts — try again in a moment.", host=self.host,
                              status=status)
        if status >= 500:
            return ServerError(f"{self.host} failed (HTTP {status}: {text}) — check that "
                               "server's log.", host=self.host, status=status)
        # llama.cpp/vLLM name the `suffix` field; Ollama's /v1 says "<model> does not support
        # insert" (its native capability check, passed through).
        if model is not None and ("suffix" in text.lower()
                                  or "does not support insert" in text.lower()):
            return CapabilityMissing(
                f"The server at {self.host} cannot fill in the middle with '{model}' ({text}) — "
                "use a model/server with FIM support, or send no suffix.",
                model=model, capability="insert", host=self.host)
        return InvalidRequest(f"{self.host} rejected the request (HTTP {status}: {text}).",
                              host=self.host, status=status)

    def _auth_advice(self, status: int, text: str) -> str:
        if not self.api_key_env:
            fix = "name the environment variable holding the key in `openai.apiKeyEnv`"
        elif not os.environ.get(self.api_key_env):
            fix = f"the environment variable {self.api_key_env} is not set: set it to the key"
        else:
            fix = f"check the key in the environment variable {self.api_key_env}"
        return f"{self.host} refused the request (HTTP {status}: {text}) — {fix}."

    def not_found(self, model: str) -> ModelNotFound:
        return ModelNotFound(
            f"Model '{model}' is not served at {self.host} — pick one of the ids `/v1/models` "
            "lists (`aethel-lsp models`).", model=model, host=self.host)

    def frame(self, payload: str, model: str) -> JsonDict:
        """One SSE `data:` payload as JSON; an `{"error": ...}` frame raises `StreamError`."""
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise MalformedResponse(f"{self.host} sent an event that is not JSON while '{model}' "
                                    f"was streaming: {payload[:120]!r}.", host=self.host) from exc
        if not isinstance(data, dict):
            raise MalformedResponse(f"{self.host} sent an event that is not a JSON object.",
                                    host=self.host)
        if "error" in data:
            raise StreamError(f"{self.host} reported an error while '{model}' was generating: "
                              f"{self.scrub(error_text(payload))}", host=self.host)
        return data


def chat_completions_body(request: ChatRequest) -> JsonDict:
    """The exact `/v1/chat/completions` body."""
    body: JsonDict = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(_openai_options(request.options))
    return body


def completions_body(request: GenerateRequest) -> JsonDict:
    """The exact `/v1/completions` body (FIM via `suffix` where the server supports it)."""
    body: JsonDict = {
        "model": request.model,
        "prompt": request.prompt,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.suffix is not None:
        body["suffix"] = request.suffix
    body.update(_openai_options(request.options))
    return body


def _openai_options(options: GenerationOptions) -> JsonDict:
    out: JsonDict = {}
    if options.temperature is not None:
        out["temperature"] = options.temperature
    if options.top_p is not None:
        out["top_p"] = options.top_p
    if options.num_predict is not None:
        out["max_tokens"] = options.num_predict
    if options.stop:
        out["stop"] = list(options.stop)
    if options.seed is not None:
        out["seed"] = options.seed
    return out


def _model_from_openai(entry: JsonDict) -> ModelInfo:
    name = entry.get("id")
    return ModelInfo(name=name if isinstance(name, str) else "", capabilities=("completion",))


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)
