"""Nothing an upstream sends is trusted to end (issue 14, item 4): endless bodies, endless
streams and endless lines are cut at a cap with a clear error, and the response closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from aethel_lsp.engine import (
    EngineTimeout,
    EngineTimeouts,
    GenerateRequest,
    GenerationOptions,
    MalformedResponse,
    OllamaEngine,
    RetryPolicy,
)
from aethel_lsp.engine._http import MAX_BODY_BYTES, TOKEN_MARGIN
from tests.unit.engine_support import RecordingStream, Script, stream_reply

HOST = "http://127.0.0.1:11434"
MODEL = "m"


class Endless(httpx.AsyncByteStream):
    """A body that never ends: `piece` forever (counts what was read; records aclose)."""

    def __init__(self, piece: bytes, delay_s: float = 0.0) -> None:
        self.piece = piece
        self.delay_s = delay_s
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            self.sent += len(self.piece)
            yield self.piece

    async def aclose(self) -> None:
        self.closed = True


def engine_for(script: Script, **timeouts: float) -> OllamaEngine:
    return OllamaEngine(HOST, timeouts=EngineTimeouts(**timeouts), transport=script.transport(),
                        retry=RetryPolicy(attempts=1, backoff_s=0.0))


def token_line(text: str) -> bytes:
    return json.dumps({"model": MODEL, "response": text, "done": False}).encode() + b"\n"


async def test_an_endless_model_list_is_refused_at_the_body_cap() -> None:
    body = Endless(b'{"models": [' + b'{"name": "x"},' * 4096)
    script = Script().on("/api/tags", lambda request: httpx.Response(200, stream=body))
    with pytest.raises(MalformedResponse, match="MiB for the model list"):
        await engine_for(script).list_models()
    assert body.closed and MAX_BODY_BYTES <= body.sent < MAX_BODY_BYTES + 200_000


async def test_an_endless_token_stream_is_closed_after_the_budget_and_margin() -> None:
    stream = Endless(token_line("x"))
    script = Script().on("/api/generate", lambda request: httpx.Response(200, stream=stream))
    request = GenerateRequest(MODEL, "p", options=GenerationOptions(num_predict=10))
    received = 0
    with pytest.raises(MalformedResponse, match="token budget"):
        async for _chunk in engine_for(script).stream_generate(request):
            received += 1
    assert received == 10 + TOKEN_MARGIN and stream.closed


async def test_a_stream_that_never_stops_is_stopped_by_the_total_budget() -> None:
    stream = Endless(token_line("x"), delay_s=0.01)  # lively: never stalls
    script = Script().on("/api/generate", lambda request: httpx.Response(200, stream=stream))
    engine = engine_for(script, total_s=0.3)
    with pytest.raises(EngineTimeout) as info:
        await engine.generate(GenerateRequest(MODEL, "p"))  # no num_predict: no token cap
    assert info.value.phase == "total" and "0.3 s" in str(info.value)
    assert stream.closed


async def test_a_dripping_model_list_is_stopped_by_the_total_budget() -> None:
    body = Endless(b" ", delay_s=0.01)
    script = Script().on("/api/tags", lambda request: httpx.Response(200, stream=body))
    with pytest.raises(EngineTimeout) as info:
        await engine_for(script, total_s=0.3).list_models()
    assert info.value.phase == "total"


async def test_a_line_without_end_is_refused() -> None:
    stream = Endless(b"x" * 65536)
    script = Script().on("/api/generate", lambda request: httpx.Response(200, stream=stream))
    with pytest.raises(MalformedResponse, match="line longer than"):
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert stream.closed


async def test_a_normal_generation_within_its_budget_is_untouched() -> None:
    lines = [token_line(t) for t in ("a", "b")] + [
        json.dumps({"model": MODEL, "response": "", "done": True, "eval_count": 2}).encode()
        + b"\n"
    ]
    script = Script().on("/api/generate", stream_reply(lines))
    request = GenerateRequest(MODEL, "p", options=GenerationOptions(num_predict=2))
    result = await engine_for(script, total_s=5.0).generate(request)
    assert result.text == "ab"
    assert isinstance(script.streams[0], RecordingStream) and script.streams[0].closed
