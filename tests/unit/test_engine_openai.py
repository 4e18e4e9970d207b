"""OpenAIEngine: SSE streaming, usage metrics, FIM via /v1/completions, errors, API key safety."""

from __future__ import annotations

import logging

import httpx
import pytest

from aethel_lsp.engine import (
    AuthenticationFailed,
    CapabilityMissing,
    ChatMessage,
    ChatRequest,
    EngineOffline,
    GenerateRequest,
    GenerationOptions,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    OpenAIEngine,
    RetryPolicy,
    StreamError,
)
from aethel_lsp.engine.errors import LoadedModelsUnknown
from aethel_lsp.engine.openai_compat import normalize_base_url
from tests.unit.engine_support import (
    Script,
    fixture_bytes,
    fixture_reply,
    json_reply,
    refuse_connection,
    stream_reply,
)

BASE = "http://127.0.0.1:8000/v1"
SECRET = "sk-test-0123456789abcdef"


def sse(relative: str) -> list[bytes]:
    return [line + b"\n" for line in fixture_bytes(relative).split(b"\n")]


def engine_for(script: Script, key_env: str = "") -> OpenAIEngine:
    return OpenAIEngine(BASE, api_key_env=key_env, transport=script.transport(),
                        retry=RetryPolicy(backoff_s=0.0))


async def test_chat_streams_sse_and_takes_usage() -> None:
    script = Script().on("/v1/chat/completions", stream_reply(
        sse("derived_from_code/openai_chat_completions_stream_include_usage.sse"),
        content_type="text/event-stream"))
    request = ChatRequest("llama3.2", (ChatMessage("user", "hi"),),
                          options=GenerationOptions(temperature=0.2, num_predict=32,
                                                    stop=("\n",), seed=1))
    chunks = [c async for c in engine_for(script).stream_chat(request)]
    assert script.bodies("/v1/chat/completions") == [{
        "model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_usage": True}, "temperature": 0.2, "max_tokens": 32,
        "stop": ["\n"], "seed": 1,
    }]
    assert [c.text for c in chunks] == ["Hello", "!", ""]
    metrics = chunks[-1].metrics
    assert metrics is not None and chunks[-1].done
    assert (metrics.prompt_tokens, metrics.tokens_generated, metrics.done_reason) == (
        11, 2, "stop")
    assert metrics.time_to_first_token_ms is not None and metrics.latency_ms is not None
    assert script.streams[0].closed


