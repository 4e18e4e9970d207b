"""The hosted-API fakes speak the documented wire formats (see each fake's docstring):
exact error bodies, headers, SSE events, usage present or absent, per flavour."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.hosted import Fault, Reply
from tests.fakes.openai import FakeOpenAI

HEADERS = {"anthropic-version": "2026-10-21", "x-api-key": "sk-ant-test"}
MESSAGE = {"model": "claude-haiku-5-5", "max_tokens": 16,
           "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def claude() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def events(body: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in body.strip().split("\n\n"):
        name, data = block.split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_anthropic_stream_event_order_and_usage(claude: FakeAnthropic) -> None:
    claude.enqueue(Reply(text="a b", input_tokens=9, output_tokens=2))
    body = httpx.post(claude.url + "/v1/messages", headers=HEADERS,
                      json={**MESSAGE, "stream": True}).text
    seen = events(body)
    assert [name for name, _ in seen] == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in seen)
    assert seen[0][1]["message"]["usage"]["input_tokens"] == 9  # type: ignore[index]
    assert seen[6][1]["usage"] == {"output_tokens": 2}
    assert seen[6][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_anthropic_error_shapes_and_headers(claude: FakeAnthropic) -> None:
    missing_version = httpx.post(claude.url + "/v1/messages", json=MESSAGE,
                                 headers={"x-api-key": "sk-ant-test"})
    assert missing_version.status_code == 400
    bad_key = httpx.post(claude.url + "/v1/messages", json=MESSAGE,
                         headers={**HEADERS, "x-api-key": "nope"})
    body = bad_key.json()
    assert bad_key.status_code == 401 and set(body) == {"type", "error", "request_id"}
    assert body["error"]["type"] == "authentication_error"
    assert bad_key.headers["request-id"] == body["request_id"]
    bearer = httpx.post(claude.url + "/v1/messages", json=MESSAGE,
                        headers={"anthropic-version": "2023-06-01",
                                 "authorization": "Bearer sk-ant-test"})
    assert bearer.status_code == 200  # either header works under either version
    claude.inject(Fault.http(429, retry_after="5"))
    limited = httpx.post(claude.url + "/v1/messages", headers=HEADERS, json=MESSAGE)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "5"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    claude.inject(Fault.http(529))
    overloaded = httpx.post(claude.url + "/v1/messages", headers=HEADERS, json=MESSAGE)
    assert overloaded.status_code == 529
    assert overloaded.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_anthropic_sampling_parameters_per_version(claude: FakeAnthropic) -> None:
    for name in ("temperature", "top_p", "top_k"):
        refused = httpx.post(claude.url + "/v1/messages", headers=HEADERS,
                             json={**MESSAGE, name: 1})
        assert refused.status_code == 400, name
    legacy = httpx.post(claude.url + "/v1/messages", json={**MESSAGE, "temperature": 1.0},
                        headers={**HEADERS, "anthropic-version": "2023-06-01"})
    assert legacy.status_code == 200 and legacy.json()["usage"]["output_tokens"] > 0


def test_anthropic_models_list(claude: FakeAnthropic) -> None:
    listed = httpx.get(claude.url + "/v1/models", headers=HEADERS).json()
    assert set(listed) == {"data", "has_more", "first_id", "last_id"}
    assert listed["first_id"] == listed["data"][0]["id"]
    assert set(listed["data"][0]) == {"type", "id", "display_name", "created_at",
                                      "max_input_tokens", "max_tokens"}


def sse_frames(body: str) -> list[object]:
    frames: list[object] = []
    for line in body.splitlines():
        if line.startswith("data: "):
            payload = line.removeprefix("data: ")
            frames.append(payload if payload == "[DONE]" else json.loads(payload))
    return frames


CHAT = {"model": "coder", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.mark.parametrize("flavor", ["openai", "vllm", "deepseek"])
def test_openai_usage_only_when_asked(flavor: str) -> None:
    with FakeOpenAI(flavor=flavor, cache_hit_tokens=1) as fake:  # type: ignore[arg-type]
        plain = sse_frames(httpx.post(fake.url + "/v1/chat/completions", json=CHAT).text)
        asked = sse_frames(httpx.post(fake.url + "/v1/chat/completions", json={
            **CHAT, "stream_options": {"include_usage": True}}).text)
    assert plain[-1] == "[DONE]" and not any(isinstance(f, dict) and "usage" in f for f in plain)
    usage_frame = asked[-2]
    assert isinstance(usage_frame, dict) and usage_frame["choices"] == []
    usage = usage_frame["usage"]
    if flavor == "deepseek":
        assert usage["prompt_cache_hit_tokens"] == 1
        assert usage["prompt_cache_miss_tokens"] == usage["prompt_tokens"] - 1
    else:
        assert "prompt_cache_hit_tokens" not in usage


def test_llamacpp_ignores_include_usage_and_sends_timings() -> None:
    with FakeOpenAI(flavor="llamacpp", context_size=3) as fake:
        frames = sse_frames(httpx.post(fake.url + "/v1/chat/completions", json={
            **CHAT, "stream_options": {"include_usage": True}}).text)
        tokens = httpx.post(fake.url + "/tokenize", json={"content": "a b c"}).json()
        too_long = httpx.post(fake.url + "/v1/chat/completions", json={
            **CHAT, "messages": [{"role": "user", "content": "one two three four"}]})
    last = frames[-2]
    assert isinstance(last, dict) and "usage" not in last
    assert set(last["timings"]) >= {"prompt_n", "predicted_n", "predicted_per_second"}
    assert len(tokens["tokens"]) == 3
    assert too_long.status_code == 400
    assert too_long.json()["error"]["type"] == "exceed_context_size_error"


def test_openai_error_bodies_per_flavor() -> None:
    with FakeOpenAI() as openai, FakeOpenAI(flavor="vllm") as vllm:
        openai.inject(Fault.http(429, retry_after="2"))
        limited = httpx.post(openai.url + "/v1/chat/completions", json=CHAT)
        missing = httpx.post(vllm.url + "/v1/chat/completions", json={**CHAT, "model": "x"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert missing.status_code == 404 and missing.json()["object"] == "error"
