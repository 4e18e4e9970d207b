"""The embedded engine's HTTP side against a fake llama.cpp server (tests/fakes/llama_server).

The real server is tested with SmolLM2 in test_embedded_engine.py; SmolLM2 has no
fill-in-the-middle tokens, so `/infill` (and the exact shape of every body) is checked
here, against a fake that refuses what llama.cpp would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aethel_lsp.engine._http import HttpSession
from aethel_lsp.engine.embedded import EmbeddedEngine, EmbeddedProgress
from aethel_lsp.engine.errors import CapabilityMissing, StreamError
from aethel_lsp.engine.llama_server import LlamaServer, ServerSettings
from aethel_lsp.engine.types import (
    ChatMessage,
    ChatRequest,
    GenerateRequest,
    GenerationOptions,
)
from tests.fakes.llama_server import TIMINGS, FakeLlamaServer
from tests.unit.embedded_support import TINY_METADATA, TINY_TENSORS, write_gguf

FIM_METADATA = {**TINY_METADATA, "tokenizer.ggml.fim_pre_token_id": 1,
                "tokenizer.ggml.fim_suf_token_id": 2, "tokenizer.ggml.fim_mid_token_id": 3}
SAMPLING = {"temperature": 0.8, "top_p": 0.9, "top_k": 40, "min_p": 0.0, "repeat_penalty": 1.1,
            "stream": True, "cache_prompt": True, "return_progress": True}


@pytest.fixture
def fake() -> Iterator[FakeLlamaServer]:
    with FakeLlamaServer() as server:
        yield server


def engine_for(fake: FakeLlamaServer, model: Path,
               heard: list[EmbeddedProgress] | None = None) -> EmbeddedEngine:
    def factory(settings: ServerSettings) -> LlamaServer:
        return LlamaServer(settings, fake.url, fake.api_key, 12.0, None)

    listener = heard.append if heard is not None else None
    return EmbeddedEngine(str(model), ollama_models=model.parent / "no-store",
                          server_factory=factory, progress=listener)


async def test_fill_in_the_middle_goes_to_infill(fake: FakeLlamaServer, tmp_path: Path) -> None:
    coder = write_gguf(tmp_path / "coder.gguf", FIM_METADATA, TINY_TENSORS)
    engine = engine_for(fake, coder)
    try:
        request = GenerateRequest("", "def add(a, b):\n", suffix="\nprint(add(1, 2))\n",
                                  options=GenerationOptions(num_predict=16, temperature=0.1))
        result = await engine.generate(request)
        again = await engine.generate(request)
    finally:
        await engine.aclose()
    assert result.text == "    return a + b"
    first = fake.requests[0]
    assert first.path == "/infill"
    assert first.headers["authorization"] == f"Bearer {fake.api_key}"
    assert first.body == {"input_prefix": "def add(a, b):\n",
                          "input_suffix": "\nprint(add(1, 2))\n",
                          **SAMPLING, "temperature": 0.1, "n_predict": 16}
    metrics = result.metrics
    assert metrics.prompt_tokens == TIMINGS["cache_n"] + TIMINGS["prompt_n"]
    assert metrics.cached_prompt_tokens == TIMINGS["cache_n"]
    assert metrics.tokens_generated == TIMINGS["predicted_n"]
    assert metrics.tokens_per_second == TIMINGS["predicted_per_second"]
    assert metrics.eval_duration_ms == TIMINGS["predicted_ms"]
    assert metrics.done_reason == "length"
    assert metrics.load_ms == 12.0 and again.metrics.load_ms is None  # reported once


async def test_a_model_without_fim_tokens_is_refused_before_any_request(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    plain = write_gguf(tmp_path / "plain.gguf", TINY_METADATA, TINY_TENSORS)
    engine = engine_for(fake, plain)
    try:
        with pytest.raises(CapabilityMissing, match="no fill-in-the-middle tokens"):
            await engine.generate(GenerateRequest("", "a", suffix="b"))
    finally:
        await engine.aclose()
    assert fake.requests == []


async def test_the_servers_501_is_capability_missing(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.fim = False  # the header says FIM, the server disagrees (e.g. a broken vocabulary)
    coder = write_gguf(tmp_path / "coder.gguf", FIM_METADATA, TINY_TENSORS)
    engine = engine_for(fake, coder)
    try:
        with pytest.raises(CapabilityMissing):
            await engine.generate(GenerateRequest("", "a", suffix="b"))
    finally:
        await engine.aclose()


def test_the_servers_key_is_not_in_its_repr(tmp_path: Path) -> None:
    """A repr reaches logs and error messages; the key must not."""
    server = LlamaServer(ServerSettings(tmp_path / "m.gguf", 512, 1), "http://127.0.0.1:1",
                         "secret-key-of-this-process", 1.0, None)
    assert "secret-key-of-this-process" not in repr(server)


async def test_raw_prompt_goes_to_completion(fake: FakeLlamaServer, tmp_path: Path) -> None:
    engine = engine_for(fake, write_gguf(tmp_path / "m.gguf", TINY_METADATA, TINY_TENSORS))
    try:
        await engine.generate(GenerateRequest("", "<|im_start|>x", raw=True,
                                              options=GenerationOptions(stop=("\n\n",), seed=7)))
    finally:
        await engine.aclose()
    [sent] = fake.requests
    assert sent.path == "/completion"
    assert sent.body == {"prompt": "<|im_start|>x", **SAMPLING, "n_predict": 1024,
                         "stop": ["\n\n"], "seed": 7}


async def test_chat_goes_to_chat_completions(fake: FakeLlamaServer, tmp_path: Path) -> None:
    engine = engine_for(fake, write_gguf(tmp_path / "m.gguf", TINY_METADATA, TINY_TENSORS))
    try:
        result = await engine.chat(ChatRequest("", (ChatMessage("system", "s"),
                                                     ChatMessage("user", "u")),
                                               options=GenerationOptions(num_predict=4)))
    finally:
        await engine.aclose()
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {"messages": [{"role": "system", "content": "s"},
                                      {"role": "user", "content": "u"}],
                         "stream_options": {"include_usage": True}, **SAMPLING, "max_tokens": 4}
    assert result.text == "    return a + b"
    assert result.metrics.done_reason == "length"
    assert result.metrics.tokens_generated == TIMINGS["predicted_n"]


async def test_closing_the_stream_closes_the_request(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.pieces = ["x"] * 200
    fake.piece_delay = 0.05
    engine = engine_for(fake, write_gguf(tmp_path / "m.gguf", TINY_METADATA, TINY_TENSORS))
    try:
        stream = engine.stream_generate(GenerateRequest("", "go", raw=True))
        async for chunk in stream:
            if chunk.text:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        for _ in range(200):  # the fake notices the closed socket at its next write
            if fake.requests[0].client_closed_early:
                break
            await asyncio.sleep(0.05)
    finally:
        await engine.aclose()
    assert fake.requests[0].client_closed_early


async def test_closing_the_stream_closes_the_response_at_once(
    fake: FakeLlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not at garbage collection: a stopping event loop destroys that clean-up task."""
    opened: list[httpx.Response] = []
    open_stream = HttpSession._open_stream

    async def recording(self: HttpSession, *args: Any, **kwargs: Any) -> httpx.Response:
        response = await open_stream(self, *args, **kwargs)
        opened.append(response)
        return response

    monkeypatch.setattr(HttpSession, "_open_stream", recording)
    fake.pieces = ["x"] * 200
    fake.piece_delay = 0.05
    engine = engine_for(fake, write_gguf(tmp_path / "m.gguf", TINY_METADATA, TINY_TENSORS))
    try:
        stream = engine.stream_generate(GenerateRequest("", "go", raw=True))
        async for chunk in stream:
            if chunk.text:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        closed = [response.is_closed for response in opened]
    finally:
        await engine.aclose()
    assert closed == [True]


