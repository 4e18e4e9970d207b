"""Test helpers for the engine unit tests: fixture bodies and a recording MockTransport.

`Script` maps a path to a list of responses (served in order, the last one repeated);
every request body is recorded as parsed JSON, and every streamed body records whether
the client closed it (`RecordingStream.closed`), which is how the tests prove that
cancelling a generation closes its HTTP response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ollama_api"


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def fixture_json(relative: str) -> Any:
    return json.loads(fixture_bytes(relative))


class RecordingStream(httpx.AsyncByteStream):
    """A response body sent piece by piece (optionally with pauses) that records `aclose`."""

    def __init__(self, pieces: Sequence[bytes], delay_s: float = 0.0,
                 stall_after: int | None = None, stall_s: float = 3600.0) -> None:
        self.pieces = list(pieces)
        self.delay_s = delay_s
        self.stall_after = stall_after
        self.stall_s = stall_s
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for index, piece in enumerate(self.pieces):
            if self.stall_after is not None and index >= self.stall_after:
                await asyncio.sleep(self.stall_s)
            elif self.delay_s:
                await asyncio.sleep(self.delay_s)
            self.sent += 1
            yield piece

    async def aclose(self) -> None:
        self.closed = True


def ndjson_lines(relative: str) -> list[bytes]:
    return [line + b"\n" for line in fixture_bytes(relative).splitlines() if line.strip()]


Responder = Callable[[httpx.Request], httpx.Response]


@dataclass
class Script:
    """Scripted responses per path; records requests (method, path, JSON body)."""

    routes: dict[str, list[Responder]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    streams: list[RecordingStream] = field(default_factory=list)

    def on(self, path: str, *responders: Responder) -> Script:
        self.routes.setdefault(path, []).extend(responders)
        return self

    def bodies(self, path: str) -> list[Any]:
        return [body for _, p, body in self.requests if p == path]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        queue = self.routes.get(request.url.path)
        if not queue:
            return httpx.Response(404, text="404 page not found")
        responder = queue.pop(0) if len(queue) > 1 else queue[0]
        response = responder(request)
        if isinstance(response.stream, RecordingStream):
            self.streams.append(response.stream)
        return response


def json_reply(status: int, payload: Any) -> Responder:
    return lambda request: httpx.Response(status, json=payload)


def fixture_reply(status: int, relative: str, content_type: str = "application/json") -> Responder:
    return lambda request: httpx.Response(status, content=fixture_bytes(relative),
                                          headers={"Content-Type": content_type})


def stream_reply(pieces: Sequence[bytes], *, status: int = 200, delay_s: float = 0.0,
                 stall_after: int | None = None,
                 content_type: str = "application/x-ndjson") -> Responder:
    """A fresh RecordingStream for every request (so retries get their own)."""

    def respond(request: httpx.Request) -> httpx.Response:
        stream = RecordingStream(pieces, delay_s=delay_s, stall_after=stall_after)
        return httpx.Response(status, stream=stream, headers={"Content-Type": content_type})

    return respond


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def generate_lines(tokens: Sequence[str], *, eval_count: int = 4,
                   eval_duration: int = 2_000_000_000, model: str = "qwen2.5-coder:1.5b"
                   ) -> list[bytes]:
    """Ollama-shaped generate NDJSON: one line per token, then a final line with metrics."""
    lines = [
        {"model": model, "created_at": "2026-01-01T00:00:00Z", "response": token, "done": False}
        for token in tokens
    ]
    lines.append({
        "model": model, "created_at": "2026-01-01T00:00:01Z", "response": "", "done": True,
        "done_reason": "stop", "total_duration": 3_000_000_000, "load_duration": 500_000_000,
        "prompt_eval_count": 12, "prompt_eval_duration": 100_000_000,
        "eval_count": eval_count, "eval_duration": eval_duration,
    })
    return [json.dumps(line).encode() + b"\n" for line in lines]
