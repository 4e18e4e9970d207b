"""A protocol-faithful fake of Anthropic's Messages API over real HTTP on 127.0.0.1.

    with FakeAnthropic(api_key="sk-ant-test") as fake:
        fake.enqueue(Reply(text="Hi", input_tokens=12))
        fake.inject(Fault.http(429, retry_after="2"), path="/v1/messages")
        ... point the client at fake.url ...

    python -m tests.fakes.anthropic --port 0 --api-key sk-ant-test   # for people

What each shape is based on (Anthropic's public docs, platform.claude.com, read 2026-12-07):
- Versions (docs/en/api/versioning, docs/en/api/migration-2026-10-21): `anthropic-version`
  is required.  `2026-10-21` removed `temperature`, `top_p` and `top_k`: a request that
  sends any of them gets HTTP 400 even at default values (third-party reports quote the
  message "temperature: Extra inputs are not permitted"; the exact wording is not in the
  docs).  `2023-06-01` accepts them.  The docs' own cURL example for 2026-10-21 still sends
  the key as `x-api-key`; the SDK majors released with 2026-10-21 send it as
  `Authorization: Bearer`.  So the header is the SDKs' choice, not a version rule: this fake
  accepts either header under either version (`x-api-key` wins when both are present).
- Errors (docs/en/api/errors): every error body is
  `{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}` and carries
  a `request-id` header; 400 invalid_request_error, 401 authentication_error,
  403 permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error
  (with `retry-after`, except the monthly spend cap, which has
  `error.details.error_code = "enforced_spend_limit_reached"` and no `retry-after`),
  500 api_error, 529 overloaded_error.  After a stream has started, errors come as an
  `event: error` inside it.
- Streaming (docs/en/build-with-claude/streaming): named SSE events `message_start`
  (message with usage.input_tokens), `content_block_start`, `ping`, `content_block_delta`
  (`text_delta`), `content_block_stop`, `message_delta` (delta.stop_reason,
  usage.output_tokens, cumulative), `message_stop`; no `data: [DONE]` since 2023-06-01.
- Models (docs/en/api/models/list): `GET /v1/models` -> `{"data": [{"type": "model", "id",
  "display_name", "created_at", "max_input_tokens", "max_tokens"}], "has_more", "first_id",
  "last_id"}`, newest first.
"""

from __future__ import annotations

import argparse
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes.hosted import (
    JSON_CT,
    SSE_CT,
    FakeHostedApi,
    Fault,
    RecordedRequest,
    Reply,
    compact,
)
from tests.fakes.http import Exchange, serve_until_signal

CURRENT_VERSION = "2026-10-21"
LEGACY_VERSION = "2023-06-01"
KNOWN_VERSIONS = (LEGACY_VERSION, CURRENT_VERSION)
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
DEFAULT_MESSAGES = {
    "authentication_error": "invalid x-api-key",
    "rate_limit_error": "This request would exceed your organization's rate limit. "
                        "Please try again later.",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "not_found_error": "Not found",
}


@dataclass(frozen=True)
class FakeClaudeModel:
    id: str
    display_name: str
    created_at: str
    max_input_tokens: int = 1_000_000
    max_tokens: int = 128_000

    def to_json(self) -> dict[str, Any]:
        return {"type": "model", "id": self.id, "display_name": self.display_name,
                "created_at": self.created_at, "max_input_tokens": self.max_input_tokens,
                "max_tokens": self.max_tokens}


DEFAULT_MODELS = (
    FakeClaudeModel("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22T00:00:00Z"),
    FakeClaudeModel("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-28T00:00:00Z"),
    FakeClaudeModel("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07T00:00:00Z"),
)


def request_id() -> str:
    return "req_" + "".join(random.choices(string.ascii_letters + string.digits, k=24))