async def test_an_error_event_raises(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.error_event = '{"code": 500, "message": "slot crashed", "type": "server_error"}'
    engine = engine_for(fake, write_gguf(tmp_path / "m.gguf", TINY_METADATA, TINY_TENSORS))
    try:
        with pytest.raises(StreamError, match="slot crashed"):
            await engine.generate(GenerateRequest("", "go", raw=True))
    finally:
        await engine.aclose()


async def test_load_and_long_prompts_are_reported(fake: FakeLlamaServer, tmp_path: Path) -> None:
    heard: list[EmbeddedProgress] = []
    engine = engine_for(fake, write_gguf(tmp_path / "m.gguf", TINY_METADATA, TINY_TENSORS), heard)
    try:
        await engine.generate(GenerateRequest("", "go", raw=True))
        assert await engine.tokenize("ab") == [ord("a"), ord("b")]
    finally:
        await engine.aclose()
    assert [p.stage for p in heard] == ["load", "loaded"]  # 800 of 803 tokens were cached
    assert heard[1].elapsed_ms == 12.0


async def test_a_request_cancelled_during_the_load_does_not_waste_it(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    """Latest wins cancels completions at every keystroke; the model loads once anyway."""
    starts: list[ServerSettings] = []
    loading = threading.Event()

    def slow_factory(settings: ServerSettings) -> LlamaServer:
        starts.append(settings)
        loading.set()
        time.sleep(0.5)  # a model load, on the worker thread
        return LlamaServer(settings, fake.url, fake.api_key, 500.0, None)

    model = write_gguf(tmp_path / "m.gguf", TINY_METADATA, TINY_TENSORS)
    engine = EmbeddedEngine(str(model), ollama_models=tmp_path / "no-store",
                            server_factory=slow_factory)
    try:
        first = asyncio.ensure_future(engine.generate(GenerateRequest("", "go", raw=True)))
        assert await asyncio.to_thread(loading.wait, 30)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        result = await engine.generate(GenerateRequest("", "go", raw=True))
    finally:
        await engine.aclose()
    assert len(starts) == 1
    assert result.text == "    return a + b" and result.metrics.load_ms == 500.0
