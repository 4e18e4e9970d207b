"""The Ollama backend: Ollama's native `/api` on one `httpx.AsyncClient`.

Every HTTP status and every `{"error": ...}` line is translated into the engine error
tree in one place (`_OllamaErrors`), so the same failure always reads the same way.
Metrics come only from Ollama's final line (`eval_count / eval_duration * 1e9`, ...);
the client measures only what Ollama cannot: time to first token and wall latency.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import httpx

from aethel_lsp.engine._http import (
    BUSY_STATUSES,
    PULL_IDLE_S,
    HttpSession,
    RetryPolicy,
    StreamClock,
    drain,
    error_text,
)
from aethel_lsp.engine._remote import api_client, json_dict, json_int
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
    ChatRequest,
    Chunk,
    EngineKind,
    EngineStatus,
    EngineTimeouts,
    GenerateRequest,
    JsonDict,
    Metrics,
    ModelInfo,
    PullProgress,
    RunningModel,
    WireRequest,
)
from aethel_lsp.hosts import parse_ollama_host

_Fragment = Callable[[JsonDict], tuple[str, str]]
# "<model> does not support <capability>" (types/model/capability.go), not e.g. "raw mode
# does not support template", which is an invalid request.
_CAPABILITY_RE = re.compile(
    r"does not support (insert|thinking|tools|vision|generate|chat|completion|embedding|audio"
    r"|image)\b"
)


class OllamaEngine(Engine):
    """An `Engine` talking to one Ollama server."""

    kind: EngineKind = "ollama"

    def __init__(
        self,
        host: str | None = None,
        *,
        timeouts: EngineTimeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.host = parse_ollama_host(host)
        self.timeouts = timeouts or EngineTimeouts()
        self.retry = retry or RetryPolicy()
        self._errors = _OllamaErrors(self.host)
        self._show_cache: dict[str, ModelInfo] = {}
        self._client = api_client(self.host, self.timeouts, transport)
        self._http = HttpSession(self._client, host=self.host, timeouts=self.timeouts,
                                 retry=self.retry, errors=self._errors)

    def __repr__(self) -> str:
        return f"OllamaEngine(host={self.host!r})"

    # -- detection --------------------------------------------------------------------

    async def version(self) -> str:
        """`/api/version`; a server too old to have it is recognised by `/`'s banner."""
        try:
            data = await self._get_json("/api/version", what="the version check")
        except (MalformedResponse, InvalidRequest, ModelNotFound):
            return await self._version_from_banner()
        return str(data.get("version") or "unknown")

    async def _version_from_banner(self) -> str:
        response = await self._http.fetch("GET", "/", None, what="the version check")
        if response.status_code == 200 and "Ollama is running" in response.text:
            return "unknown"
        raise MalformedResponse(
            f"Something answers at {self.host}, but it is not Ollama (no /api/version, "
            "no 'Ollama is running' banner); check the `host` setting.",
            host=self.host,
        )

    async def status(self) -> EngineStatus:
        """Never raises; offline (nothing listening) is told apart from a failing server."""
        try:
            version = await self.version()
            models = tuple(await self.list_models())
        except (EngineOffline, EngineTimeout) as exc:
            offline = isinstance(exc, EngineOffline) or exc.phase == "connect"
            return self._down(str(exc), offline=offline)
        except EngineError as exc:
            return self._down(str(exc), offline=False)
        except Exception as exc:  # status() is a health check: report, never crash the caller
            return self._down(f"Checking Ollama at {self.host} failed unexpectedly: {exc!r}",
                              offline=False)
        try:
            running = tuple(await self.running())
        except EngineError:
            running = ()
        return EngineStatus(True, self.host, self.kind, version=version, models=models,
                            running=running, reason=f"Ollama answered at {self.host}")

    def _down(self, message: str, *, offline: bool) -> EngineStatus:
        return EngineStatus(False, self.host, self.kind, error=message, offline=offline)

    # -- models -----------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        data = await self._get_json("/api/tags", what="the model list")
        return [model_from_tags(entry) for entry in _object_list(data, "models")]

    async def show(self, model: str) -> ModelInfo:
        """`/api/show`, cached per name: capabilities and sizes do not change while we run."""
        cached = self._show_cache.get(model)
        if cached is not None:
            return cached
        data = await self._post_json("/api/show", {"model": model}, what="model details",
                                     model=model)
        info = model_from_show(model, data)
        self._show_cache[model] = info
        return info

    def forget(self, model: str | None = None) -> None:
        """Drop cached `show` results (after a pull, a model may have changed)."""
        if model is None:
            self._show_cache.clear()
        else:
            self._show_cache.pop(model, None)

    async def running(self) -> list[RunningModel]:
        data = await self._get_json("/api/ps", what="the running models")
        return [running_from_ps(entry) for entry in _object_list(data, "models")]

    # -- generation -------------------------------------------------------------------

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        wire = WireRequest("generate", "/api/generate", generate_body(request))
        return self._generation(request, wire, _generate_fragment)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        wire = WireRequest("chat", "/api/chat", chat_body(request))
        return self._generation(request, wire, _chat_fragment)

    async def _generation(
        self, request: GenerateRequest | ChatRequest, wire: WireRequest, fragment: _Fragment
    ) -> AsyncIterator[Chunk]:
        path, body, model = wire.path, wire.body, request.model
        request.sent(wire)
        clock = StreamClock()
        async with contextlib.aclosing(
            self._stream(path, body, model=model, clock=clock, idle_s=None)
        ) as lines:
            async for data in lines:
                text, thinking = fragment(data)
                if text or thinking:
                    clock.mark_token()
                if data.get("done") is True:
                    metrics = metrics_from_final(data, model, clock)
                    await drain(lines)  # so that httpx can reuse the connection
                    yield Chunk(text=text, thinking=thinking, done=True, metrics=metrics,
                                context=_context(data))
                    return
                if text or thinking:
                    yield Chunk(text=text, thinking=thinking)
        raise self._errors.truncated(model)

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        body: JsonDict = {"model": model, "stream": True}
        async with contextlib.aclosing(
            self._stream("/api/pull", body, model=model, clock=StreamClock(),
                         idle_s=PULL_IDLE_S, pulling=True)
        ) as lines:
            async for data in lines:
                progress = progress_from_line(data)
                yield progress
                if progress.status == "success":
                    self.forget(model)
                    return
        raise self._errors.truncated(model, what="the download")

    async def _stream(
        self, path: str, body: JsonDict, *, model: str, clock: StreamClock,
        idle_s: float | None, pulling: bool = False,
    ) -> AsyncGenerator[JsonDict, None]:
        """POST and yield each NDJSON object (an `{"error"}` line raises)."""
        what = "the download" if pulling else "the generation"
        async with contextlib.aclosing(
            self._http.stream_lines(path, body, model=model, clock=clock, what=what,
                                    idle_s=idle_s)
        ) as lines:
            async for line in lines:
                yield self._errors.stream_line(line, model=model, pulling=pulling)

    async def _get_json(self, path: str, *, what: str) -> JsonDict:
        return await self._http.request_json("GET", path, None, what=what, model=None)

    async def _post_json(self, path: str, body: JsonDict, *, what: str, model: str) -> JsonDict:
        return await self._http.request_json("POST", path, body, what=what, model=model)

    async def aclose(self) -> None:
        await self._client.aclose()


