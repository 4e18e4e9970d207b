"""The OpenAI-compatible backend: vLLM, llama.cpp server, LM Studio, hosted APIs.

Streams as server-sent events (`data: {...}` frames, ended by `data: [DONE]`) and asks
for `stream_options.include_usage`.  Token counts are always the server's own, never
estimated from text length, taken from the first of: `usage`; llama.cpp's `timings`
(`predicted_n`, `prompt_n` + `cache_n`, and its own `predicted_per_second`), which it
sends even when it ignores `include_usage`; llama.cpp's `/tokenize` of the generated
text.  A server that offers none of these yields `None` counts, which every renderer
shows as "unknown".  Time to first token and latency are client-side `perf_counter`
times; without a server-side rate, `tokens_per_second` is the count divided by the
client-measured time from the first token to the end of the stream.

The API ignores nothing silently where it matters: llama.cpp serves whatever model it
loaded under any name, so a model is checked against `/models` before the first
request; a prompt over the server's context is `ContextTooLong`, with what to change.

The API key is read from the environment variable named in config at each request; it
is sent only as `Authorization: Bearer ...`, never stored on the object, logged, or put
into an error message (server texts that echo it are scrubbed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from aethel_lsp.engine._http import (
    BUSY_STATUSES,
    HttpSession,
    RetryPolicy,
    StreamClock,
    drain,
    error_text,
)
from aethel_lsp.engine._remote import (
    KeyFromEnv,
    api_client,
    failed_status,
    failing_stream,
    json_dict,
    json_int,
    key_advice,
    scrub_key,
)
from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import (
    AuthenticationFailed,
    CapabilityMissing,
    ContextTooLong,
    EngineBusy,
    EngineError,
    EngineOffline,
    EngineTimeout,
    InvalidRequest,
    LoadedModelsUnknown,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    StreamError,
)
from aethel_lsp.engine.recommend import normalize_name
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
    WireRequest,
)
from aethel_lsp.hosts import normalize_openai_base_url

DONE_SENTINEL = "[DONE]"
TOKENIZE_TIMEOUT_S = 2.0  # an optional count must not hold the answer back for long
# Servers whose `/models` lists exactly the models they hold in memory.
SERVES_LOADED_MODELS = frozenset({"llamacpp", "vllm"})


def normalize_base_url(raw: str) -> str:
    """`http://h:8000` -> `http://h:8000/v1`; the one parser, shared with the config check.

    >>> normalize_base_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> normalize_base_url("https://api.example.com/v1/")
    'https://api.example.com/v1'
    """
    try:
        return normalize_openai_base_url(raw)
    except ValueError as exc:
        raise InvalidRequest(f"`openai.baseUrl` {raw!r} is not usable: {exc}.") from exc


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
        self._client = api_client(self.host, self.timeouts, transport,
                                  auth=KeyFromEnv(api_key_env))
        self._http = HttpSession(self._client, host=self.host, timeouts=self.timeouts,
                                 retry=retry or RetryPolicy(), errors=self._errors)
        # The ids and aliases `/models` listed, as `normalize_name` spells them (Ollama's
        # /v1 lists `llama3.2:latest` and answers to `llama3.2`).
        self._served: frozenset[str] | None = None
        self._can_tokenize = True  # until `/tokenize` fails once

    def __repr__(self) -> str:
        return f"OpenAIEngine(host={self.host!r}, api_key_env={self.api_key_env!r})"

    async def version(self) -> str:
        """OpenAI-compatible servers have no version endpoint; `/models` proves they answer."""
        await self.list_models()
        return "openai-compatible"

    async def status(self) -> EngineStatus:
        """Never raises."""
        try:
            entries = await self._model_entries()
        except Exception as exc:  # a health check reports, it does not crash its caller
            return failed_status(self.kind, self.host, exc)
        loaded = _loaded_models(entries)
        return EngineStatus(True, self.host, self.kind, version="openai-compatible",
                            models=tuple(_model_from_openai(e) for e in entries),
                            running=tuple(loaded or ()),
                            reason=f"An OpenAI-compatible server answered at {self.host}")

    async def list_models(self) -> list[ModelInfo]:
        return [_model_from_openai(entry) for entry in await self._model_entries()]

    async def _model_entries(self) -> list[JsonDict]:
        data = await self._http.request_json("GET", "/models", None, what="the model list",
                                             model=None)
        entries = data.get("data")
        models = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        self._served = frozenset(normalize_name(name) for entry in models
                                 for name in _served_names(entry))
        return models

    async def show(self, model: str) -> ModelInfo:
        """`/v1/models` knows only ids; a model not listed there is `ModelNotFound`."""
        for info in await self.list_models():
            if info.name == model:
                return info
        raise self._errors.not_found(model)

    async def running(self) -> list[RunningModel]:
        """What llama.cpp and vLLM list is what they hold in memory; other servers (LM
        Studio, hosted APIs) list what they can serve, so there we cannot tell."""
        loaded = _loaded_models(await self._model_entries())
        if loaded is None:
            raise LoadedModelsUnknown(
                f"{self.host} is an OpenAI-compatible server whose model list does not say "
                "which models are loaded; `aethel-lsp models` shows what it serves.",
                host=self.host)
        return loaded

    def wire_request(self, request: GenerateRequest | ChatRequest) -> WireRequest:
        """Where and what this backend sends for `request` (FIM and raw prompts go to
        `/completions`; the rest to the chat API, which applies the chat template)."""
        base = urlsplit(self.host).path
        if isinstance(request, ChatRequest):
            return WireRequest("chat", f"{base}/chat/completions",
                               chat_completions_body(request))
        if request.suffix is not None or request.raw:
            return WireRequest("completions", f"{base}/completions", completions_body(request))
        messages: list[ChatMessage] = []
        if request.system:
            messages.append(ChatMessage("system", request.system))
        messages.append(ChatMessage("user", request.prompt))
        chat = ChatRequest(request.model, tuple(messages), options=request.options)
        return WireRequest("chat", f"{base}/chat/completions", chat_completions_body(chat))

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        return self._generation(request)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self._generation(request)

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Raises on first use: the OpenAI API has no download endpoint."""
        return failing_stream(InvalidRequest(
            f"{self.host} is an OpenAI-compatible server, which cannot download models: "
            f"install '{model}' on that server itself.", host=self.host))

    async def _generation(self, request: GenerateRequest | ChatRequest) -> AsyncIterator[Chunk]:
        model = request.model
        await self._require_served(model)
        wire = self.wire_request(request)
        path = wire.path.removeprefix(urlsplit(self.host).path)
        request.sent(wire)
        clock = StreamClock()
        state = _SseState()
        async with contextlib.aclosing(self._http.stream_lines(
            path, wire.body, model=model, clock=clock, what="the generation")) as lines:
            async for line in lines:
                payload = self._errors.payload(line, model)
                if payload is None:
                    continue
                if payload == DONE_SENTINEL:
                    await drain(lines)  # so that httpx can reuse the connection
                    break
                text = state.absorb(self._errors.frame(payload, model))
                if text:
                    clock.mark_token()
                    yield Chunk(text=text)
            else:
                if state.finish_reason is None:
                    raise self._errors.truncated(model)
        yield Chunk(done=True, metrics=await self._metrics(state, model, clock))

    async def _metrics(self, state: _SseState, model: str, clock: StreamClock) -> Metrics:
        counted = None
        if state.generated_tokens() is None and state.text:
            counted = await self._count_tokens(state.text)
        return state.metrics(model, clock, counted)

    async def _require_served(self, model: str) -> None:
        """llama.cpp answers under any name with the one model it loaded: refuse a name
        `/models` does not list.  The list is read on first use and again on a miss (the
        server may have loaded the model since); a server without a usable list is trusted."""
        name, known = normalize_name(model), self._served
        if known is not None and (not known or name in known):
            return
        try:
            entries = await self._model_entries()
        except (EngineOffline, EngineTimeout):
            return  # the generation request will say so; the list is read again next time
        except EngineError:
            self._served = frozenset()  # it answers without a usable list: nothing to check
            return
        if self._served and name not in self._served:
            raise self._errors.not_found(model, [str(entry.get("id")) for entry in entries])

    async def _count_tokens(self, text: str) -> int | None:
        """llama.cpp's `POST /tokenize` (at the server root, beside `/v1`); `None` where the
        server has no such endpoint (then it is not asked again)."""
        if not self._can_tokenize:
            return None
        url = self.host.removesuffix(urlsplit(self.host).path) + "/tokenize"
        try:
            data = await asyncio.wait_for(
                self._http.request_json("POST", url, {"content": text}, what="token counting",
                                        model=None), TOKENIZE_TIMEOUT_S)
        except (EngineError, asyncio.TimeoutError):
            self._can_tokenize = False
            return None
        tokens = data.get("tokens")
        return len(tokens) if isinstance(tokens, list) else json_int(data.get("count"))

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass
class _SseState:
    """What a stream has said so far: text, usage, llama.cpp timings, the finish reason."""

    usage: JsonDict = field(default_factory=dict)
    timings: JsonDict = field(default_factory=dict)
    finish_reason: str | None = None
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def absorb(self, frame: JsonDict) -> str:
        """Remember usage / timings / finish reason; return the frame's text."""
        usage = frame.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        timings = frame.get("timings")
        if isinstance(timings, dict) and timings:
            self.timings = timings
        text = ""
        for choice in frame.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reason = reason
            text += _choice_text(choice)
        self.parts.append(text)
        return text

    def generated_tokens(self) -> int | None:
        """The server's count: `usage`, else llama.cpp's `timings`; 0 for an empty answer."""
        count = json_int(self.usage.get("completion_tokens"))
        if count is None:
            count = json_int(self.timings.get("predicted_n"))
        if count is None and not self.text:
            return 0
        return count

    def prompt_tokens(self) -> int | None:
        """`usage.prompt_tokens`, else llama.cpp's evaluated plus cached prompt tokens."""
        count = json_int(self.usage.get("prompt_tokens"))
        evaluated = json_int(self.timings.get("prompt_n"))
        if count is None and evaluated is not None:
            count = evaluated + (json_int(self.timings.get("cache_n")) or 0)
        return count

    def metrics(self, model: str, clock: StreamClock, counted: int | None = None) -> Metrics:
        """`counted` is a `/tokenize` count, used when the server reported none."""
        generated = self.generated_tokens()
        if generated is None:
            generated = counted
        rate = _positive(self.timings.get("predicted_per_second")) if generated else None
        generating_s = clock.since_first_token_s()
        if rate is None and generated and generating_s:
            rate = generated / generating_s
        return Metrics(
            model=model,
            prompt_tokens=self.prompt_tokens(),
            tokens_generated=generated,
            time_to_first_token_ms=clock.ttft_ms(),
            latency_ms=clock.elapsed_ms(),
            tokens_per_second=rate,
            done_reason=self.finish_reason,
            total_duration_ms=_sum_ms(self.timings.get("prompt_ms"),
                                      self.timings.get("predicted_ms")),
            eval_duration_ms=_positive(self.timings.get("predicted_ms")),
        )


