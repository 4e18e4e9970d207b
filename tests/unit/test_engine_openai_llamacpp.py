"""OpenAIEngine against llama.cpp server shapes: counts from `timings` or `/tokenize`, honest
unknowns, model names checked against `/v1/models`, context overflow, the request as sent.

The frames are the ones llama.cpp's server (xllamacpp 2026.10.11549, SmolLM2-135M) sent on
this machine, shortened to the fields that matter; the error shapes follow its
`server-context.cpp` (HTTP 400 before the stream, `data: {"error": ...}` inside it, and an
`error: {...}` line from older builds).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aethel_lsp.engine import (
    ChatMessage,
    ChatRequest,
    GenerateRequest,
    GenerationOptions,
    ModelNotFound,
    OpenAIEngine,
    RetryPolicy,
    StreamError,
)
from aethel_lsp.engine.errors import ContextTooLong, LoadedModelsUnknown
from aethel_lsp.engine.types import WireRequest
from tests.unit.engine_support import Script, json_reply, stream_reply

ROOT = "http://127.0.0.1:8080"
BASE = f"{ROOT}/v1"
MODEL = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
TIMINGS = {"cache_n": 31, "prompt_n": 1, "prompt_ms": 79.91, "prompt_per_token_ms": 79.91,
           "prompt_per_second": 12.5, "predicted_n": 3, "predicted_ms": 22.876,
           "predicted_per_token_ms": 11.438, "predicted_per_second": 87.43}
MODELS = {"object": "list", "data": [{
    "id": MODEL, "aliases": ["smol"], "object": "model", "owned_by": "llamacpp",
    "meta": {"n_vocab": 49152, "n_ctx": 512, "n_ctx_train": 8192, "n_params": 134515008,
             "size": 96576768}}]}


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta(text: str) -> bytes:
    return event({"choices": [{"index": 0, "finish_reason": None, "delta": {"content": text}}]})


def final(**extra: Any) -> bytes:
    return event({"choices": [{"index": 0, "finish_reason": "length", "delta": {}}], **extra})


DONE = b"data: [DONE]\n\n"


def engine_for(script: Script) -> OpenAIEngine:
    return OpenAIEngine(BASE, transport=script.transport(), retry=RetryPolicy(backoff_s=0.0))


def served(script: Script) -> Script:
    return script.on("/v1/models", json_reply(200, MODELS))


def chat(model: str = MODEL) -> ChatRequest:
    return ChatRequest(model, (ChatMessage("user", "Say hi"),),
                       options=GenerationOptions(num_predict=3, num_ctx=4096),
                       keep_alive="30m", think=False)


async def test_counts_come_from_timings_when_usage_is_missing() -> None:
    """The server ignored `include_usage`: llama.cpp's `timings` still count."""
    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("Hey"), delta(" there"), delta("!"), final(timings=TIMINGS), DONE]))
    result = await engine_for(script).chat(chat())
    metrics = result.metrics
    assert result.text == "Hey there!"
    assert (metrics.tokens_generated, metrics.prompt_tokens) == (3, 32)  # 1 evaluated + 31 cached
    assert metrics.tokens_per_second == pytest.approx(87.43)  # the server's own rate
    assert metrics.eval_duration_ms == pytest.approx(22.876)
    assert "/tokenize" not in [path for _, path, _ in script.requests]


async def test_usage_wins_over_timings() -> None:
    usage = {"completion_tokens": 3, "prompt_tokens": 40, "total_tokens": 43}
    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("a"), final(), event({"choices": [], "usage": usage, "timings": TIMINGS}), DONE]))
    metrics = (await engine_for(script).chat(chat())).metrics
    assert (metrics.tokens_generated, metrics.prompt_tokens) == (3, 40)


async def test_tokenize_counts_when_the_server_reports_nothing() -> None:
    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("Hey"), delta(" there"), final(), DONE]))
    script.on("/tokenize", json_reply(200, {"tokens": [19556, 665]}))
    metrics = (await engine_for(script).chat(chat())).metrics
    assert metrics.tokens_generated == 2 and metrics.prompt_tokens is None
    assert script.bodies("/tokenize") == [{"content": "Hey there"}]  # at the root, beside /v1


async def test_counts_stay_unknown_without_usage_timings_or_tokenize() -> None:
    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("Hey"), final(), DONE]))
    engine = engine_for(script)
    for _ in range(2):
        metrics = (await engine.chat(chat())).metrics
        assert (metrics.tokens_generated, metrics.prompt_tokens) == (None, None)
        assert metrics.tokens_per_second is None
        assert metrics.summary().startswith("unknown tokens")
    assert len(script.bodies("/tokenize")) == 1  # a server without it is not asked again