async def test_generate_without_suffix_uses_chat_with_system() -> None:
    script = Script().on("/v1/chat/completions", stream_reply(
        sse("derived_from_code/openai_chat_completions_stream_include_usage.sse")))
    await engine_for(script).generate(GenerateRequest("llama3.2", "explain", system="be brief"))
    assert script.bodies("/v1/chat/completions")[0]["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "explain"}]


async def test_fim_goes_to_completions_with_suffix() -> None:
    script = Script().on("/v1/completions", stream_reply(
        sse("derived_from_code/openai_completions_stream.sse")))
    result = await engine_for(script).generate(
        GenerateRequest("qwen2.5-coder", "def f(", suffix="\n    return 1",
                        options=GenerationOptions(num_predict=16)))
    assert script.bodies("/v1/completions") == [{
        "model": "qwen2.5-coder", "prompt": "def f(", "suffix": "\n    return 1",
        "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 16,
    }]
    assert result.text == "def"
    assert result.metrics.tokens_generated is None  # no usage frame: not estimated
    assert result.metrics.done_reason == "stop"


async def test_models_and_status() -> None:
    script = Script().on("/v1/models", fixture_reply(200, "derived_from_code/openai_models.json"))
    engine = engine_for(script)
    assert [m.name for m in await engine.list_models()] == ["llama3.2:latest"]
    status = await engine.status()
    assert status.available and status.engine == "openai" and status.host == BASE
    with pytest.raises(ModelNotFound, match="not served"):
        await engine.show("nope")
    with pytest.raises(LoadedModelsUnknown, match="does not say which models are loaded"):
        await engine.running()  # Ollama's /v1 lists installed models, not loaded ones


async def test_offline() -> None:
    status = await engine_for(Script().on("/v1/models", refuse_connection)).status()
    assert status.offline and "openai.baseUrl" in (status.error or "")
    with pytest.raises(EngineOffline):
        await engine_for(Script().on("/v1/chat/completions", refuse_connection)).chat(
            ChatRequest("m", (ChatMessage("user", "x"),)))


async def test_openai_error_bodies_are_mapped() -> None:
    script = Script().on("/v1/chat/completions", fixture_reply(
        404, "derived_from_code/openai_model_not_found.404.json"))
    with pytest.raises(ModelNotFound, match="'nope' is not served"):
        await engine_for(script).chat(ChatRequest("nope", (ChatMessage("user", "x"),)))
    script = Script().on("/v1/chat/completions", fixture_reply(
        400, "errors_from_tests/openai_error_forwarding.400.json"))
    with pytest.raises(InvalidRequest, match="model not found"):
        await engine_for(script).chat(ChatRequest("m", (ChatMessage("user", "x"),)))


async def test_suffix_unsupported_is_capability_missing() -> None:
    script = Script().on("/v1/completions", json_reply(
        400, {"error": {"message": "suffix is not supported", "type": "invalid_request_error"}}))
    with pytest.raises(CapabilityMissing):
        await engine_for(script).generate(GenerateRequest("m", "a", suffix="b"))


async def test_api_key_is_sent_as_bearer_and_never_leaks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MY_KEY", SECRET)
    seen: list[str] = []

    def reject(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(401, json={"error": {"message": f"Incorrect API key: {SECRET}"}})

    caplog.set_level(logging.DEBUG)
    engine = engine_for(Script().on("/v1/models", reject), key_env="MY_KEY")
    with pytest.raises(AuthenticationFailed) as info:
        await engine.list_models()
    assert seen == [f"Bearer {SECRET}"]
    assert SECRET not in str(info.value) and "MY_KEY" in str(info.value)
    assert SECRET not in repr(engine) and SECRET not in str(vars(engine))
    assert SECRET not in caplog.text
    status = await engine.status()
    assert SECRET not in (status.error or "")


async def test_missing_key_env_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    script = Script().on("/v1/models", json_reply(401, {"error": {"message": "no key"}}))
    with pytest.raises(AuthenticationFailed, match="MY_KEY is not set"):
        await engine_for(script, key_env="MY_KEY").list_models()
    assert "Authorization" not in str(script.requests)


async def test_error_frame_and_truncation() -> None:
    frames = [b'data: {"choices":[{"delta":{"content":"a"},"index":0}]}\n', b"\n",
              b'data: {"error":{"message":"model crashed"}}\n']
    with pytest.raises(StreamError, match="model crashed"):
        await engine_for(Script().on("/v1/chat/completions", stream_reply(frames))).chat(
            ChatRequest("m", (ChatMessage("user", "x"),)))
    with pytest.raises(MalformedResponse, match=r"without `data: \[DONE\]`"):
        await engine_for(Script().on("/v1/chat/completions", stream_reply(frames[:2]))).chat(
            ChatRequest("m", (ChatMessage("user", "x"),)))
    with pytest.raises(MalformedResponse, match="not JSON"):
        await engine_for(Script().on("/v1/chat/completions", stream_reply(
            [b"data: {oops\n"]))).chat(ChatRequest("m", (ChatMessage("user", "x"),)))


async def test_pull_is_refused_clearly() -> None:
    with pytest.raises(InvalidRequest, match="cannot download models"):
        _ = [p async for p in engine_for(Script()).pull("m")]


def test_base_url_normalization() -> None:
    assert normalize_base_url("http://127.0.0.1:8000") == BASE
    assert normalize_base_url("127.0.0.1:1234/v1/") == "http://127.0.0.1:1234/v1"
    with pytest.raises(InvalidRequest, match=r"openai\.baseUrl"):
        OpenAIEngine("")