def _choice_text(choice: JsonDict) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _served_names(entry: JsonDict) -> list[str]:
    """The names a `/models` entry answers to: its id and llama.cpp's `aliases`."""
    names = [entry.get("id")]
    aliases = entry.get("aliases")
    if isinstance(aliases, list):
        names += aliases
    return [name for name in names if isinstance(name, str) and name]


def _loaded_models(entries: list[JsonDict]) -> list[RunningModel] | None:
    """Loaded models, if the list says: llama.cpp's router marks each entry's `status`;
    a single-model llama.cpp server and vLLM list only what they hold.  `None`: unknown."""
    loaded: list[RunningModel] = []
    for entry in entries:
        status = entry.get("status")
        if isinstance(status, dict):
            if status.get("value") != "loaded":
                continue
        elif entry.get("owned_by") not in SERVES_LOADED_MODELS:
            return None
        meta = json_dict(entry.get("meta"))
        loaded.append(RunningModel(name=str(entry.get("id", "")),
                                   size_bytes=json_int(meta.get("size")),
                                   context_length=json_int(meta.get("n_ctx"))))
    return loaded


class _OpenAIErrors:
    """HTTP statuses and error frames of an OpenAI-compatible server -> engine errors."""

    def __init__(self, host: str, api_key_env: str) -> None:
        self.host = host
        self.api_key_env = api_key_env

    def offline_message(self) -> str:
        return (f"Nothing answers at {self.host} — start the OpenAI-compatible server "
                "(vLLM, llama.cpp server, LM Studio) or fix `openai.baseUrl`.")

    def scrub(self, text: str) -> str:
        return scrub_key(text, self.api_key_env)

    def from_status(
        self, status: int, body: str, *, model: str | None, attempts: int, path: str
    ) -> EngineError:
        text = self.scrub(error_text(body))
        too_long = self.context_too_long(body)
        if too_long is not None:
            return too_long
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

    def context_too_long(self, body: str) -> ContextTooLong | None:
        """llama.cpp's `exceed_context_size_error` (HTTP 400 before the stream, or an error
        event inside it) and vLLM's / OpenAI's "maximum context length" as one error."""
        detail = _error_object(body)
        text = error_text(body)
        kind = f"{detail.get('type', '')} {detail.get('code', '')}".lower()
        if not (_CONTEXT_TEXT.search(text) or "exceed_context_size" in kind
                or "context_length_exceeded" in kind):
            return None
        prompt = json_int(detail.get("n_prompt_tokens"))
        context = json_int(detail.get("n_ctx"))
        if prompt is None or context is None:
            numbers = [int(n) for n in re.findall(r"(\d+) tokens", text)]
            if len(numbers) >= 2:
                prompt, context = max(numbers[:2]), min(numbers[:2])
        sizes = (f" ({prompt} tokens; it holds {context})" if prompt is not None
                 and context is not None else "")
        size_setting = f"`contextSize = {context}`" if context else "`contextSize` to it"
        return ContextTooLong(
            f"The prompt does not fit in the context of the server at {self.host}{sizes}, so "
            "trying again cannot help: select less text, set "
            f"{size_setting} so prompts are cut to fit, or restart the server with a larger "
            "context (llama.cpp: `--ctx-size`, vLLM: `--max-model-len`). "
            f"The server said: {self.scrub(text)}",
            prompt_tokens=prompt, context_size=context, host=self.host)

    def _auth_advice(self, status: int, text: str) -> str:
        fix = key_advice(self.api_key_env, "`openai.apiKeyEnv`")
        return f"{self.host} refused the request (HTTP {status}: {text}) — {fix}."

    def not_found(self, model: str, served: list[str] | None = None) -> ModelNotFound:
        listed = f" (it serves: {', '.join(served[:10])})" if served else ""
        return ModelNotFound(
            f"Model '{model}' is not served at {self.host}{listed} — pick one of the ids "
            "`/v1/models` lists (`aethel-lsp models`).", model=model, host=self.host)

    def truncated(self, model: str) -> MalformedResponse:
        return MalformedResponse(
            f"The stream from '{model}' at {self.host} ended without `data: [DONE]` and "
            "without a finish reason (the connection closed early); try again, and check "
            "the server's log if it keeps happening.", host=self.host)

    def payload(self, line: str, model: str) -> str | None:
        """The payload of a `data:` line; comments, `event:` and `id:` lines carry none.

        Older llama.cpp servers send a failure inside a stream as an `error: {...}` line
        (newer ones as `data: {"error": ...}`): both raise here or in `frame`.
        """
        if line.startswith("error:"):
            raise self.stream_error(line[6:].strip(), model)
        if not line.startswith("data:"):
            return None
        return line[5:].strip()

    def stream_error(self, payload: str, model: str) -> EngineError:
        too_long = self.context_too_long(payload)
        if too_long is not None:
            return too_long
        return StreamError(f"{self.host} reported an error while '{model}' was generating: "
                           f"{self.scrub(error_text(payload))}", host=self.host)

    def frame(self, payload: str, model: str) -> JsonDict:
        """One SSE `data:` payload as JSON; an `{"error": ...}` frame raises."""
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise MalformedResponse(f"{self.host} sent an event that is not JSON while '{model}' "
                                    f"was streaming: {payload[:120]!r}.", host=self.host) from exc
        if not isinstance(data, dict):
            raise MalformedResponse(f"{self.host} sent an event that is not a JSON object.",
                                    host=self.host)
        if "error" in data:
            raise self.stream_error(payload, model)
        return data


_CONTEXT_TEXT = re.compile(r"(?i)exceeds? the available context size|maximum context length"
                           r"|context length exceeded|exceed_context_size")


def _error_object(body: str) -> JsonDict:
    """The `error` object of an error body (or the body itself for a bare object)."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    error = data.get("error")
    return error if isinstance(error, dict) else data


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
    """One `/models` entry; llama.cpp adds `meta` (exact parameters, file size, trained
    context), which other servers leave unknown."""
    name = entry.get("id")
    meta = json_dict(entry.get("meta"))
    return ModelInfo(name=name if isinstance(name, str) else "", capabilities=("completion",),
                     parameters=json_int(meta.get("n_params")),
                     size_bytes=json_int(meta.get("size")),
                     context_length=json_int(meta.get("n_ctx_train")))


def _positive(value: object) -> float | None:
    """A server-reported duration or rate; 0 (llama.cpp's rate for a single token) is unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def _sum_ms(*values: object) -> float | None:
    known = [v for v in (_positive(value) for value in values) if v is not None]
    return sum(known) if known else None