async def test_an_unknown_model_name_is_refused_before_generating() -> None:
    """llama.cpp would answer `nosuch` with its one loaded model: we check `/v1/models`."""
    script = served(Script()).on("/v1/chat/completions", stream_reply([delta("x"), DONE]))
    engine = engine_for(script)
    with pytest.raises(ModelNotFound, match=f"'nosuch' is not served at {BASE}.*{MODEL}"):
        await engine.chat(chat("nosuch"))
    assert script.bodies("/v1/chat/completions") == []
    await engine.chat(chat("smol"))  # an alias is served too (from the list read above)
    assert len(script.bodies("/v1/models")) == 1
    with pytest.raises(ModelNotFound):
        await engine.chat(chat("nosuch"))
    assert len(script.bodies("/v1/models")) == 2  # a miss reads the list again


async def test_a_server_without_a_model_list_is_trusted() -> None:
    script = Script().on("/v1/chat/completions", stream_reply([delta("x"), final(), DONE]))
    assert (await engine_for(script).chat(chat("anything"))).text == "x"


async def test_a_prompt_over_the_context_says_what_to_do() -> None:
    body = {"error": {"code": 400, "message": "request (931 tokens) exceeds the available "
                      "context size (512 tokens), try increasing it",
                      "type": "exceed_context_size_error", "n_prompt_tokens": 931, "n_ctx": 512}}
    script = served(Script()).on("/v1/chat/completions", json_reply(400, body))
    with pytest.raises(ContextTooLong) as caught:
        await engine_for(script).chat(chat())
    assert (caught.value.prompt_tokens, caught.value.context_size) == (931, 512)
    message = str(caught.value)
    assert "931 tokens; it holds 512" in message and "`contextSize = 512`" in message
    assert "--ctx-size" in message and "try again" not in message.replace("cannot help", "")


async def test_errors_inside_the_stream_are_not_truncation() -> None:
    overflow = {"error": {"code": 400, "type": "exceed_context_size_error",
                          "message": "the request exceeds the available context size"}}
    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("a"), event(overflow)]))
    with pytest.raises(ContextTooLong, match="does not fit in the context"):
        await engine_for(script).chat(chat())
    older = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("a"), b'error: {"code":500,"message":"slot crashed","type":"server_error"}\n\n']))
    with pytest.raises(StreamError, match="slot crashed"):
        await engine_for(older).chat(chat())


async def test_a_stream_that_finished_without_done_is_complete() -> None:
    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("a"), final(timings=TIMINGS)]))
    result = await engine_for(script).chat(chat())
    assert result.text == "a" and result.metrics.done_reason == "length"


async def test_the_request_is_reported_exactly_as_sent() -> None:
    """No `keep_alive`, `think` or `num_ctx`: this API has none of them."""
    sent: list[WireRequest] = []
    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("a"), final(), DONE]))
    request = GenerateRequest(MODEL, "Say hi", system="be brief", keep_alive="30m", think=False,
                              options=GenerationOptions(num_predict=3, num_ctx=4096),
                              on_send=sent.append)
    await engine_for(script).generate(request)
    [wire] = sent
    assert (wire.endpoint, wire.path) == ("chat", "/v1/chat/completions")
    assert wire.body == script.bodies("/v1/chat/completions")[0]
    assert not {"keep_alive", "think", "num_ctx", "options"} & set(wire.body)


async def test_loaded_models_are_what_llamacpp_lists() -> None:
    engine = engine_for(served(Script()))
    [running] = await engine.running()
    assert (running.name, running.context_length, running.size_bytes) == (MODEL, 512, 96576768)
    status = await engine.status()
    assert [r.name for r in status.running] == [MODEL]
    [info] = await engine.list_models()
    assert (info.parameters, info.context_length) == (134515008, 8192)


async def test_router_status_and_unknown_servers() -> None:
    router = {"data": [{"id": "a", "status": {"value": "loaded"}},
                       {"id": "b", "status": {"value": "unloaded"}}]}
    engine = engine_for(Script().on("/v1/models", json_reply(200, router)))
    assert [r.name for r in await engine.running()] == ["a"]
    lm_studio = {"data": [{"id": "qwen2.5-coder-1.5b", "owned_by": "organization_owner"}]}
    engine = engine_for(Script().on("/v1/models", json_reply(200, lm_studio)))
    with pytest.raises(LoadedModelsUnknown):
        await engine.running()
    assert (await engine.status()).running == ()


def test_closing_the_facade_leaves_no_pending_task(caplog: pytest.LogCaptureFixture) -> None:
    """A stream read up to `[DONE]` closes every generator below it itself: none is left to
    the garbage collector, whose clean-up task the facade's stopping loop would destroy
    ("Task was destroyed but it is pending!" at every exit)."""
    import gc

    from aethel_lsp.engine.facade import LocalEngine, LocalInferenceRequest

    script = served(Script()).on("/v1/chat/completions", stream_reply(
        [delta("Hey"), final(timings=TIMINGS), DONE]))
    facade = LocalEngine(engine=engine_for(script), record_usage=False)
    request = LocalInferenceRequest(prompt="Say hi", model=MODEL, max_tokens=3)
    assert "".join(facade.stream_generate(request)) == "Hey"
    assert facade.generate(request).tokens_generated == 3
    facade.close()
    gc.collect()
    assert "Task was destroyed" not in caplog.text