# -- error translation (the one place) ------------------------------------------------


class _OllamaErrors:
    """Turns HTTP statuses and stream lines from one Ollama host into engine errors."""

    def __init__(self, host: str) -> None:
        self.host = host

    def offline_message(self) -> str:
        return (f"Ollama is not running at {self.host} — start it with `ollama serve` "
                "(or set `host` to where it runs).")

    def from_status(
        self, status: int, body: str, *, model: str | None, attempts: int, path: str
    ) -> EngineError:
        text = error_text(body)
        if status == 404:
            return self._not_found(text, model, path)
        if status == 400:
            return self._bad_request(text, model)
        if status in (401, 403):
            return AuthenticationFailed(
                f"Ollama at {self.host} refused the request (HTTP {status}{_colon(text)}) — "
                "check OLLAMA_ORIGINS or the credentials of the proxy in front of it.",
                host=self.host, status=status)
        if status in BUSY_STATUSES:
            return EngineBusy(
                f"Ollama at {self.host} is busy (HTTP {status}: {text}) and still was after "
                f"{attempts} attempts — try again in a moment.", host=self.host, status=status)
        if status >= 500:
            return ServerError(
                f"Ollama at {self.host} failed (HTTP {status}: {text}) — check the Ollama "
                "server log.", host=self.host, status=status)
        return InvalidRequest(f"Ollama at {self.host} answered HTTP {status}{_colon(text)}.",
                              host=self.host, status=status)

    def _not_found(self, text: str, model: str | None, path: str) -> EngineError:
        if model is not None and "not found" in text and "page not found" not in text:
            return ModelNotFound(
                f"Model '{model}' is not installed in Ollama at {self.host} — install it with "
                f"`ollama pull {model}`.", model=model, host=self.host)
        return MalformedResponse(
            f"{self.host} has no {path or 'such endpoint'} ({text}) — is it really Ollama? "
            "Check the `host` setting.", host=self.host, status=404)

    def _bad_request(self, text: str, model: str | None) -> EngineError:
        match = _CAPABILITY_RE.search(text)
        if match and model is not None:
            capability = match.group(1)
            return CapabilityMissing(_capability_advice(model, capability, text),
                                     model=model, capability=capability, host=self.host)
        return InvalidRequest(f"Ollama at {self.host} rejected the request: {text}",
                              host=self.host, status=400)

    def stream_line(self, line: str, *, model: str, pulling: bool) -> JsonDict:
        """Parse one NDJSON line; an `{"error"}` line (HTTP status already 200) raises."""
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise MalformedResponse(
                f"Ollama at {self.host} sent a line that is not JSON while '{model}' was "
                f"streaming: {line[:120]!r} — try again; if it persists, check the server log.",
                host=self.host) from exc
        if not isinstance(data, dict):
            raise MalformedResponse(f"Ollama at {self.host} sent a stream line that is not a "
                                    f"JSON object: {line[:120]!r}.", host=self.host)
        if "error" in data:
            raise self._stream_error(error_text(line), model, pulling)
        return data

    def _stream_error(self, text: str, model: str, pulling: bool) -> EngineError:
        if pulling and "file does not exist" in text:
            return ModelNotFound(
                f"Ollama could not pull '{model}': the registry has no such model ({text}) — "
                "check the name at https://ollama.com/library.", model=model, host=self.host)
        if pulling:
            return StreamError(f"Pulling '{model}' failed in Ollama at {self.host}: {text}",
                               host=self.host)
        return StreamError(
            f"Ollama at {self.host} reported an error while '{model}' was generating: {text} — "
            "try again; the Ollama server log has details.", host=self.host)

    def truncated(self, model: str, *, what: str = "its final line") -> MalformedResponse:
        return MalformedResponse(
            f"The stream from '{model}' at {self.host} ended before {what} (connection "
            "closed or truncated) — try again, and check the Ollama server log if it repeats.",
            host=self.host)