def error_body(error_type: str, message: str, details: dict[str, Any] | None = None,
               rid: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": rid or request_id()}


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + compact(data) + b"\n\n"


class FakeAnthropic(FakeHostedApi):
    """The fake Messages API; `api_key=None` accepts any request without a key check."""

    label = "fake Anthropic"

    def __init__(self, *, api_key: str | None = "sk-ant-test",
                 models: Sequence[FakeClaudeModel] = DEFAULT_MODELS, host: str = "127.0.0.1",
                 port: int = 0, token_delay: float = 0.0) -> None:
        super().__init__(host=host, port=port, token_delay=token_delay)
        self.api_key = api_key
        self.models = list(models)

    # -- routing --------------------------------------------------------------------------
    async def dispatch(self, ex: Exchange, rec: RecordedRequest) -> None:
        path = rec.path.rstrip("/")
        routes = {"/v1/messages": "POST", "/v1/models": "GET"}
        if path not in routes and not path.startswith("/v1/models/"):
            await self.error(ex, 404, "not_found_error", "Not found")
            return
        if rec.method != routes.get(path, "GET"):
            await self.error(ex, 405, "invalid_request_error",
                             f"Method {rec.method} not allowed")
            return
        if not await self._headers_ok(ex, rec):
            return
        fault = self.take_fault(path)
        if fault is not None and await self._pre_fault(ex, fault):
            return
        if path == "/v1/messages":
            await self._messages(ex, rec, fault)
        elif path == "/v1/models":
            await self._json(ex, self._model_list())
        else:
            await self._one_model(ex, path.removeprefix("/v1/models/"))

    async def _headers_ok(self, ex: Exchange, rec: RecordedRequest) -> bool:
        version = rec.headers.get("anthropic-version")
        if not version:
            await self.error(ex, 400, "invalid_request_error",
                             "anthropic-version: header is required")
            return False
        if version not in KNOWN_VERSIONS:
            await self.error(ex, 400, "invalid_request_error",
                             f"anthropic-version: {version!r} is not a valid version")
            return False
        if self.api_key is None:
            return True
        key = rec.headers.get("x-api-key")
        if key is None:
            bearer = rec.headers.get("authorization", "")
            key = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
        if key is None:
            await self.error(ex, 401, "authentication_error", "x-api-key header is required")
            return False
        if key != self.api_key:
            await self.error(ex, 401, "authentication_error", "invalid x-api-key")
            return False
        return True

    async def _status_fault(self, ex: Exchange, fault: Fault) -> None:
        kind = fault.error_type or ERROR_TYPES.get(fault.status, "api_error")
        headers = {"retry-after": fault.retry_after} if fault.retry_after else None
        await self.error(ex, fault.status, kind,
                         fault.message or DEFAULT_MESSAGES.get(kind, kind), headers,
                         fault.details)

    def _error_event(self, fault: Fault) -> bytes:
        kind = fault.error_type or "overloaded_error"
        return sse_event("error", {"type": "error", "error": {
            "type": kind, "message": fault.message or DEFAULT_MESSAGES.get(kind, kind)}})

    # -- responders -----------------------------------------------------------------------
    async def _json(self, ex: Exchange, body: Any, status: int = 200) -> None:
        await ex.send(status, compact(body), JSON_CT, {"request-id": request_id()})

    async def error(self, ex: Exchange, status: int, error_type: str, message: str,
                    headers: dict[str, str] | None = None,
                    details: dict[str, Any] | None = None) -> None:
        rid = request_id()
        extra = {"request-id": rid, **(headers or {})}
        await ex.send(status, compact(error_body(error_type, message, details, rid)), JSON_CT,
                      extra)

    def _model_list(self) -> dict[str, Any]:
        ordered = sorted(self.models, key=lambda m: m.created_at, reverse=True)
        data = [m.to_json() for m in ordered]
        return {"data": data, "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}

    async def _one_model(self, ex: Exchange, name: str) -> None:
        for model in self.models:
            if model.id == name:
                await self._json(ex, model.to_json())
                return
        await self.error(ex, 404, "not_found_error", f"model: {name}")

    # -- /v1/messages ---------------------------------------------------------------------
    async def _messages(self, ex: Exchange, rec: RecordedRequest, fault: Fault | None) -> None:
        body = rec.json
        problem = self._body_problem(body, rec.headers.get("anthropic-version", ""))
        if problem is not None:
            await self.error(ex, 400, "invalid_request_error", problem)
            return
        assert isinstance(body, dict)
        model = body["model"]
        if model not in {m.id for m in self.models}:
            await self.error(ex, 404, "not_found_error", f"model: {model}")
            return
        reply = self.take_reply()
        if body.get("stream") is True:
            await self._stream(ex, rec, body, reply, fault)
        else:
            await self._whole(ex, body, reply)

    def _body_problem(self, body: Any, version: str) -> str | None:
        if not isinstance(body, dict):
            return "invalid request body: expected a JSON object"
        if not isinstance(body.get("model"), str):
            return "model: Field required"
        if not isinstance(body.get("max_tokens"), int) or isinstance(body["max_tokens"], bool):
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant")
                   for m in messages):
            return "messages: Input should be 'user' or 'assistant' (role)"
        if messages[0].get("role") != "user":
            return "messages: first message must use the \"user\" role"
        stops = body.get("stop_sequences")
        if stops is not None and not (isinstance(stops, list)
                                      and all(isinstance(s, str) for s in stops)):
            return "stop_sequences: Input should be a valid list"
        if version == CURRENT_VERSION:
            for name in SAMPLING_PARAMETERS:
                if name in body:
                    return f"{name}: Extra inputs are not permitted"
        return None

    def _usage_in(self, body: dict[str, Any], reply: Reply) -> int:
        if reply.input_tokens is not None:
            return reply.input_tokens
        words = str(body.get("system") or "").split()
        for message in body["messages"]:
            content = message.get("content")
            words += content.split() if isinstance(content, str) else []
        return max(1, len(words))

    def _plan(self, body: dict[str, Any], reply: Reply) -> tuple[list[str], str]:
        tokens = reply.token_list()
        stop = reply.stop_reason or "end_turn"
        if len(tokens) > body["max_tokens"]:
            tokens, stop = tokens[: body["max_tokens"]], "max_tokens"
        return tokens, stop

    async def _whole(self, ex: Exchange, body: dict[str, Any], reply: Reply) -> None:
        tokens, stop = self._plan(body, reply)
        out = {
            "id": "msg_" + request_id()[4:], "type": "message", "role": "assistant",
            "model": body["model"], "content": [{"type": "text", "text": "".join(tokens)}],
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": self._usage_in(body, reply),
                      "output_tokens": _output(reply, tokens)},
        }
        await self._json(ex, out)

    async def _stream(self, ex: Exchange, rec: RecordedRequest, body: dict[str, Any],
                      reply: Reply, fault: Fault | None) -> None:
        tokens, stop = self._plan(body, reply)
        record = self.open_stream(rec)
        delay = reply.token_delay if reply.token_delay is not None else self.token_delay
        try:
            await self.pause(ex, reply.first_token_delay)
            ex.start_stream(200, SSE_CT)
            message = {"id": "msg_" + request_id()[4:], "type": "message", "role": "assistant",
                       "content": [], "model": body["model"], "stop_reason": None,
                       "stop_sequence": None,
                       "usage": {"input_tokens": self._usage_in(body, reply),
                                 "output_tokens": 1}}
            await self.send_event(ex, record, sse_event(
                "message_start", {"type": "message_start", "message": message}))
            await self.send_event(ex, record, sse_event("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}))
            await self.send_event(ex, record, sse_event("ping", {"type": "ping"}))
            for index, token in enumerate(tokens):
                await self._mid_stream_fault(ex, record, fault, index)
                await self.send_event(ex, record, sse_event("content_block_delta", {
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": token}}), token=True)
                await self.pause(ex, delay)
            await self._mid_stream_fault(ex, record, fault, len(tokens))
            await self.send_event(ex, record, sse_event(
                "content_block_stop", {"type": "content_block_stop", "index": 0}))
            await self.send_event(ex, record, sse_event("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": _output(reply, tokens)}}))
            await self.send_event(ex, record, sse_event("message_stop",
                                                        {"type": "message_stop"}))
            record.completed = True
            await ex.end_stream()
        finally:
            self.close_stream(ex, record)


def _output(reply: Reply, tokens: list[str]) -> int:
    return len(tokens) if reply.output_tokens is None else reply.output_tokens


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.anthropic",
                                     description="A fake Anthropic Messages API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="sk-ant-test")
    parser.add_argument("--token-delay", type=float, default=0.02)
    args = parser.parse_args(argv)
    fake = FakeAnthropic(api_key=args.api_key, host=args.host, port=args.port,
                         token_delay=args.token_delay)
    return serve_until_signal(fake, "fake Anthropic listening on {url}")

if __name__ == "__main__":
    raise SystemExit(main())
