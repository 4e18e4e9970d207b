"""AnthropicEngine against the fake Messages API: SSE, usage, versions, keys, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aethel_lsp.engine import (
    AuthenticationFailed,
    CapabilityMissing,
    ChatMessage,
    ChatRequest,
    EngineBusy,
    GenerateRequest,
    GenerationOptions,
    InvalidRequest,
    ModelNotFound,
    RetryPolicy,
    StreamError,
)
from aethel_lsp.engine.anthropic import AnthropicEngine
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.hosted import Fault, Reply

KEY = "sk-ant-secret-0123"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", KEY)
    with FakeAnthropic(api_key=KEY) as server:
        yield server


def engine(fake: FakeAnthropic, version: str = "2026-10-21") -> AnthropicEngine:
    return AnthropicEngine(fake.url, api_key_env="TEST_ANTHROPIC_KEY", api_version=version,
                           retry=RetryPolicy(attempts=1))


async def test_streams_text_and_takes_anthropic_usage(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply(text="Hello there", input_tokens=21, output_tokens=2))
    claude = engine(fake)
    request = GenerateRequest("claude-haiku-5-5", "hi", system="be brief",
                              options=GenerationOptions(temperature=0.2, num_predict=64,
                                                        stop=("\n\n",)))
    chunks = [c async for c in claude.stream_generate(request)]
    await claude.aclose()
    assert "".join(c.text for c in chunks) == "Hello there"
    metrics = chunks[-1].metrics
    assert metrics is not None and chunks[-1].done
    assert (metrics.prompt_tokens, metrics.tokens_generated, metrics.done_reason) == (
        21, 2, "stop")
    sent = fake.requests_to("/v1/messages")[0]
    assert sent.json == {"model": "claude-haiku-5-5", "max_tokens": 64, "system": "be brief",
                         "messages": [{"role": "user", "content": "hi"}], "stream": True,
                         "stop_sequences": ["\n\n"]}
    assert sent.headers["anthropic-version"] == "2026-10-21"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in sent.headers


async def test_legacy_version_sends_sampling_and_x_api_key(fake: FakeAnthropic) -> None:
    claude = engine(fake, "2023-06-01")
    await claude.generate(GenerateRequest("claude-haiku-5-5", "hi",
                                          options=GenerationOptions(temperature=0.2)))
    await claude.aclose()
    sent = fake.requests_to("/v1/messages")[0]
    assert sent.json["temperature"] == 0.2
    assert sent.headers["x-api-key"] == KEY and "authorization" not in sent.headers


async def test_fake_refuses_sampling_under_current_version(fake: FakeAnthropic) -> None:
    """The fake enforces what the docs say, so the body test above can fail for real."""
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.post(
            fake.url + "/v1/messages",
            headers={"anthropic-version": "2026-10-21", "x-api-key": KEY},
            json={"model": "claude-haiku-5-5", "max_tokens": 5, "temperature": 1.0,
                  "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error",
                                        "message": "temperature: Extra inputs are not permitted"}


async def test_chat_moves_system_messages_to_system(fake: FakeAnthropic) -> None:
    claude = engine(fake)
    await claude.chat(ChatRequest("claude-haiku-5-5", (
        ChatMessage("system", "rules"), ChatMessage("user", "q"),
        ChatMessage("assistant", "a"), ChatMessage("user", "q2"))))
    await claude.aclose()
    body = fake.bodies("/v1/messages")[0]
    assert body["system"] == "rules"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


async def test_lists_models_as_remote(fake: FakeAnthropic) -> None:
    claude = engine(fake)
    models = await claude.list_models()
    shown = await claude.show("claude-opus-5-5")
    await claude.aclose()
    assert models[0].name == "claude-haiku-5-5"
    assert all(m.is_remote for m in models)
    assert shown.context_length == 1_000_000


async def test_missing_model_and_bad_key(fake: FakeAnthropic,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    claude = engine(fake)
    with pytest.raises(ModelNotFound):
        await claude.generate(GenerateRequest("claude-nosuch", "hi"))
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "wrong-key")
    with pytest.raises(AuthenticationFailed) as caught:
        await claude.generate(GenerateRequest("claude-haiku-5-5", "hi"))
    await claude.aclose()
    assert "wrong-key" not in str(caught.value)
    assert "TEST_ANTHROPIC_KEY" in str(caught.value)


async def test_429_carries_retry_after_and_529_is_busy(fake: FakeAnthropic) -> None:
    claude = engine(fake)
    fake.inject(Fault.http(429, retry_after="7"), path="/v1/messages")
    with pytest.raises(EngineBusy) as caught:
        await claude.generate(GenerateRequest("claude-haiku-5-5", "hi"))
    assert caught.value.status == 429 and caught.value.retry_after_s == 7.0
    fake.inject(Fault.http(529), path="/v1/messages")
    with pytest.raises(EngineBusy) as overloaded:
        await claude.generate(GenerateRequest("claude-haiku-5-5", "hi"))
    await claude.aclose()
    assert overloaded.value.status == 529 and "overloaded_error" in str(overloaded.value)


async def test_spend_limit_429_is_not_busy(fake: FakeAnthropic) -> None:
    claude = engine(fake)
    fault = Fault.http(429, message="You have reached your monthly spend limit.")
    fault.details = {"error_code": "enforced_spend_limit_reached"}
    fake.inject(fault, path="/v1/messages")
    with pytest.raises(InvalidRequest) as caught:
        await claude.generate(GenerateRequest("claude-haiku-5-5", "hi"))
    await claude.aclose()
    assert "spend limit" in str(caught.value)


async def test_error_event_mid_stream(fake: FakeAnthropic) -> None:
    claude = engine(fake)
    fake.inject(Fault.error_event(after_tokens=1), path="/v1/messages")
    with pytest.raises(EngineBusy):
        await claude.generate(GenerateRequest("claude-haiku-5-5", "hi"))
    fake.inject(Fault.error_event(after_tokens=1, error_type="api_error"), path="/v1/messages")
    with pytest.raises(StreamError):
        await claude.generate(GenerateRequest("claude-haiku-5-5", "hi"))
    await claude.aclose()


async def test_suffix_is_refused_without_a_request(fake: FakeAnthropic) -> None:
    claude = engine(fake)
    with pytest.raises(CapabilityMissing):
        await claude.generate(GenerateRequest("claude-haiku-5-5", "a", suffix="b"))
    await claude.aclose()
    assert fake.requests_to("/v1/messages") == []


async def test_closing_the_stream_closes_the_response(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply(text="one two three four five six", token_delay=0.2))
    claude = engine(fake)
    stream = claude.stream_generate(GenerateRequest("claude-haiku-5-5", "hi"))
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    ended = fake.wait_for_stream_end()
    await claude.aclose()
    assert ended.closed_early and not ended.completed


async def test_the_wire_request_is_reported(fake: FakeAnthropic) -> None:
    from aethel_lsp.engine.types import WireRequest

    seen: list[WireRequest] = []
    claude = engine(fake)
    await claude.generate(GenerateRequest("claude-haiku-5-5", "hi", on_send=seen.append))
    await claude.aclose()
    assert [(w.endpoint, w.path) for w in seen] == [("messages", "/v1/messages")]
    assert seen[0].body == fake.bodies("/v1/messages")[0]