def _colon(text: str) -> str:
    return f": {text}" if text else ""


def _capability_advice(model: str, capability: str, text: str) -> str:
    """An actionable sentence for each capability Ollama can say a model lacks."""
    if capability == "insert":
        return (f"Model '{model}' cannot fill in the middle (Ollama: {text}) — use a model with "
                "the `insert` capability, such as qwen2.5-coder, or send no suffix.")
    if capability == "thinking":
        return (f"Model '{model}' does not support thinking (Ollama: {text}) — send "
                "`think: false`.")
    if capability in ("generate", "chat", "completion"):
        return (f"Model '{model}' cannot generate text (Ollama: {text}); it is probably an "
                "embedding model — choose a chat or code model.")
    return f"Model '{model}' does not support {capability} (Ollama: {text})."


# -- request bodies -------------------------------------------------------------------


def generate_body(request: GenerateRequest) -> JsonDict:
    """The exact `/api/generate` body: optional fields only when set (`think` defaults false)."""
    body: JsonDict = {"model": request.model, "prompt": request.prompt, "stream": True}
    if request.system is not None:
        body["system"] = request.system
    if request.suffix is not None:
        body["suffix"] = request.suffix
    if request.raw:
        body["raw"] = True
    if request.context:
        body["context"] = list(request.context)
    _common_fields(body, request.options.to_ollama(), request.keep_alive, request.think)
    return body


def chat_body(request: ChatRequest) -> JsonDict:
    """The exact `/api/chat` body."""
    body: JsonDict = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
    }
    _common_fields(body, request.options.to_ollama(), request.keep_alive, request.think)
    return body


