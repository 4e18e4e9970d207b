"""The engine over real HTTP against the fake Ollama: every endpoint and every error.

Unit tests with `httpx.MockTransport` (test_engine_ollama.py) prove the translation
logic; these prove the same behaviour through a real socket, real chunked NDJSON/SSE
and real connection closes, which is what the editor will see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aethel_lsp.engine import (
    AuthenticationFailed,
    CapabilityMissing,
    ChatMessage,
    ChatRequest,
    EngineBusy,
    EngineConfig,
    EngineOffline,
    EngineTimeout,
    EngineTimeouts,
    GenerateRequest,
    GenerationOptions,
    MalformedResponse,
    ModelNotFound,
    OllamaEngine,
    OpenAIEngine,
    RetryPolicy,
    ServerError,
    StreamError,
    create_engine,
)
from aethel_lsp.engine.metered import MeteredEngine
from aethel_lsp.engine.stats import UsageStats
from tests.fakes.ollama import BUSY_MESSAGE, FakeOllama, Fault, Reply

CODER = "qwen2.5-coder:1.5b"
CHAT = "llama3.2:latest"
# The fake notices a closed socket within ~5 ms; the bound is generous for a loaded CI box.
CLOSE_BOUND_S = 0.2
FAST = EngineTimeouts(connect_s=2.0, first_token_s=5.0, between_tokens_s=5.0)


@pytest.fixture
async def engine(fake_ollama: FakeOllama) -> AsyncIterator[OllamaEngine]:
    eng = OllamaEngine(
        fake_ollama.url, timeouts=FAST, retry=RetryPolicy(attempts=3, backoff_s=0.01)
    )
    yield eng
    await eng.aclose()


# -- detection and models --------------------------------------------------------------------------
async def test_status_available_lists_models(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    status = await engine.status()
    assert status.available and status.engine == "ollama" and status.version == "0.33.0"
    assert status.host == fake_ollama.url
    assert {m.name for m in status.models} == {m.name for m in fake_ollama.models}
    assert [r.method + " " + r.path for r in fake_ollama.requests][:2] == [
        "GET /api/version",
        "GET /api/tags",
    ]


async def test_offline_is_offline_never_model_not_found(fake_ollama: FakeOllama) -> None:
    engine = OllamaEngine(fake_ollama.url, timeouts=FAST)
    try:
        fake_ollama.go_offline()
        status = await engine.status()
        assert not status.available and status.offline
        assert fake_ollama.url in (status.error or "") and "ollama serve" in (status.error or "")
        with pytest.raises(EngineOffline):
            await engine.generate(GenerateRequest(CHAT, "hi"))
        with pytest.raises(EngineOffline):
            await engine.show(CHAT)
        fake_ollama.go_online()
        assert (await engine.status()).available
    finally:
        await engine.aclose()


async def test_show_reads_exact_numbers_and_is_cached(
    engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    info = await engine.show(CODER)
    assert info.parameters == 1_543_714_304
    assert info.context_length == 32_768
    assert info.family == "qwen2" and info.quantization == "Q4_K_M"
    assert info.has("insert") and not (await engine.show(CHAT)).has("insert")
    await engine.show(CODER)
    assert [r.json for r in fake_ollama.requests_to("/api/show")] == [
        {"model": CODER},
        {"model": CHAT},
    ]


async def test_show_unknown_model(engine: OllamaEngine) -> None:
    with pytest.raises(ModelNotFound) as err:
        await engine.show("nope:1b")
    assert "ollama pull nope:1b" in str(err.value)


async def test_list_models_detailed_and_running(
    engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    detailed = {m.name: m for m in await engine.list_models_detailed()}
    assert detailed[CODER].size_bytes == 986_062_089
    assert detailed["nomic-embed-text:latest"].capabilities == ("embedding",)
    assert await engine.running() == []
    await engine.generate(GenerateRequest(CHAT, "hi"))
    running = await engine.running()
    assert [r.name for r in running] == [CHAT]
    assert running[0].size_vram and running[0].expires_at


# -- generation ------------------------------------------------------------------------------------
async def test_generate_exact_body_and_metrics(
    engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    fake_ollama.enqueue(
        Reply(
            tokens=["def", " f", "():", "\n"],
            eval_count=40,
            eval_duration_ns=500_000_000,
            prompt_eval_count=12,
            load_duration_ns=250_000_000,
        )
    )
    request = GenerateRequest(
        CODER,
        "def f",
        system="You write Python.",
        options=GenerationOptions(temperature=0.1, num_predict=64, stop=("\n\n",), seed=7),
        keep_alive="10m",
    )
    result = await engine.generate(request)
    body = fake_ollama.wait_for_request("/api/generate").json
    assert body["model"] == CODER and body["prompt"] == "def f"
    assert body["system"] == "You write Python."
    assert body["options"] == {"temperature": 0.1, "num_predict": 64, "stop": ["\n\n"], "seed": 7}
    assert body["keep_alive"] == "10m" and body["think"] is False
    assert result.text == "def f():\n"
    metrics = result.metrics
    assert metrics.tokens_generated == 40 and metrics.prompt_tokens == 12
    assert metrics.tokens_per_second == pytest.approx(80.0)
    assert metrics.load_ms == pytest.approx(250.0)
    assert metrics.done_reason == "stop"
    assert metrics.time_to_first_token_ms is not None and metrics.latency_ms is not None


async def test_stream_yields_tokens_in_order_with_ttft(
    engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    fake_ollama.enqueue(Reply(tokens=["a", "b", "c"], first_token_delay=0.15, token_delay=0.01))
    texts: list[str] = []
    final = None
    async with contextlib.aclosing(engine.stream_generate(GenerateRequest(CHAT, "x"))) as chunks:
        async for chunk in chunks:
            texts.append(chunk.text)
            if chunk.done:
                final = chunk
    assert "".join(texts) == "abc" and texts[:3] == ["a", "b", "c"]
    assert final is not None and final.metrics is not None
    assert final.metrics.time_to_first_token_ms is not None
    assert final.metrics.time_to_first_token_ms >= 140


async def test_fill_in_the_middle(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="a + b"))
    result = await engine.generate(
        GenerateRequest(CODER, "def add(a, b):\n    return ", suffix="\n")
    )
    assert result.text == "a + b"
    assert fake_ollama.generate_requests()[-1]["suffix"] == "\n"
    with pytest.raises(CapabilityMissing) as err:
        await engine.generate(GenerateRequest(CHAT, "x", suffix="y"))
    assert err.value.capability == "insert" and err.value.model == CHAT


async def test_embedding_model_cannot_generate(engine: OllamaEngine) -> None:
    with pytest.raises(CapabilityMissing) as err:
        await engine.generate(GenerateRequest("nomic-embed-text", "x"))
    assert err.value.capability == "generate"


async def test_model_not_installed(engine: OllamaEngine) -> None:
    with pytest.raises(ModelNotFound) as err:
        await engine.generate(GenerateRequest("missing:7b", "x"))
    assert "ollama pull missing:7b" in str(err.value)


async def test_chat_exact_body_and_answer(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="Hi there."))
    request = ChatRequest(
        CHAT, (ChatMessage("system", "Be brief."), ChatMessage("user", "Hello")), keep_alive=0
    )
    result = await engine.chat(request)
    assert result.text == "Hi there."
    body = fake_ollama.wait_for_request("/api/chat").json
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert body["model"] == CHAT and body["think"] is False and body["keep_alive"] == 0


async def test_thinking_is_kept_apart(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="3", thinking="count the r"))
    result = await engine.generate(GenerateRequest("qwen3:4b", "r in strawberry?", think=True))
    assert result.text == "3" and result.thinking == "count the r"
    plain = await engine.generate(GenerateRequest("qwen3:4b", "again"))
    assert plain.thinking == ""


async def test_num_predict_reports_length(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="one two three four"))
    options = GenerationOptions(num_predict=2)
    result = await engine.generate(GenerateRequest(CHAT, "count", options=options))
    assert result.metrics.done_reason == "length" and result.text == "one two"


# -- errors ----------------------------------------------------------------------------------------
async def test_busy_is_retried_then_succeeds(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    fake_ollama.inject(Fault.busy(), path="/api/generate", times=2)
    result = await engine.generate(GenerateRequest(CHAT, "x"))
    assert result.text
    assert len(fake_ollama.requests_to("/api/generate")) == 3


async def test_busy_gives_up_after_bounded_retries(
    engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    fake_ollama.inject(Fault.busy(), path="/api/generate", times=10)
    with pytest.raises(EngineBusy) as err:
        await engine.generate(GenerateRequest(CHAT, "x"))
    assert BUSY_MESSAGE in str(err.value)
    assert len(fake_ollama.requests_to("/api/generate")) == 3


async def test_server_error(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    fake_ollama.inject(
        Fault.server_error("model runner has unexpectedly stopped"), path="/api/chat"
    )
    with pytest.raises(ServerError) as err:
        await engine.chat(ChatRequest(CHAT, (ChatMessage("user", "x"),)))
    assert "unexpectedly stopped" in str(err.value)


async def test_error_line_mid_stream(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(tokens=["a", "b", "c", "d"]))
    fake_ollama.inject(Fault.error_line(after_tokens=2), path="/api/generate")
    seen: list[str] = []
    with pytest.raises(StreamError) as err:
        async with contextlib.aclosing(engine.stream_generate(GenerateRequest(CHAT, "x"))) as s:
            async for chunk in s:
                seen.append(chunk.text)
    assert seen == ["a", "b"]
    assert "an error was encountered while running the model" in str(err.value)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.malformed(after_tokens=1),
        Fault.truncate(after_tokens=2),
        Fault.disconnect(after_tokens=2),
    ],
    ids=["malformed", "truncated", "disconnect"],
)
async def test_broken_streams_are_malformed(
    engine: OllamaEngine, fake_ollama: FakeOllama, fault: Fault
) -> None:
    fake_ollama.inject(fault, path="/api/generate")
    with pytest.raises(MalformedResponse):
        await engine.generate(GenerateRequest(CHAT, "x"))


async def test_first_token_timeout(fake_ollama: FakeOllama) -> None:
    timeouts = EngineTimeouts(connect_s=2.0, first_token_s=0.3, between_tokens_s=5.0)
    engine = OllamaEngine(fake_ollama.url, timeouts=timeouts)
    fake_ollama.inject(Fault.stall(3.0), path="/api/generate")
    try:
        with pytest.raises(EngineTimeout) as err:
            await engine.generate(GenerateRequest(CHAT, "x"))
        assert err.value.phase == "first_token"
    finally:
        await engine.aclose()
    stream = fake_ollama.wait_for_stream_end("/api/generate", timeout=3)
    assert stream.closed_early  # the timed-out request was closed, not left hanging


async def test_between_tokens_timeout(fake_ollama: FakeOllama) -> None:
    timeouts = EngineTimeouts(connect_s=2.0, first_token_s=5.0, between_tokens_s=0.3)
    engine = OllamaEngine(fake_ollama.url, timeouts=timeouts)
    fake_ollama.inject(Fault.stall(3.0, after_tokens=2), path="/api/generate")
    try:
        with pytest.raises(EngineTimeout) as err:
            await engine.generate(GenerateRequest(CHAT, "x"))
        assert err.value.phase == "between_tokens"
    finally:
        await engine.aclose()
    assert fake_ollama.wait_for_stream_end("/api/generate", timeout=3).closed_early


# -- cancellation closes the HTTP stream -----------------------------------------------------------
def _slow(fake: FakeOllama) -> None:
    fake.enqueue(Reply(tokens=["tok "] * 200, token_delay=0.05))


async def test_aclose_closes_the_connection(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    _slow(fake_ollama)
    stream = engine.stream_generate(GenerateRequest(CHAT, "x"))
    async for _ in stream:
        break
    cancelled_at = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    record = await fake_ollama.wait_for_stream_end_async("/api/generate")
    assert record.closed_early and record.closed_at is not None
    assert record.closed_at - cancelled_at < CLOSE_BOUND_S
    assert record.tokens_sent < 20


async def test_task_cancel_closes_the_connection(
    engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    _slow(fake_ollama)
    got_first = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(engine.stream_generate(GenerateRequest(CHAT, "x"))) as s:
            async for _ in s:
                got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await fake_ollama.wait_for_stream_end_async("/api/generate")
    assert record.closed_early and record.closed_at is not None
    assert record.closed_at - cancelled_at < CLOSE_BOUND_S


async def test_metered_engine_counts_cancellations(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    stats = UsageStats(tmp_path / "usage.sqlite3")
    engine = MeteredEngine(OllamaEngine(fake_ollama.url, timeouts=FAST), stats)
    try:
        await engine.generate(GenerateRequest(CHAT, "x"))
        _slow(fake_ollama)
        async with contextlib.aclosing(engine.stream_generate(GenerateRequest(CHAT, "y"))) as s:
            async for _ in s:
                break
    finally:
        await engine.aclose()
    usage = UsageStats(tmp_path / "usage.sqlite3").usage(CHAT)  # re-opened: persisted
    assert usage.requests >= 1 and usage.cancelled == 1
    assert usage.tokens_per_second_mean == pytest.approx(50.0)


# -- pull ------------------------------------------------------------------------------------------
async def test_pull_progress_then_installed(engine: OllamaEngine, fake_ollama: FakeOllama) -> None:
    statuses = [p.status async for p in engine.pull("mistral:7b")]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "verifying sha256 digest" in statuses
    assert any(s.startswith("pulling ") and s != "pulling manifest" for s in statuses)
    assert "mistral:7b" in {m.name for m in await engine.list_models()}
    assert fake_ollama.pull_requests()[-1] == {"model": "mistral:7b", "stream": True}


async def test_pull_progress_has_byte_counts(engine: OllamaEngine) -> None:
    layers = [p async for p in engine.pull("smollm2:135m") if p.digest]
    assert layers and all(p.total for p in layers)
    assert layers[-1].percentage == 100


async def test_pull_unknown_model(engine: OllamaEngine) -> None:
    with pytest.raises(ModelNotFound) as err:
        async for _ in engine.pull("no-such-model"):
            pass
    assert "no-such-model" in str(err.value)


# -- the factory, the OpenAI-compatible backend, the facade ----------------------------------------
async def test_factory_builds_an_ollama_engine_from_host_forms(fake_ollama: FakeOllama) -> None:
    engine = create_engine(EngineConfig(kind="ollama", host=f":{fake_ollama.port}"))
    try:
        status = await engine.status()
        assert status.available and status.host == fake_ollama.url
    finally:
        await engine.aclose()


async def test_openai_backend_against_the_v1_endpoints(
    fake_ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", "sekrit")
    fake_ollama.api_key = "sekrit"
    engine = OpenAIEngine(fake_ollama.url + "/v1", api_key_env="FAKE_KEY", timeouts=FAST)
    try:
        names = {m.name for m in await engine.list_models()}
        assert CODER in names
        fake_ollama.enqueue(Reply(tokens=["Hel", "lo"], eval_count=2, prompt_eval_count=11))
        result = await engine.generate(GenerateRequest(CHAT, "hi", system="Be brief."))
        assert result.text == "Hello"
        assert result.metrics.tokens_generated == 2 and result.metrics.prompt_tokens == 11
        body = fake_ollama.wait_for_request("/v1/chat/completions").json
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["stream"] is True
        request = fake_ollama.requests_to("/v1/chat/completions")[-1]
        assert request.headers["authorization"] == "Bearer sekrit"

        fake_ollama.enqueue(Reply(text="a + b"))
        fim = await engine.generate(GenerateRequest(CODER, "return ", suffix="\n"))
        assert fim.text == "a + b"
        assert fake_ollama.bodies("/v1/completions")[-1]["suffix"] == "\n"

        with pytest.raises(ModelNotFound):
            await engine.generate(GenerateRequest("nope", "x"))
        monkeypatch.setenv("FAKE_KEY", "wrong")
        with pytest.raises(AuthenticationFailed) as err:
            await engine.list_models()
        assert "wrong" not in str(err.value)
    finally:
        await engine.aclose()


async def test_openai_stream_cancel_closes_the_connection(fake_ollama: FakeOllama) -> None:
    engine = OpenAIEngine(fake_ollama.url + "/v1", timeouts=FAST)
    _slow(fake_ollama)
    try:
        async with contextlib.aclosing(engine.stream_generate(GenerateRequest(CHAT, "x"))) as s:
            async for _ in s:
                break
        cancelled_at = time.monotonic()
    finally:
        await engine.aclose()
    record = await fake_ollama.wait_for_stream_end_async("/v1/chat/completions")
    assert record.closed_early and record.closed_at is not None
    assert record.closed_at - cancelled_at < CLOSE_BOUND_S


def test_local_engine_facade(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    from aethel_lsp.engine.facade import LocalEngine, LocalInferenceRequest

    with LocalEngine(fake_ollama.url, stats=UsageStats(tmp_path / "u.sqlite3")) as local:
        assert local.check_ollama_available() is True
        assert CODER in {m.name for m in local.list_models()}
        fake_ollama.enqueue(Reply(text="one two"))
        response = local.generate(LocalInferenceRequest(model=CHAT, prompt="count"))
        assert response.to_json()["text"] == "one two"
        fake_ollama.enqueue(Reply(tokens=["x", "y"]))
        assert list(local.stream_generate(LocalInferenceRequest(model=CHAT, prompt="p"))) == [
            "x",
            "y",
        ]
        fake_ollama.go_offline()
        assert local.check_ollama_available() is False
        fake_ollama.go_online()


async def test_rate_limit_before_the_first_chunk_is_busy(
    engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    fake_ollama.inject(Fault.http_error(429, "rate limit exceeded"), path="/api/generate", times=5)
    with pytest.raises(EngineBusy) as err:
        await engine.generate(GenerateRequest(CHAT, "x"))
    assert "rate limit exceeded" in str(err.value)


async def test_think_on_a_model_without_thinking(engine: OllamaEngine) -> None:
    with pytest.raises(CapabilityMissing) as err:
        await engine.generate(GenerateRequest(CHAT, "x", think=True))
    assert err.value.capability == "thinking"


async def test_openai_error_frame_mid_stream(fake_ollama: FakeOllama) -> None:
    engine = OpenAIEngine(fake_ollama.url + "/v1", timeouts=FAST)
    fake_ollama.inject(Fault.error_line(after_tokens=1), path="/v1/chat/completions")
    try:
        with pytest.raises(StreamError):
            await engine.generate(GenerateRequest(CHAT, "x"))
    finally:
        await engine.aclose()
