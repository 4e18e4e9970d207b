"""A fake llama.cpp server: the native endpoints the embedded engine speaks, checked strictly.

Why: `/infill` needs a model with fill-in-the-middle tokens, and the only model the tests
can count on (SmolLM2) has none. The fake answers `/infill`, `/completion`,
`/v1/chat/completions` and `/tokenize` in llama.cpp's shapes (server-sent events, a final
event with `timings`), refuses requests without the right API key like
`params.api_keys` does, refuses malformed bodies with llama.cpp's 400, answers 501 to
`/infill` when told the model has no FIM tokens, and records every request and whether
the client closed a stream before it ended. A `tests.fakes.http.LoopbackServer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http import Exchange, LoopbackServer

Json = dict[str, Any]

TIMINGS: Json = {"cache_n": 800, "prompt_n": 3, "prompt_ms": 21.5, "prompt_per_token_ms": 7.2,
                 "prompt_per_second": 139.5, "predicted_n": 4, "predicted_ms": 60.0,
                 "predicted_per_token_ms": 15.0, "predicted_per_second": 66.7}
_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "/infill": {"input_prefix": str, "input_suffix": str, "n_predict": int},
    "/completion": {"prompt": str, "n_predict": int},
    "/v1/chat/completions": {"messages": list, "max_tokens": int},
}


@dataclass
class Recorded:
    path: str
    body: Json
    headers: dict[str, str]
    client_closed_early: bool = False


@dataclass
class FakeLlamaServer(LoopbackServer):
    """Thread-hosted fake; `reply` is streamed as `pieces`, one event per piece."""

    label = "fake llama.cpp server"

    api_key: str = "test-key"
    fim: bool = True
    pieces: list[str] = field(default_factory=lambda: ["    return", " a", " +", " b"])
    piece_delay: float = 0.0
    error_event: str | None = None  # sent instead of the final event when set
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        LoopbackServer.__init__(self, port=self.port)

    async def handle(self, exchange: Exchange) -> None:
        request = exchange.request
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = None
        recorded = Recorded(request.path, body if isinstance(body, dict) else {},
                            dict(request.headers))
        self.requests.append(recorded)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            await _error(exchange, 401, "Invalid API Key", "authentication_error")
            return
        problem = _shape_problem(request.path, body)
        if problem is not None:
            await _error(exchange, 400, problem, "invalid_request_error")
            return
        if request.path == "/tokenize":
            tokens = [ord(ch) for ch in str(body.get("content", ""))]
            await exchange.send(200, json.dumps({"tokens": tokens}).encode(), "application/json")
            return
        if request.path == "/infill" and not self.fim:
            await _error(exchange, 501, "Infill is not supported by this model: prefix token "
                         "is missing. suffix token is missing. middle token is missing. ",
                         "not_supported_error")
            return
        if request.path not in _REQUIRED:
            await _error(exchange, 404, "File Not Found", "not_found_error")
            return
        await self._stream(exchange, recorded)

    async def _stream(self, exchange: Exchange, recorded: Recorded) -> None:
        chat = recorded.path == "/v1/chat/completions"
        exchange.start_stream(200, "text/event-stream")
        progress = {"total": 803, "cache": 800, "processed": 803, "time_ms": 21.5}
        first: Json = ({"choices": [{"delta": {"role": "assistant", "content": None}}],
                        "prompt_progress": progress} if chat
                       else {"content": "", "stop": False, "prompt_progress": progress})
        events = [first]
        for piece in self.pieces:
            events.append({"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
                          if chat else {"content": piece, "stop": False})
        if chat:
            events.append({"choices": [{"delta": {}, "finish_reason": "length"}]})
            events.append({"choices": [], "usage": {"completion_tokens": 4},
                           "timings": TIMINGS})
        else:
            events.append({"content": "", "stop": True, "stop_type": "limit",
                           "timings": TIMINGS, "tokens_predicted": 4})
        for index, event in enumerate(events):
            last = index == len(events) - 1
            line = (f"error: {self.error_event}" if last and self.error_event
                    else f"data: {json.dumps(event)}")
            if not await exchange.send_chunk(f"{line}\n\n".encode()):
                recorded.client_closed_early = True
                return
            if self.piece_delay and await exchange.wait(self.piece_delay):
                recorded.client_closed_early = True
                return
        if chat:
            await exchange.send_chunk(b"data: [DONE]\n\n")
        await exchange.end_stream()


def _shape_problem(path: str, body: object) -> str | None:
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    for name, kind in _REQUIRED.get(path, {}).items():
        if not isinstance(body.get(name), kind):
            return f"Field '{name}' is missing or has the wrong type"
    return None


async def _error(exchange: Exchange, status: int, message: str, kind: str) -> None:
    body = {"error": {"code": status, "message": message, "type": kind}}
    await exchange.send(status, json.dumps(body).encode(), "application/json")