def _common_fields(body: JsonDict, options: JsonDict, keep_alive: Any, think: bool | None) -> None:
    if options:
        body["options"] = options
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if think is not None:
        body["think"] = think


# -- response parsing -----------------------------------------------------------------


def _generate_fragment(data: JsonDict) -> tuple[str, str]:
    return _str(data.get("response")), _str(data.get("thinking"))


def _chat_fragment(data: JsonDict) -> tuple[str, str]:
    message = data.get("message")
    if not isinstance(message, dict):
        return "", ""
    return _str(message.get("content")), _str(message.get("thinking"))


def metrics_from_final(data: JsonDict, model: str, clock: StreamClock) -> Metrics:
    """Metrics from Ollama's own final line; only TTFT and latency come from the client."""
    eval_count = json_int(data.get("eval_count"))
    eval_ns = json_int(data.get("eval_duration"))
    tokens_per_second = eval_count / eval_ns * 1e9 if eval_count is not None and eval_ns else None
    return Metrics(
        model=model,
        prompt_tokens=json_int(data.get("prompt_eval_count")),
        tokens_generated=eval_count,
        time_to_first_token_ms=clock.ttft_ms(),
        latency_ms=clock.elapsed_ms(),
        load_ms=_ns_to_ms(data.get("load_duration")),
        tokens_per_second=tokens_per_second,
        done_reason=data.get("done_reason") if isinstance(data.get("done_reason"), str) else None,
        total_duration_ms=_ns_to_ms(data.get("total_duration")),
        eval_duration_ms=_ns_to_ms(eval_ns),
    )


def model_from_tags(entry: JsonDict) -> ModelInfo:
    """One `/api/tags` entry (capabilities only on Ollama >= 0.12-ish, else empty)."""
    details = json_dict(entry.get("details"))
    return ModelInfo(
        name=_str(entry.get("name") or entry.get("model")),
        size_bytes=json_int(entry.get("size")),
        context_length=json_int(details.get("context_length")),
        family=_opt_str(details.get("family")),
        quantization=_opt_str(details.get("quantization_level")),
        capabilities=_capabilities(entry.get("capabilities")),
        parameter_size=_opt_str(details.get("parameter_size")),
        digest=_opt_str(entry.get("digest")),
        modified_at=_opt_str(entry.get("modified_at")),
        remote_host=_opt_str(entry.get("remote_host")),
    )


def model_from_show(name: str, data: JsonDict) -> ModelInfo:
    """`/api/show`: exact parameter count and context length from `model_info`."""
    details = json_dict(data.get("details"))
    info = json_dict(data.get("model_info"))
    arch = info.get("general.architecture")
    context = json_int(info.get(f"{arch}.context_length")) if isinstance(arch, str) else None
    return ModelInfo(
        name=name,
        parameters=json_int(info.get("general.parameter_count")),
        context_length=context if context is not None else json_int(details.get("context_length")),
        family=_opt_str(details.get("family")) or (arch if isinstance(arch, str) else None),
        quantization=_opt_str(details.get("quantization_level")),
        capabilities=_capabilities(data.get("capabilities")),
        parameter_size=_opt_str(details.get("parameter_size")),
        modified_at=_opt_str(data.get("modified_at")),
        remote_host=_opt_str(data.get("remote_host")),
    )


def running_from_ps(entry: JsonDict) -> RunningModel:
    return RunningModel(
        name=_str(entry.get("name") or entry.get("model")),
        size_bytes=json_int(entry.get("size")),
        size_vram=json_int(entry.get("size_vram")),
        expires_at=_opt_str(entry.get("expires_at")),
        context_length=json_int(entry.get("context_length")),
    )


def progress_from_line(data: JsonDict) -> PullProgress:
    return PullProgress(
        status=_str(data.get("status")),
        digest=_opt_str(data.get("digest")),
        total=json_int(data.get("total")),
        completed=json_int(data.get("completed")),
    )


def _context(data: JsonDict) -> tuple[int, ...]:
    """The final line's `context` (token ids); anything else in that field is ignored."""
    value = data.get("context")
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, int) and not isinstance(item, bool))


def _object_list(data: JsonDict, key: str) -> list[JsonDict]:
    items = data.get(key)
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def _capabilities(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value if isinstance(item, str))




def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _ns_to_ms(value: object) -> float | None:
    ns = json_int(value)
    return None if ns is None else ns / 1e6
