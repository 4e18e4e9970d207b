"""A protocol-faithful fake Ollama over real HTTP on 127.0.0.1, for tests and for people.

In tests (in-process, on a background thread with its own event loop)::

    with FakeOllama() as fake:                 # or: url = fake.start(); ...; fake.stop()
        fake.enqueue(Reply(text="oops"), Reply(text="fixed"))     # next two generations
        fake.inject(Fault.error_line(after_tokens=3), path="/api/generate")
        ... point the client at fake.url ...
        body = fake.wait_for_request("/api/generate").json
        assert fake.streams[-1].closed_early

Standalone, so an editor can be pointed at it::

    python -m tests.fakes.ollama --port 11434 --token-delay 0.02 [--models qwen2.5-coder:1.5b ...]
    python -m tests.fakes.ollama --port 0 --exec aethel-lsp demo   # run one command against it

What it reproduces (ground truth: tests/fixtures/ollama_api and the API reference):
NDJSON streams (`application/x-ndjson`, one compact JSON object per line, flushed per
line, no blank lines, zero metrics omitted, final line with `done`, `done_reason`, the
six metrics and `context` for non-raw generate), whole replies as
`application/json; charset=utf-8`, the per-endpoint error texts and status codes, the
load/unload replies, capability checks (`insert`, `thinking`, `completion`), pull
progress, `/api/embed`, and the OpenAI-compatible `/v1` endpoints with SSE.  JSON is
encoded like Go's `encoding/json` (compact, `<`, `>`, `&` escaped as `\\u003c`...).

What it adds for tests: scripted replies (text or exact tokens, per-token delay, the
reported `eval_count` / `eval_duration` / `prompt_eval_count` / `load_duration`), a reply
queue, fault injection (`Fault`), going offline and back, and a record of every request
and of every streamed response (did the client close it early, and when — detected by
polling the socket during the inter-token waits; see `tests.fakes.http`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from tests.fakes.http import Exchange, HttpRequest, RecordingServer, json_body, wait_for_signal
from tests.fakes.ollama_models import (
    AETHEL_ANSWER,
    CATALOG,
    DEFAULT_INSTALLED,
    FakeModel,
    full_name,
    normalize_name,
    resolve_models,
)

JSON_CT = "application/json; charset=utf-8"
NDJSON_CT = "application/x-ndjson"
SSE_CT = "text/event-stream"
TEXT_CT = "text/plain; charset=utf-8"

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
MIDSTREAM_MESSAGE = "an error was encountered while running the model"
PULL_NOT_FOUND = "pull model manifest: file does not exist"
DEFAULT_VERSION = "0.33.0"

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------
# Encoding helpers
# ---------------------------------------------------------------------------------------
def go_json(obj: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (HTML characters escaped)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return text.encode("utf-8")


def rfc3339_now(offset: timedelta | None = None) -> str:
    """UTC timestamp like Go's `time.Now().UTC()` JSON: fraction without trailing zeros."""
    now = datetime.now(timezone.utc) + (offset or timedelta())
    frac = f"{now.microsecond:06d}".rstrip("0")
    return now.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish tokens that concatenate back to the text exactly."""
    return _TOKEN_RE.findall(text)


# ---------------------------------------------------------------------------------------
# Scripting API
# ---------------------------------------------------------------------------------------
@dataclass
class Reply:
    """What the next generation (generate, chat or /v1) answers.

    `tokens` wins over `text` (each token becomes one stream line).  Metrics left `None`
    get deterministic defaults: `eval_count` = tokens sent (thinking included),
    `eval_duration` = 20 ms per token (so 50.0 tok/s), `prompt_eval_count` = words in the
    prompt, `load_duration` = 5 ms.
    """

    text: str | None = None
    tokens: Sequence[str] | None = None
    thinking: str | None = None  # None: the model's default when thinking is on
    tool_calls: list[Json] | None = None  # chat only: one line with message.tool_calls
    done_reason: str | None = None  # None: "stop", or "length" when num_predict cut it
    eval_count: int | None = None
    eval_duration_ns: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration_ns: int | None = None
    load_duration_ns: int | None = None
    total_duration_ns: int | None = None
    token_delay: float | None = None  # None: the fake's `token_delay`
    first_token_delay: float = 0.0  # "model load": nothing is sent for this long
    model: str | None = None  # in the queue: only for this model
    # False: /v1 sends no `usage` even when asked (`stream_options.include_usage`), like
    # the OpenAI-compatible servers that ignore it.
    openai_usage: bool = True

    def token_list(self, default_text: str) -> list[str]:
        if self.tokens is not None:
            return list(self.tokens)
        return split_tokens(self.text if self.text is not None else default_text)


FaultKind = Literal["status", "error_line", "malformed", "stall", "disconnect", "truncate"]


@dataclass
class Fault:
    """A misbehaviour for the next matching request(s); build with the classmethods."""

    kind: FaultKind
    status: int = 500
    message: str = ""
    after_tokens: int = 0
    seconds: float = 0.0
    line: str = "this is not json"

    @classmethod
    def http_error(cls, status: int, message: str) -> Fault:
        """Reply `status` with `{"error": message}` before any byte of a stream."""
        return cls("status", status=status, message=message)

    @classmethod
    def busy(cls) -> Fault:
        return cls("status", status=503, message=BUSY_MESSAGE)

    @classmethod
    def server_error(cls, message: str = "internal server error") -> Fault:
        return cls("status", status=500, message=message)

    @classmethod
    def not_found(cls, message: str = "model 'x' not found") -> Fault:
        return cls("status", status=404, message=message)

    @classmethod
    def error_line(cls, after_tokens: int = 0, message: str = MIDSTREAM_MESSAGE) -> Fault:
        """HTTP 200, `after_tokens` lines, then `{"error": message}` and the end."""
        return cls("error_line", message=message, after_tokens=after_tokens)

    @classmethod
    def malformed(cls, after_tokens: int = 0, line: str = "this is not json") -> Fault:
        """A line that is not JSON after `after_tokens` lines (the stream then goes on)."""
        return cls("malformed", after_tokens=after_tokens, line=line)

    @classmethod
    def stall(cls, seconds: float, after_tokens: int = 0) -> Fault:
        """No bytes for `seconds` (before the response head when `after_tokens` is 0)."""
        return cls("stall", seconds=seconds, after_tokens=after_tokens)

    @classmethod
    def disconnect(cls, after_tokens: int = 0) -> Fault:
        """Drop the socket after `after_tokens` lines, without a final line."""
        return cls("disconnect", after_tokens=after_tokens)

    @classmethod
    def truncate(cls, after_tokens: int = 0) -> Fault:
        """End the body cleanly after `after_tokens` lines but never send `done: true`."""
        return cls("truncate", after_tokens=after_tokens)


@dataclass
class _FaultRule:
    fault: Fault
    path: str | None
    model: str | None
    times: int


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes
    json: Any  # parsed body, None when empty or not JSON
    at: float  # time.monotonic()

    @property
    def model(self) -> str | None:
        if isinstance(self.json, dict):
            value = self.json.get("model") or self.json.get("name")
            return value if isinstance(value, str) else None
        return None


@dataclass
class RecordedStream:
    """One generation/pull response and how it ended."""

    request: RecordedRequest
    path: str
    model: str | None
    streamed: bool
    started_at: float
    tokens_sent: int = 0  # content lines (text, thinking, tool calls, pull progress)
    lines: list[bytes] = field(default_factory=list)
    completed: bool = False  # the final line (or whole body) was sent
    closed_early: bool = False  # the client went away before that
    closed_at: float | None = None  # time.monotonic() when the close was seen
    ended_at: float | None = None
    fault: str | None = None
    queued_s: float = 0.0  # time spent waiting for a slot (`parallel`)

    @property
    def finished(self) -> bool:
        return self.ended_at is not None


class _Abort(Exception):
    """The client went away, or a fault ended the response: stop producing."""


# ---------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------
_ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("GET", "HEAD"),
    "/api/version": ("GET", "HEAD"),
    "/api/tags": ("GET", "HEAD"),
    "/api/ps": ("GET",),
    "/api/show": ("POST",),
    "/api/generate": ("POST",),
    "/api/chat": ("POST",),
    "/api/pull": ("POST",),
    "/api/embed": ("POST",),
    "/api/delete": ("DELETE",),
    "/v1/models": ("GET",),
    "/v1/chat/completions": ("POST",),
    "/v1/completions": ("POST",),
}


_GENERATION_PATHS = (
    "/api/generate",
    "/api/chat",
    "/api/pull",
    "/v1/chat/completions",
    "/v1/completions",
)


class FakeOllama(RecordingServer[RecordedRequest, RecordedStream]):
    """The fake server; thread-safe scripting and recording API for tests."""

    label = "fake Ollama"

    def __init__(
        self,
        models: Sequence[FakeModel | str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_delay: float = 0.0,
        version: str = DEFAULT_VERSION,
        pull_delay: float = 0.0,
        pull_steps: int = 4,
        running: Sequence[str] = (),
        api_key: str | None = None,
        parallel: int | None = None,
        max_queue: int | None = None,
    ) -> None:
        chosen = DEFAULT_INSTALLED if models is None else models
        self._models: dict[str, FakeModel] = {}
        for m in chosen:
            for model in resolve_models([m]) if isinstance(m, str) else [m]:
                self._models[model.name] = model
        super().__init__(host=host, port=port)
        self.token_delay = token_delay
        self.version = version
        self.pull_delay = pull_delay
        self.pull_steps = pull_steps
        self.api_key = api_key  # when set, /v1 requires `Authorization: Bearer <key>`
        # Like OLLAMA_NUM_PARALLEL / OLLAMA_MAX_QUEUE: None = unlimited (the default here).
        # With `parallel=1`, a second generation on the same model waits, sending nothing,
        # until the first ends; more than `max_queue` waiting requests get HTTP 503.
        self.parallel = parallel
        self.max_queue = max_queue
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}
        self._queue: list[Reply] = []
        self._model_replies: dict[str, Reply] = {}
        self._faults: list[_FaultRule] = []
        self._running: dict[str, str] = {}  # name -> expires_at
        for name in running:
            self._running[normalize_name(name)] = rfc3339_now(timedelta(minutes=5))

    # -- models ---------------------------------------------------------------------------
    @property
    def models(self) -> list[FakeModel]:
        with self._lock:
            return list(self._models.values())

    def add_model(self, model: FakeModel | str) -> FakeModel:
        resolved = resolve_models([model])[0] if isinstance(model, str) else model
        with self._lock:
            self._models[resolved.name] = resolved
        return resolved

    def remove_model(self, name: str) -> None:
        with self._lock:
            self._models.pop(normalize_name(name), None)
            self._running.pop(normalize_name(name), None)

    def set_running(self, *names: str) -> None:
        with self._lock:
            self._running = {normalize_name(n): rfc3339_now(timedelta(minutes=5)) for n in names}

    def find_model(self, name: str) -> FakeModel | None:
        with self._lock:
            return self._models.get(normalize_name(name)) if name else None

    # -- scripting ------------------------------------------------------------------------
    def enqueue(self, *replies: Reply, model: str | None = None) -> None:
        """Replies for the next generations, in order (optionally only for `model`)."""
        with self._lock:
            for reply in replies:
                if model is not None:
                    reply.model = model
                self._queue.append(reply)

    def set_reply(self, model: str, reply: Reply) -> None:
        """The reply `model` gives whenever the queue has nothing for it."""
        with self._lock:
            self._model_replies[normalize_name(model)] = reply

    def inject(
        self,
        fault: Fault,
        *,
        path: str | None = None,
        model: str | None = None,
        times: int = 1,
    ) -> None:
        """Misbehave on the next `times` requests to `path` (any path when None)."""
        with self._lock:
            self._faults.append(_FaultRule(fault, path, model, times))

    def clear(self) -> None:
        """Forget scripts, faults and records (models and running state stay)."""
        with self._lock:
            self._queue.clear()
            self._model_replies.clear()
            self._faults.clear()
            self._requests.clear()
            self._streams.clear()

    def _take_reply(self, model: FakeModel, prompt: str = "") -> Reply:
        """Queue first, then the model's set reply; an unscripted Aethel prompt gets a
        valid Aethel contract, so `aethel-lsp demo` against the fake shows real output."""
        with self._lock:
            for i, reply in enumerate(self._queue):
                if reply.model is None or normalize_name(reply.model) == model.name:
                    return self._queue.pop(i)
            scripted = self._model_replies.get(model.name)
        if scripted is not None:
            return scripted
        if "Aethel" in prompt:
            return Reply(text=AETHEL_ANSWER)
        return Reply()

    def _take_fault(self, path: str, model: str | None) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if rule.path is not None and rule.path != path:
                    continue
                if rule.model is not None and (
                    model is None or normalize_name(rule.model) != normalize_name(model)
                ):
                    continue
                rule.times -= 1
                if rule.times <= 0:
                    self._faults.remove(rule)
                return rule.fault
        return None

    # -- recording ------------------------------------------------------------------------
    def generate_requests(self) -> list[Any]:
        return self.bodies("/api/generate")

    def chat_requests(self) -> list[Any]:
        return self.bodies("/api/chat")

    def pull_requests(self) -> list[Any]:
        return self.bodies("/api/pull")

    def wait_for_request(
        self, path: str | None = None, timeout: float = 5.0, count: int = 1
    ) -> RecordedRequest:
        """Block until `count` requests to `path` (any when None) arrived; return the last."""

        def found() -> RecordedRequest | None:
            hits = [r for r in self._requests if path is None or r.path == path]
            return hits[count - 1] if len(hits) >= count else None

        def failure() -> str:
            seen = [f"{r.method} {r.path}" for r in self._requests]
            return f"no request #{count} to {path} in {timeout} s; saw {seen}"

        return self._wait_until(found, timeout, failure)

    async def wait_for_request_async(
        self, path: str | None = None, timeout: float = 5.0, count: int = 1
    ) -> RecordedRequest:
        """`wait_for_request` for async tests (does not block the test's event loop)."""
        return await asyncio.to_thread(self.wait_for_request, path, timeout, count)

    def wait_for_stream_end(
        self, path: str | None = None, timeout: float = 5.0, index: int = -1
    ) -> RecordedStream:
        """Block until the chosen stream (default: the latest to `path`) has ended."""

        def found() -> RecordedStream | None:
            hits = [s for s in self._streams if path is None or s.path == path]
            return hits[index] if hits and hits[index].finished else None

        return self._wait_until(found, timeout,
                                lambda: f"no finished stream to {path} in {timeout} s")

    async def wait_for_stream_end_async(
        self, path: str | None = None, timeout: float = 5.0, index: int = -1
    ) -> RecordedStream:
        return await asyncio.to_thread(self.wait_for_stream_end, path, timeout, index)

    def queued(self, model: str) -> int:
        """How many generations of `model` wait for a slot right now (`parallel`): a test
        polls this instead of sleeping and hoping the request got that far."""
        return self._waiting.get(normalize_name(model), 0)

    def _record(self, request: HttpRequest) -> RecordedRequest:
        return self._add_request(RecordedRequest(
            request.method,
            request.path,
            request.query,
            dict(request.headers),
            request.body,
            json_body(request),
            time.monotonic(),
        ))

    # -- connection loop ------------------------------------------------------------------
    async def handle(self, exchange: Exchange) -> None:
        with contextlib.suppress(_Abort):
            await self._dispatch(exchange)

    async def _dispatch(self, ex: Exchange) -> None:
        req = ex.request
        rec = self._record(req)
        path = req.path.rstrip("/") or "/"
        methods = _ROUTES.get(path)
        if methods is None and path.startswith("/v1/models/"):
            methods = ("GET",)
        if methods is None:
            await ex.send(404, b"404 page not found", "text/plain")
            return
        if req.method not in methods:
            await ex.send(405, b"405 method not allowed", "text/plain")
            return
        fault = self._take_fault(path, rec.model)
        openai = path.startswith("/v1/")
        if fault is not None and await self._pre_fault(ex, fault, openai):
            return
        handler = getattr(self, "_h_" + (path.strip("/").replace("/", "_") or "root"), None)
        if path.startswith("/v1/models/"):
            await self._h_v1_model(ex, path[len("/v1/models/") :])
        elif handler is not None:
            await handler(ex, rec, fault)

    async def _pre_fault(self, ex: Exchange, fault: Fault, openai: bool) -> bool:
        """Apply a fault that acts before the response starts; True if it answered."""
        if fault.kind == "status":
            if openai:
                await self._openai_error(ex, fault.status, fault.message)
            else:
                await self._error(ex, fault.status, fault.message)
            return True
        if fault.kind == "stall" and fault.after_tokens == 0:
            if ex.request.path.rstrip("/") in _GENERATION_PATHS:
                return False  # stalls inside the recorded stream, like a model load
            if await ex.wait(fault.seconds):
                raise _Abort
            return False
        if fault.kind == "disconnect" and fault.after_tokens == 0:
            ex.abort()
            return True
        return False

    # -- small responders -----------------------------------------------------------------
    async def _json(self, ex: Exchange, body: Any, status: int = 200) -> None:
        await ex.send(status, go_json(body), JSON_CT)

    async def _error(self, ex: Exchange, status: int, message: str) -> None:
        await ex.send(status, go_json({"error": message}), JSON_CT)

    async def _openai_error(self, ex: Exchange, status: int, message: str) -> None:
        kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        await ex.send(status, go_json(body), JSON_CT)

    async def _body(self, ex: Exchange, rec: RecordedRequest, go_type: str) -> Json | None:
        """The JSON object body, or None after answering 400 like Ollama does."""
        raw = ex.request.body
        if not raw.strip():
            await self._error(ex, 400, "missing request body")
            return None
        if rec.json is None:
            await self._error(ex, 400, _go_json_error(raw))
            return None
        if not isinstance(rec.json, dict):
            kind = "array" if isinstance(rec.json, list) else type(rec.json).__name__
            await self._error(
                ex, 400, f"json: cannot unmarshal {kind} into Go value of type api.{go_type}"
            )
            return None
        model = rec.json.get("model")
        if model is not None and not isinstance(model, str):
            kind = _go_kind(model)
            await self._error(
                ex,
                400,
                f"json: cannot unmarshal {kind} into Go struct field "
                f"{go_type}.model of type string",
            )
            return None
        return rec.json

    # -- /, version, tags, ps, show, delete -------------------------------------------------
    async def _h_root(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        await ex.send(200, b"Ollama is running", TEXT_CT)

    async def _h_api_version(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        if not await self._maybe_malformed(ex, fault):
            await self._json(ex, {"version": self.version})

    async def _h_api_tags(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        if await self._maybe_malformed(ex, fault):
            return
        models = sorted(self.models, key=lambda m: m.modified_at, reverse=True)
        await self._json(ex, {"models": [m.tags_entry() for m in models]})

    async def _h_api_ps(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        if await self._maybe_malformed(ex, fault):
            return
        with self._lock:
            running = sorted(self._running.items(), key=lambda kv: kv[1], reverse=True)
            entries = [
                self._models[name].ps_entry(expires)
                for name, expires in running
                if name in self._models
            ]
        await self._json(ex, {"models": entries})

    async def _h_api_show(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        body = await self._body(ex, rec, "ShowRequest")
        if body is None:
            return
        name = body.get("model") or body.get("name") or ""
        if not name:
            await self._error(ex, 400, "model is required")
            return
        model = self.find_model(name)
        if model is None:
            await self._error(ex, 404, f"model '{normalize_name(name)}' not found")
            return
        if await self._maybe_malformed(ex, fault):
            return
        await self._json(ex, model.show())

    async def _h_api_delete(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        body = await self._body(ex, rec, "DeleteRequest")
        if body is None:
            return
        name = body.get("model") or body.get("name") or ""
        if self.find_model(name) is None:
            await self._error(ex, 404, f"model '{name}' not found")
            return
        self.remove_model(name)
        await ex.send(200, b"", JSON_CT)

    async def _maybe_malformed(self, ex: Exchange, fault: Fault | None) -> bool:
        """A non-stream endpoint under a `malformed` / `truncate` fault answers garbage."""
        if fault is None:
            return False
        if fault.kind == "malformed":
            await ex.send(200, fault.line.encode(), JSON_CT)
            return True
        if fault.kind in ("error_line",):
            await self._error(ex, 500, fault.message)
            return True
        return False

    # -- generate / chat ------------------------------------------------------------------
    async def _h_api_generate(
        self, ex: Exchange, rec: RecordedRequest, fault: Fault | None
    ) -> None:
        body = await self._body(ex, rec, "GenerateRequest")
        if body is None:
            return
        name = body.get("model") or ""
        if await self._reject_common(ex, body):
            return
        if body.get("raw") and (body.get("template") or body.get("system") or body.get("context")):
            await self._error(ex, 400, "raw mode does not support template, system, or context")
            return
        checked = await self._generating_model(ex, body, name, "generate", "suffix", "insert")
        if checked is None:
            return
        model, think = checked
        prompt = body.get("prompt") or ""
        if not prompt:
            await self._load_reply(ex, model, name, body, chat=False)
            return
        words = " ".join(str(body.get(k) or "") for k in ("system", "prompt", "suffix"))
        await self._generation(ex, rec, model, name, body, fault, "generate", think, words)

    async def _h_api_chat(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        body = await self._body(ex, rec, "ChatRequest")
        if body is None:
            return
        name = body.get("model") or ""
        if not name:
            await self._error(ex, 400, "model is required")
            return
        if await self._reject_common(ex, body):
            return
        checked = await self._generating_model(ex, body, name, "chat", "tools", "tools")
        if checked is None:
            return
        model, think = checked
        messages = body.get("messages") or []
        if not messages:
            await self._load_reply(ex, model, name, body, chat=True)
            return
        words = " ".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))
        await self._generation(ex, rec, model, name, body, fault, "chat", think, words)

    async def _generating_model(
        self, ex: Exchange, body: Json, name: str, verb: str, field: str, capability: str
    ) -> tuple[FakeModel, bool] | None:
        """Ollama's checks before generating, in its order: the model exists (404), can
        `verb` (400), has `capability` when `field` is set (400, full name), supports the
        requested thinking (400), and the options have the right types (500).  None once
        the error is sent."""
        model = self.find_model(name)
        if model is None:
            await self._error(ex, 404, f"model '{name}' not found")
            return None
        if not model.has("completion"):
            await self._error(ex, 400, f'"{name}" does not support {verb}')
            return None
        if body.get(field) and not model.has(capability):
            await self._error(ex, 400, f"{full_name(name)} does not support {capability}")
            return None
        think = _think_enabled(body.get("think"), model)
        if think is None:
            await self._error(ex, 400, f'"{name}" does not support thinking')
            return None
        if await self._reject_options(ex, body):
            return None
        return model, think

    async def _reject_common(self, ex: Exchange, body: Json) -> bool:
        think = body.get("think")
        if isinstance(think, str) and think not in ("high", "medium", "low", "max"):
            await self._error(
                ex,
                400,
                f'invalid think value: "{think}" '
                '(must be "high", "medium", "low", "max", true, or false)',
            )
            return True
        keep_alive_problem = _keep_alive_problem(body.get("keep_alive"))
        if keep_alive_problem is not None:
            await self._error(ex, 400, keep_alive_problem)
            return True
        top = body.get("top_logprobs")
        if isinstance(top, int) and not 0 <= top <= 20:
            await self._error(ex, 400, "top_logprobs must be between 0 and 20")
            return True
        if not body.get("model") and ex.request.path.rstrip("/") == "/api/generate":
            await self._error(ex, 404, "model '' not found")
            return True
        return False

    async def _reject_options(self, ex: Exchange, body: Json) -> bool:
        problem = _option_problem(body.get("options"))
        if problem is not None:
            await self._error(ex, 500, problem)
            return True
        return False

    async def _load_reply(
        self, ex: Exchange, model: FakeModel, name: str, body: Json, *, chat: bool
    ) -> None:
        """Empty prompt/messages: load (or with keep_alive 0, unload) the model."""
        unload = body.get("keep_alive") in (0, "0", "0s", 0.0)
        reason = "unload" if unload else "load"
        with self._lock:
            if unload:
                self._running.pop(model.name, None)
            else:
                self._running[model.name] = _expiry(body.get("keep_alive"))
        out: Json = {"model": name, "created_at": rfc3339_now()}
        if chat:
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        out["done"] = True
        out["done_reason"] = reason
        await self._json(ex, out)

    async def _generation(
        self,
        ex: Exchange,
        rec: RecordedRequest,
        model: FakeModel,
        name: str,
        body: Json,
        fault: Fault | None,
        kind: Literal["generate", "chat"],
        think: bool,
        prompt_words: str,
    ) -> None:
        if self._queue_full(model):
            await self._error(ex, 503, BUSY_MESSAGE)
            return
        reply = self._take_reply(model, prompt_words)
        plan = _Plan.build(reply, model, body.get("options"), think, prompt_words)
        stream = body.get("stream", True) is not False
        record = self._open_stream(rec, name, stream, fault)
        with self._lock:
            self._running[model.name] = _expiry(body.get("keep_alive"))
        raw = bool(body.get("raw"))
        try:
            async with self._slot(ex, model, record):
                await self._initial_stall(ex, fault)
                if stream:
                    await self._stream_native(ex, record, plan, name, kind, raw, reply, fault)
                else:
                    await self._whole_native(ex, record, plan, name, kind, raw, reply, fault)
        finally:
            self._close_stream(ex, record)
            if body.get("keep_alive") in (0, "0", "0s", 0.0):
                with self._lock:
                    self._running.pop(model.name, None)

    def _line(
        self,
        kind: str,
        name: str,
        *,
        text: str = "",
        thinking: str = "",
        tool_calls: list[Json] | None = None,
    ) -> Json:
        out: Json = {"model": name, "created_at": rfc3339_now()}
        if kind == "chat":
            message: Json = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            out["message"] = message
        else:
            out["response"] = text
            if thinking:
                out["thinking"] = thinking
        out["done"] = False
        return out

    def _final(self, kind: str, name: str, plan: _Plan, raw: bool, **content: Any) -> Json:
        out = self._line(kind, name, **content)
        out["done"] = True
        out["done_reason"] = plan.done_reason
        if kind == "generate" and not raw:
            out["context"] = plan.context
        out.update(plan.metrics())
        return out

    async def _stream_native(
        self,
        ex: Exchange,
        record: RecordedStream,
        plan: _Plan,
        name: str,
        kind: str,
        raw: bool,
        reply: Reply,
        fault: Fault | None,
    ) -> None:
        if reply.first_token_delay and await ex.wait(reply.first_token_delay):
            raise _Abort
        ex.start_stream(200, NDJSON_CT)
        pieces: list[Json] = [self._line(kind, name, thinking=t) for t in plan.thinking]
        pieces += [self._line(kind, name, text=t) for t in plan.tokens]
        if reply.tool_calls and kind == "chat":
            pieces.append(self._line(kind, name, tool_calls=reply.tool_calls))
        delay = reply.token_delay if reply.token_delay is not None else self.token_delay
        for index, piece in enumerate(pieces):
            await self._stream_fault(ex, record, fault, index, b"\n")
            piece["created_at"] = rfc3339_now()
            await self._send_line(ex, record, go_json(piece) + b"\n")
            if await ex.wait(delay):
                raise _Abort
        await self._stream_fault(ex, record, fault, len(pieces), b"\n")
        await self._send_line(
            ex, record, go_json(self._final(kind, name, plan, raw)) + b"\n", token=False
        )
        record.completed = True
        await ex.end_stream()

    async def _stream_fault(
        self,
        ex: Exchange,
        record: RecordedStream,
        fault: Fault | None,
        index: int,
        newline: bytes,
        sse: bool = False,
    ) -> None:
        """Apply a mid-stream fault when `index` lines have been sent."""
        if fault is None or fault.after_tokens != index:
            return
        if fault.kind == "stall" and index == 0:
            return  # already applied before the response head
        prefix = b"data: " if sse else b""
        if fault.kind == "error_line":
            payload = (
                {
                    "error": {
                        "message": fault.message,
                        "type": "api_error",
                        "param": None,
                        "code": None,
                    }
                }
                if sse
                else {"error": fault.message}
            )
            await self._send_line(ex, record, prefix + go_json(payload) + newline, token=False)
            await ex.end_stream()
            raise _Abort
        if fault.kind == "malformed":
            await self._send_line(ex, record, prefix + fault.line.encode() + newline, token=False)
        elif fault.kind == "stall":
            if await ex.wait(fault.seconds):
                raise _Abort
        elif fault.kind == "disconnect":
            ex.abort()
            raise _Abort
        elif fault.kind == "truncate":
            await ex.end_stream()
            raise _Abort

    def _queue_full(self, model: FakeModel) -> bool:
        if self.parallel is None or self.max_queue is None:
            return False
        slot = self._slots.get(model.name)
        return (
            slot is not None
            and slot.locked()
            and self._waiting.get(model.name, 0) >= self.max_queue
        )

    @contextlib.asynccontextmanager
    async def _slot(
        self, ex: Exchange, model: FakeModel, record: RecordedStream
    ) -> AsyncIterator[None]:
        """Wait (sending nothing) for one of `parallel` slots of `model`, like Ollama's queue;
        a client that gives up while queued is noticed and recorded."""
        if self.parallel is None:
            yield
            return
        slot = self._slots.setdefault(model.name, asyncio.Semaphore(self.parallel))
        started = time.monotonic()
        self._waiting[model.name] = self._waiting.get(model.name, 0) + 1
        acquire = asyncio.ensure_future(slot.acquire())
        try:
            while not acquire.done():
                await asyncio.wait({acquire}, timeout=0.005)
                if not acquire.done() and ex.poll_closed():
                    acquire.cancel()
                    raise _Abort
        finally:
            self._waiting[model.name] -= 1
            if acquire.done() and not acquire.cancelled() and ex.poll_closed():
                slot.release()
                raise _Abort
        record.queued_s = time.monotonic() - started
        try:
            yield
        finally:
            slot.release()

    async def _initial_stall(self, ex: Exchange, fault: Fault | None) -> None:
        """`Fault.stall(s)` with no tokens: nothing at all is sent for `s` seconds."""
        stall = fault is not None and fault.kind == "stall" and fault.after_tokens == 0
        if stall and fault is not None and await ex.wait(fault.seconds):
            raise _Abort

    async def _send_line(
        self, ex: Exchange, record: RecordedStream, data: bytes, *, token: bool = True
    ) -> None:
        """Send one line; `token` lines (content, pull progress) count in `tokens_sent`."""
        if not await ex.send_chunk(data):
            raise _Abort
        record.lines.append(data)
        if token:
            record.tokens_sent += 1
        self.notify()

    async def _whole_native(
        self,
        ex: Exchange,
        record: RecordedStream,
        plan: _Plan,
        name: str,
        kind: str,
        raw: bool,
        reply: Reply,
        fault: Fault | None,
    ) -> None:
        delay = reply.token_delay if reply.token_delay is not None else self.token_delay
        total_wait = reply.first_token_delay + delay * (len(plan.tokens) + len(plan.thinking))
        if await ex.wait(total_wait):
            raise _Abort
        if fault is not None and fault.kind in ("error_line", "truncate"):
            await self._error(ex, 500, fault.message or MIDSTREAM_MESSAGE)
            return
        if fault is not None and fault.kind == "malformed":
            await ex.send(200, fault.line.encode(), JSON_CT)
            return
        if fault is not None and fault.kind == "disconnect":
            ex.abort()
            raise _Abort
        stall = fault is not None and fault.kind == "stall" and fault.after_tokens > 0
        if stall and fault is not None and await ex.wait(fault.seconds):
            raise _Abort
        final = self._final(
            kind,
            name,
            plan,
            raw,
            text="".join(plan.tokens),
            thinking="".join(plan.thinking),
            tool_calls=reply.tool_calls if kind == "chat" else None,
        )
        record.lines.append(go_json(final))
        record.completed = True
        await self._json(ex, final)

    def _open_stream(
        self, rec: RecordedRequest, model: str | None, streamed: bool, fault: Fault | None
    ) -> RecordedStream:
        record = RecordedStream(
            request=rec,
            path=rec.path,
            model=model,
            streamed=streamed,
            started_at=time.monotonic(),
            fault=None if fault is None else fault.kind,
        )
        return self._add_stream(record)

    def _close_stream(self, ex: Exchange, record: RecordedStream) -> None:
        if not record.completed and ex.poll_closed():
            record.closed_early = True
            record.closed_at = ex.closed_at
        record.ended_at = time.monotonic()
        self.notify()

    # -- pull --------------------------------------------------------------------------------
    async def _h_api_pull(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        body = await self._body(ex, rec, "PullRequest")
        if body is None:
            return
        name = body.get("model") or body.get("name") or ""
        if not name or not _valid_name(name):
            await self._error(ex, 400, "invalid model name")
            return
        target = self.find_model(name) or CATALOG.get(normalize_name(name))
        stream = body.get("stream", True) is not False
        record = self._open_stream(rec, name, stream, fault)
        try:
            await self._initial_stall(ex, fault)
            if not stream:
                if await ex.wait(self.pull_delay * self.pull_steps):
                    raise _Abort
                if target is None:
                    await self._error(ex, 500, PULL_NOT_FOUND)
                    return
                self.add_model(replace(target, modified_at=rfc3339_now()))
                record.completed = True
                await self._json(ex, {"status": "success"})
                return
            ex.start_stream(200, NDJSON_CT)
            lines = _pull_lines(target, self.pull_steps)
            for index, line in enumerate(lines):
                await self._stream_fault(ex, record, fault, index, b"\n")
                await self._send_line(ex, record, go_json(line) + b"\n")
                if "error" in line:
                    await ex.end_stream()
                    return
                if line.get("status") == "success":
                    break
                if await ex.wait(self.pull_delay):
                    raise _Abort
            assert target is not None
            self.add_model(replace(target, modified_at=rfc3339_now()))
            record.completed = True
            await ex.end_stream()
        finally:
            self._close_stream(ex, record)

    # -- embed ---------------------------------------------------------------------------------
    async def _h_api_embed(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        body = await self._body(ex, rec, "EmbedRequest")
        if body is None:
            return
        name = body.get("model") or ""
        model = self.find_model(name)
        if model is None:
            await self._error(ex, 404, f'model "{name}" not found, try pulling it first')
            return
        raw_input = body.get("input")
        if raw_input is None or raw_input == "":
            texts: list[str] = []
        elif isinstance(raw_input, str):
            texts = [raw_input]
        elif isinstance(raw_input, list) and all(isinstance(t, str) for t in raw_input):
            texts = list(raw_input)
        else:
            await self._error(ex, 400, "invalid input type")
            return
        if await self._maybe_malformed(ex, fault):
            return
        dims = body.get("dimensions") or model.embedding_length
        with self._lock:
            self._running[model.name] = _expiry(body.get("keep_alive"))
        out: Json = {"model": name, "embeddings": [_embedding(t, int(dims)) for t in texts]}
        if texts:
            prompt_tokens = sum(max(1, len(split_tokens(t))) for t in texts)
            out.update(
                {
                    "total_duration": 14_143_917,
                    "load_duration": 1_019_500,
                    "prompt_eval_count": prompt_tokens,
                }
            )
        await self._json(ex, out)

    # -- OpenAI-compatible -------------------------------------------------------------------
    async def _openai_auth(self, ex: Exchange) -> bool:
        if self.api_key is None:
            return True
        if ex.request.headers.get("authorization") == f"Bearer {self.api_key}":
            return True
        body = {
            "error": {
                "message": "Incorrect API key provided.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        await ex.send(401, go_json(body), JSON_CT)
        return False

    async def _h_v1_models(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        if not await self._openai_auth(ex):
            return
        if await self._maybe_malformed(ex, fault):
            return
        data = [
            _openai_model(m) for m in sorted(self.models, key=lambda m: m.modified_at, reverse=True)
        ]
        await self._json(ex, {"object": "list", "data": data})

    async def _h_v1_model(self, ex: Exchange, name: str) -> None:
        if not await self._openai_auth(ex):
            return
        model = self.find_model(name)
        if model is None:
            await self._openai_error(ex, 404, f"model '{name}' not found")
            return
        await self._json(ex, _openai_model(model))

    async def _openai_body(self, ex: Exchange, rec: RecordedRequest) -> Json | None:
        if not await self._openai_auth(ex):
            return None
        if not isinstance(rec.json, dict):
            await self._openai_error(
                ex, 400, "invalid request body" if ex.request.body else "missing request body"
            )
            return None
        return rec.json

    async def _h_v1_chat_completions(
        self, ex: Exchange, rec: RecordedRequest, fault: Fault | None
    ) -> None:
        body = await self._openai_body(ex, rec)
        if body is None:
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            await self._openai_error(ex, 400, "[] is too short - 'messages'")
            return
        name = body.get("model") or ""
        model = self.find_model(name)
        if model is None:
            await self._openai_error(ex, 404, f"model '{name}' not found")
            return
        if not model.has("completion"):
            await self._openai_error(ex, 400, f'"{name}" does not support chat')
            return
        words = " ".join(_openai_content(m.get("content")) for m in messages if isinstance(m, dict))
        await self._openai_generation(ex, rec, model, name, body, fault, "chat", words)

    async def _h_v1_completions(
        self, ex: Exchange, rec: RecordedRequest, fault: Fault | None
    ) -> None:
        body = await self._openai_body(ex, rec)
        if body is None:
            return
        name = body.get("model") or ""
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            await self._openai_error(
                ex, 400, "invalid type for 'prompt' field: only string is supported"
            )
            return
        model = self.find_model(name)
        if model is None:
            await self._openai_error(ex, 404, f"model '{name}' not found")
            return
        if not model.has("completion"):
            await self._openai_error(ex, 400, f'"{name}" does not support generate')
            return
        if body.get("suffix") and not model.has("insert"):
            await self._openai_error(ex, 400, f"{full_name(name)} does not support insert")
            return
        words = f"{prompt} {body.get('suffix') or ''}"
        await self._openai_generation(ex, rec, model, name, body, fault, "completion", words)

    async def _openai_generation(
        self,
        ex: Exchange,
        rec: RecordedRequest,
        model: FakeModel,
        name: str,
        body: Json,
        fault: Fault | None,
        kind: Literal["chat", "completion"],
        prompt_words: str,
    ) -> None:
        options: Json = {}
        if body.get("max_tokens") is not None:
            options["num_predict"] = body["max_tokens"]
        stop = body.get("stop")
        if stop:
            options["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if self._queue_full(model):
            await self._openai_error(ex, 503, BUSY_MESSAGE)
            return
        reply = self._take_reply(model, prompt_words)
        plan = _Plan.build(reply, model, options, False, prompt_words)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        record = self._open_stream(rec, name, stream, fault)
        with self._lock:
            self._running[model.name] = _expiry(None)
        ident = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{random.randint(0, 998)}"
        try:
            async with self._slot(ex, model, record):
                await self._initial_stall(ex, fault)
                if stream:
                    await self._stream_openai(
                        ex, record, plan, name, kind, ident, include_usage, reply, fault
                    )
                else:
                    await self._whole_openai(ex, record, plan, name, kind, ident, reply, fault)
        finally:
            self._close_stream(ex, record)

    async def _stream_openai(
        self,
        ex: Exchange,
        record: RecordedStream,
        plan: _Plan,
        name: str,
        kind: str,
        ident: str,
        include_usage: bool,
        reply: Reply,
        fault: Fault | None,
    ) -> None:
        if reply.first_token_delay and await ex.wait(reply.first_token_delay):
            raise _Abort
        ex.start_stream(200, SSE_CT)
        created = int(time.time())
        delay = reply.token_delay if reply.token_delay is not None else self.token_delay
        finish = _finish_reason(plan.done_reason)
        frames: list[Json] = []
        if kind == "chat":
            for i, token in enumerate(plan.tokens):
                delta: Json = (
                    {"role": "assistant", "content": token} if i == 0 else {"content": token}
                )
                frames.append(_chat_chunk(ident, created, name, delta, None))
            frames.append(_chat_chunk(ident, created, name, {}, finish))
            usage_frame = {**_chat_chunk(ident, created, name, {}, None), "choices": []}
        else:
            for token in plan.tokens:
                frames.append(_completion_chunk(ident, name, token, None))
            frames.append(_completion_chunk(ident, name, "", finish))
            usage_frame = {**_completion_chunk(ident, name, "", None), "choices": []}
        if include_usage and reply.openai_usage:
            usage_frame["usage"] = plan.openai_usage()
            frames.append(usage_frame)
        for index, frame in enumerate(frames):
            await self._stream_fault(ex, record, fault, index, b"\n\n", sse=True)
            is_token = index < len(plan.tokens)
            await self._send_line(ex, record, b"data: " + go_json(frame) + b"\n\n", token=is_token)
            if index < len(plan.tokens) and await ex.wait(delay):
                raise _Abort
        await self._send_line(ex, record, b"data: [DONE]\n\n", token=False)
        record.completed = True
        await ex.end_stream()

    async def _whole_openai(
        self,
        ex: Exchange,
        record: RecordedStream,
        plan: _Plan,
        name: str,
        kind: str,
        ident: str,
        reply: Reply,
        fault: Fault | None,
    ) -> None:
        delay = reply.token_delay if reply.token_delay is not None else self.token_delay
        if await ex.wait(reply.first_token_delay + delay * len(plan.tokens)):
            raise _Abort
        if fault is not None and fault.kind in ("error_line", "truncate"):
            await self._openai_error(ex, 500, fault.message or MIDSTREAM_MESSAGE)
            return
        if fault is not None and fault.kind == "malformed":
            await ex.send(200, fault.line.encode(), JSON_CT)
            return
        if fault is not None and fault.kind == "disconnect":
            ex.abort()
            raise _Abort
        text = "".join(plan.tokens)
        finish = _finish_reason(plan.done_reason)
        out: Json
        if kind == "chat":
            out = {
                "id": ident,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "system_fingerprint": "fp_ollama",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": plan.openai_usage(),
            }
        else:
            out = {
                "id": ident,
                "object": "text_completion",
                "created": int(time.time()),
                "model": name,
                "system_fingerprint": "fp_ollama",
                "choices": [{"text": text, "index": 0, "finish_reason": finish}],
                "usage": plan.openai_usage(),
            }
        if not reply.openai_usage:
            del out["usage"]
        record.completed = True
        await self._json(ex, out)


# ---------------------------------------------------------------------------------------
# Generation plan: what tokens go out and which numbers the final line reports
# ---------------------------------------------------------------------------------------
@dataclass
class _Plan:
    tokens: list[str]
    thinking: list[str]
    done_reason: str
    eval_count: int
    eval_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    load_duration: int
    total_duration: int

    @classmethod
    def build(
        cls, reply: Reply, model: FakeModel, options: Any, think: bool, prompt_words: str
    ) -> _Plan:
        tokens = reply.token_list(model.default_text)
        reason = "stop"
        opts = options if isinstance(options, dict) else {}
        stops = opts.get("stop") or []
        if stops:
            text = "".join(tokens)
            cut = min((text.find(s) for s in stops if s and s in text), default=-1)
            if cut >= 0:
                tokens = _cut_tokens(tokens, cut)
        limit = opts.get("num_predict")
        if isinstance(limit, (int, float)) and limit >= 0 and len(tokens) > int(limit):
            tokens = tokens[: int(limit)]
            reason = "length"
        thinking_text = reply.thinking if reply.thinking is not None else model.default_thinking
        thinking = split_tokens(thinking_text) if think and thinking_text else []
        eval_count = (
            reply.eval_count if reply.eval_count is not None else len(tokens) + len(thinking)
        )
        eval_duration = (
            reply.eval_duration_ns
            if reply.eval_duration_ns is not None
            else max(1, eval_count) * 20_000_000
        )
        prompt_count = (
            reply.prompt_eval_count
            if reply.prompt_eval_count is not None
            else max(1, len(prompt_words.split()))
        )
        prompt_duration = (
            reply.prompt_eval_duration_ns
            if reply.prompt_eval_duration_ns is not None
            else prompt_count * 1_000_000
        )
        load = reply.load_duration_ns if reply.load_duration_ns is not None else 5_000_000
        total = (
            reply.total_duration_ns
            if reply.total_duration_ns is not None
            else load + prompt_duration + eval_duration + 1_000_000
        )
        return cls(
            tokens=tokens,
            thinking=thinking,
            done_reason=reply.done_reason or reason,
            eval_count=eval_count,
            eval_duration=eval_duration,
            prompt_eval_count=prompt_count,
            prompt_eval_duration=prompt_duration,
            load_duration=load,
            total_duration=total,
        )

    @property
    def context(self) -> list[int]:
        return list(range(1, min(self.prompt_eval_count + self.eval_count, 64) + 1))

    def metrics(self) -> Json:
        """The six metrics in Go struct order, zero values omitted (omitempty)."""
        items = {
            "total_duration": self.total_duration,
            "load_duration": self.load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }
        return {k: v for k, v in items.items() if v}

    def openai_usage(self) -> Json:
        return {
            "prompt_tokens": self.prompt_eval_count,
            "completion_tokens": self.eval_count,
            "total_tokens": self.prompt_eval_count + self.eval_count,
        }


def _cut_tokens(tokens: list[str], cut: int) -> list[str]:
    out: list[str] = []
    used = 0
    for token in tokens:
        if used + len(token) <= cut:
            out.append(token)
            used += len(token)
        else:
            if cut > used:
                out.append(token[: cut - used])
            break
    return out


def _think_enabled(value: Any, model: FakeModel) -> bool | None:
    """Whether to emit thinking; None when `think` is asked of a model that cannot."""
    asked = value is True or isinstance(value, str)
    if asked and not model.has("thinking"):
        return None
    if value is None:
        return model.has("thinking")  # thinking models default to on
    return bool(asked)


_OPTION_TYPES: dict[str, str] = {
    "num_keep": "integer",
    "seed": "integer",
    "num_predict": "integer",
    "top_k": "integer",
    "repeat_last_n": "integer",
    "num_ctx": "integer",
    "num_batch": "integer",
    "num_gpu": "integer",
    "num_thread": "integer",
    "top_p": "float32",
    "min_p": "float32",
    "typical_p": "float32",
    "temperature": "float32",
    "repeat_penalty": "float32",
    "presence_penalty": "float32",
    "frequency_penalty": "float32",
    "use_mmap": "boolean",
}


def _option_problem(options: Any) -> str | None:
    """Ollama's `FromMap` validation text for a wrongly typed known option."""
    if not isinstance(options, dict):
        return None
    for key, value in options.items():
        if value is None:
            continue
        if key == "stop":
            if not isinstance(value, list):
                return 'option "stop" must be of type array'
            if not all(isinstance(v, str) for v in value):
                return 'option "stop" must be of an array of strings'
            continue
        expected = _OPTION_TYPES.get(key)
        if expected in ("integer", "float32"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f'option "{key}" must be of type {expected}'
        elif expected == "boolean" and not isinstance(value, bool):
            return f'option "{key}" must be of type boolean'
    return None


def _expiry(keep_alive: Any) -> str:
    if isinstance(keep_alive, (int, float)) and not isinstance(keep_alive, bool):
        if keep_alive < 0:
            return "2318-08-04T19:22:45.499127Z"
        return rfc3339_now(timedelta(seconds=float(keep_alive)))
    if isinstance(keep_alive, str):
        match = re.fullmatch(r"(-?\d+(?:\.\d+)?)([smh])", keep_alive.strip())
        if match:
            value = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
            return _expiry(value)
    return rfc3339_now(timedelta(minutes=5))


def _valid_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:-]*", name)) and name.count(":") <= 1


def _pull_lines(target: FakeModel | None, steps: int) -> list[Json]:
    """The NDJSON lines of a pull: manifest, layer progress, verify, write, success."""
    lines: list[Json] = [{"status": "pulling manifest"}]
    if target is None:
        lines.append({"error": PULL_NOT_FOUND})
        return lines
    layers = [
        (hashlib.sha256((target.name + "/weights").encode()).hexdigest(), target.size),
        (hashlib.sha256((target.name + "/params").encode()).hexdigest(), 487),
    ]
    for digest, total in layers:
        for step in range(steps + 1):
            completed = total * step // max(1, steps)
            line: Json = {
                "status": f"pulling {digest[:12]}",
                "digest": f"sha256:{digest}",
                "total": total,
            }
            if completed:
                line["completed"] = completed
            lines.append(line)
    lines += [
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    return lines


def _embedding(text: str, dims: int) -> list[float]:
    """A deterministic, L2-normalized vector for `text`."""
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values += [(b - 127.5) / 127.5 for b in digest]
        counter += 1
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 9) for v in values]


def _openai_model(model: FakeModel) -> Json:
    created = int(datetime.fromisoformat(model.modified_at[:26].rstrip("Z") + "+00:00").timestamp())
    return {"id": model.name, "object": "model", "created": created, "owned_by": "library"}


def _openai_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _finish_reason(done_reason: str) -> str:
    return "length" if done_reason == "length" else "stop"


def _chat_chunk(ident: str, created: int, model: str, delta: Json, finish: str | None) -> Json:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion_chunk(ident: str, model: str, text: str, finish: str | None) -> Json:
    return {
        "id": ident,
        "object": "text_completion",
        "created": int(time.time()),
        "choices": [{"text": text, "index": 0, "finish_reason": finish}],
        "model": model,
        "system_fingerprint": "fp_ollama",
    }


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _go_json_error(raw: bytes) -> str:
    """Go encoding/json's message for a body that is not valid JSON."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            return "unexpected EOF"
        return f"invalid character {text[exc.pos]!r} looking for beginning of value"
    return "unexpected EOF"


# ---------------------------------------------------------------------------------------
# Standalone
# ---------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.ollama",
        description="A protocol-faithful fake Ollama server (for tests and editor demos).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float, default=0.02, help="seconds between tokens")
    parser.add_argument("--pull-delay", type=float, default=0.05, help="seconds between pull lines")
    parser.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="installed models (space or comma separated); default: "
        + ", ".join(m.name for m in DEFAULT_INSTALLED),
    )
    parser.add_argument("--version", default=DEFAULT_VERSION, help="what /api/version reports")
    parser.add_argument("--api-key", default=None, help="require this Bearer key on /v1")
    parser.add_argument(
        "--exec",
        dest="command",
        nargs=argparse.REMAINDER,
        help="run this command with OLLAMA_HOST pointing at the fake, then stop "
        "(e.g. --port 0 --exec aethel-lsp demo); exits with the command's status",
    )
    args = parser.parse_args(argv)
    names = None
    if args.models is not None:
        names = [n for chunk in args.models for n in chunk.split(",") if n.strip()]
    fake = FakeOllama(
        names,
        host=args.host,
        port=args.port,
        token_delay=args.token_delay,
        pull_delay=args.pull_delay,
        version=args.version,
        api_key=args.api_key,
    )
    try:
        url = fake.start()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    models = ", ".join(m.name for m in fake.models)
    if args.command:
        print(f"fake Ollama on {url} ({models}); running: {' '.join(args.command)}", flush=True)
        # canned numbers must not land in the user's real usage statistics: the command
        # gets a throwaway state directory unless the caller chose one
        scratch = tempfile.TemporaryDirectory(prefix="aethel-fake-state-")
        try:
            env = {"AETHEL_LSP_STATE_DIR": scratch.name, **os.environ, "OLLAMA_HOST": url}
            return subprocess.run(args.command, env=env, check=False).returncode
        except OSError as exc:
            print(f"error: could not run {args.command[0]!r}: {exc}", file=sys.stderr)
            return 127
        finally:
            fake.stop()
            scratch.cleanup()
    print(f"fake Ollama listening on {url} with {models}", flush=True)
    print("note: an editor using it records these canned answers in your usage statistics; "
          "`aethel-lsp stats --clear` removes them afterwards", flush=True)
    return wait_for_signal(fake)



_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_BARE_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")


def _keep_alive_problem(value: Any) -> str | None:
    """`api.Duration.UnmarshalJSON`: a JSON number is seconds; a string goes through Go's
    `time.ParseDuration` (a unit is required, except for "0"); other types are refused."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None
    if isinstance(value, str):
        if value == "0" or _GO_DURATION.match(value):
            return None
        if _BARE_NUMBER.match(value):
            return f'time: missing unit in duration "{value}"'
        return f'time: invalid duration "{value}"'
    kind = {bool: "bool", list: "array", dict: "object"}.get(type(value), type(value).__name__)
    return f"Unsupported type: '{kind}'"


if __name__ == "__main__":
    raise SystemExit(main())
