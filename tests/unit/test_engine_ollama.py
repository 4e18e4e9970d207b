"""OllamaEngine against httpx.MockTransport: exact request JSON, every error, metrics, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import httpx
import pytest

from aethel_lsp.engine import (
    CapabilityMissing,
    ChatMessage,
    ChatRequest,
    EngineBusy,
    EngineError,
    EngineOffline,
    EngineTimeout,
    EngineTimeouts,
    GenerateRequest,
    GenerationOptions,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    OllamaEngine,
    RetryPolicy,
    ServerError,
    StreamError,
)
from tests.unit.engine_support import (
    Script,
    fixture_json,
    fixture_reply,
    generate_lines,
    json_reply,
    ndjson_lines,
    refuse_connection,
    stream_reply,
)

HOST = "http://127.0.0.1:11434"
MODEL = "qwen2.5-coder:1.5b"


def engine_for(script: Script, **timeouts: float) -> OllamaEngine:
    return OllamaEngine(HOST, timeouts=EngineTimeouts(**timeouts), transport=script.transport(),
                        retry=RetryPolicy(attempts=3, backoff_s=0.0))


def ok_generate(script: Script, tokens: tuple[str, ...] = ("def", " f", "():")) -> Script:
    return script.on("/api/generate", stream_reply(generate_lines(tokens)))


# -- exact request bodies ---------------------------------------------------------------


async def test_generate_sends_minimal_body_with_think_false() -> None:
    script = ok_generate(Script())
    await engine_for(script).generate(GenerateRequest(MODEL, "write f"))
    assert script.bodies("/api/generate") == [
        {"model": MODEL, "prompt": "write f", "stream": True, "think": False}
    ]


async def test_generate_with_suffix_system_options_keep_alive() -> None:
    script = ok_generate(Script())
    options = GenerationOptions(temperature=0.1, num_predict=64, num_ctx=4096,
                                stop=("\n\n", "```"), seed=7)
    request = GenerateRequest(MODEL, "def f(", system="complete code", suffix="\n    return x",
                              options=options, keep_alive="30m")
    await engine_for(script).generate(request)
    assert script.bodies("/api/generate") == [{
        "model": MODEL, "prompt": "def f(", "stream": True, "think": False,
        "system": "complete code", "suffix": "\n    return x", "keep_alive": "30m",
        "options": {"temperature": 0.1, "num_predict": 64, "num_ctx": 4096,
                    "stop": ["\n\n", "```"], "seed": 7},
    }]


async def test_generate_raw_and_think_omitted_when_none() -> None:
    script = ok_generate(Script())
    await engine_for(script).generate(GenerateRequest(MODEL, "x", raw=True, think=None,
                                                      keep_alive=0))
    assert script.bodies("/api/generate") == [
        {"model": MODEL, "prompt": "x", "stream": True, "raw": True, "keep_alive": 0}
    ]


async def test_generate_sends_context_and_returns_the_final_lines_context() -> None:
    final = {"model": MODEL, "response": "", "done": True, "context": [7, 8, True, "x", 9],
             "eval_count": 1, "eval_duration": 1_000_000}
    script = Script().on("/api/generate", stream_reply([json.dumps(final).encode() + b"\n"]),
                         stream_reply(generate_lines(["a"])))
    engine = engine_for(script)
    result = await engine.generate(GenerateRequest(MODEL, "go on", context=(1, 2, 3)))
    assert result.context == (7, 8, 9)  # token ids only
    assert (await engine.generate(GenerateRequest(MODEL, "again"))).context == ()
    first, second = script.bodies("/api/generate")
    assert first["context"] == [1, 2, 3] and "context" not in second


async def test_chat_body_is_exact() -> None:
    script = Script().on("/api/chat", stream_reply(ndjson_lines(
        "native/chat/01_streaming.response.ndjson")))
    request = ChatRequest("llama3.2", (ChatMessage("system", "be brief"),
                                       ChatMessage("user", "why is the sky blue?")),
                          options=GenerationOptions(stop=("END",)))
    result = await engine_for(script).chat(request)
    assert script.bodies("/api/chat") == [{
        "model": "llama3.2", "stream": True, "think": False, "options": {"stop": ["END"]},
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": "why is the sky blue?"}],
    }]
    assert result.text == "The"
    assert result.metrics.tokens_generated == 282


# -- metrics ----------------------------------------------------------------------------


async def test_metrics_come_from_the_final_line() -> None:
    script = Script().on("/api/generate", stream_reply(ndjson_lines(
        "native/generate/01_streaming.response.ndjson")))
    result = await engine_for(script).generate(GenerateRequest("llama3.2", "why?"))
    final = fixture_json("native/generate/01_streaming.response_final.json")
    m = result.metrics
    assert result.text == "The"
    assert m.tokens_generated == final["eval_count"] == 259
    assert m.tokens_per_second == pytest.approx(259 / 4232710000 * 1e9)
    assert m.prompt_tokens == 26
    assert m.load_ms == pytest.approx(6338.219291)
    assert m.total_duration_ms == pytest.approx(10706.818083)
    assert m.time_to_first_token_ms is not None and m.latency_ms is not None
    assert 0 <= m.time_to_first_token_ms <= m.latency_ms


async def test_streamed_chunks_then_final_chunk_with_done_reason() -> None:
    script = ok_generate(Script())
    chunks = [c async for c in engine_for(script).stream_generate(GenerateRequest(MODEL, "p"))]
    assert [c.text for c in chunks] == ["def", " f", "():", ""]
    assert [c.done for c in chunks] == [False, False, False, True]
    metrics = chunks[-1].metrics
    assert metrics is not None
    assert metrics.done_reason == "stop"
    assert metrics.tokens_per_second == pytest.approx(2.0)  # 4 tokens / 2 s
    assert script.streams[0].closed


async def test_generate_releases_the_response_at_once() -> None:
    script = ok_generate(Script())
    await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert script.streams[0].closed


async def test_thinking_fragments_are_kept_apart() -> None:
    script = Script().on("/api/generate", stream_reply(ndjson_lines(
        "derived_from_code/generate_stream_with_thinking.ndjson")))
    result = await engine_for(script).generate(GenerateRequest(MODEL, "p", think=True))
    assert result.thinking
    assert result.thinking not in result.text


# -- models -----------------------------------------------------------------------------


async def test_list_models_show_running() -> None:
    script = (Script()
              .on("/api/tags", fixture_reply(200, "native/tags/response.json"))
              .on("/api/show", fixture_reply(200, "native/show/response.normalized.json"))
              .on("/api/ps", fixture_reply(200, "native/ps/response.json")))
    engine = engine_for(script)
    models = await engine.list_models()
    assert [m.name for m in models] == ["deepseek-r1:latest", "llama3.2:latest"]
    assert models[0].size_bytes == 4683075271 and models[0].parameter_size == "7.6B"
    shown = await engine.show("llava")
    assert shown.parameters == 8030261248
    assert shown.context_length == 8192
    assert (shown.family, shown.quantization) == ("llama", "Q4_0")
    assert shown.capabilities == ("completion", "vision")
    await engine.show("llava")
    assert script.bodies("/api/show") == [{"model": "llava"}]  # cached
    running = await engine.running()
    assert running[0].name == "mistral:latest" and running[0].size_vram == 5137025024
    assert running[0].expires_at == "2024-06-04T14:38:31.83753-07:00"


async def test_list_models_detailed_merges_tags_and_show() -> None:
    script = (Script()
              .on("/api/tags", fixture_reply(200, "native/tags/response.json"))
              .on("/api/show", fixture_reply(200, "native/show/response.normalized.json"),
                  fixture_reply(404, "derived_from_code/show_model_not_found.404.json")))
    detailed = await engine_for(script).list_models_detailed()
    assert detailed[0].parameters == 8030261248 and detailed[0].size_bytes == 4683075271
    assert detailed[1].name == "llama3.2:latest" and detailed[1].parameters is None


async def test_status_available() -> None:
    script = (Script()
              .on("/api/version", fixture_reply(200, "native/version/response.json"))
              .on("/api/tags", fixture_reply(200, "native/tags/response.json"))
              .on("/api/ps", fixture_reply(200, "native/ps/response.json")))
    status = await engine_for(script).status()
    assert status.available and status.state == "available"
    assert status.version == "0.5.1" and status.host == HOST and status.engine == "ollama"
    assert len(status.models) == 2 and status.running[0].name == "mistral:latest"


async def test_version_falls_back_to_the_root_banner() -> None:
    script = Script().on("/", fixture_reply(200, "derived_from_code/root.txt", "text/plain"))
    assert await engine_for(script).version() == "unknown"


async def test_something_else_at_the_host_is_not_mistaken_for_ollama() -> None:
    script = Script().on("/", lambda r: httpx.Response(200, text="<html>nginx</html>"))
    with pytest.raises(MalformedResponse, match="not Ollama"):
        await engine_for(script).version()


async def test_pull_streams_progress_until_success() -> None:
    script = Script().on("/api/pull", stream_reply(ndjson_lines("native/pull/response.ndjson")))
    progress = [p async for p in engine_for(script).pull("llama3.2")]
    assert script.bodies("/api/pull") == [{"model": "llama3.2", "stream": True}]
    assert progress[0].status == "pulling manifest"
    assert (progress[1].total, progress[1].completed, progress[1].digest) == (
        2142590208, 241970, "digestname")
    assert progress[-1].status == "success"


async def test_pull_error_line_is_an_error() -> None:
    script = Script().on("/api/pull", stream_reply(ndjson_lines(
        "derived_from_code/pull_not_found_stream.ndjson")))
    seen: list[str] = []
    with pytest.raises(ModelNotFound, match="no such model") as info:
        async for progress in engine_for(script).pull("nope"):
            seen.append(progress.status)
    assert seen == ["pulling manifest"]
    assert "pull model manifest: file does not exist" in str(info.value)


async def test_pull_without_success_is_truncated() -> None:
    script = Script().on("/api/pull", stream_reply([b'{"status":"pulling manifest"}\n']))
    with pytest.raises(MalformedResponse, match="ended before the download"):
        _ = [p async for p in engine_for(script).pull("llama3.2")]


# -- errors -----------------------------------------------------------------------------


async def test_offline_is_engine_offline_never_model_not_found() -> None:
    script = Script().on("/api/generate", refuse_connection).on("/api/show", refuse_connection)
    engine = engine_for(script)
    with pytest.raises(EngineOffline) as info:
        await engine.generate(GenerateRequest(MODEL, "p"))
    assert str(info.value) == (f"Ollama is not running at {HOST} — start it with `ollama serve` "
                               "(or set `host` to where it runs).")
    with pytest.raises(EngineOffline):
        await engine.show(MODEL)


def unresolvable_host(request: httpx.Request) -> httpx.Response:
    """What httpx raises for a mistyped host: a ConnectError caused by socket.gaierror."""
    try:
        raise socket.gaierror(-2, "Name or service not known")
    except socket.gaierror as exc:
        raise httpx.ConnectError("[Errno -2] Name or service not known",
                                 request=request) from exc


async def test_a_mistyped_host_says_cannot_resolve_not_ollama_serve() -> None:
    script = Script().on("/api/generate", unresolvable_host)
    with pytest.raises(EngineOffline) as info:
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert str(info.value).startswith(f"Cannot resolve the host name of {HOST}: check its")
    assert "ollama serve" not in str(info.value)


async def test_status_offline_says_host_and_ollama_serve() -> None:
    script = Script().on("/api/version", refuse_connection)
    status = await engine_for(script).status()
    assert not status.available and status.offline and status.state == "offline"
    assert status.error is not None and HOST in status.error and "ollama serve" in status.error


async def test_status_never_raises_on_unexpected_errors() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    status = await engine_for(Script().on("/api/version", explode)).status()
    assert not status.available and not status.offline and "boom" in (status.error or "")


async def test_404_is_model_not_found_with_pull_advice() -> None:
    script = Script().on("/api/generate", fixture_reply(
        404, "derived_from_code/generate_model_not_found.404.json"))
    with pytest.raises(ModelNotFound) as info:
        await engine_for(script).generate(GenerateRequest("llama3.2", "p"))
    assert info.value.model == "llama3.2"
    assert str(info.value) == (f"Model 'llama3.2' is not installed in Ollama at {HOST} — "
                               "install it with `ollama pull llama3.2`.")


async def test_show_404_is_model_not_found() -> None:
    script = Script().on("/api/show", fixture_reply(
        404, "derived_from_code/show_model_not_found.404.json"))
    with pytest.raises(ModelNotFound, match=r"ollama pull llama3\.2"):
        await engine_for(script).show("llama3.2")


async def test_unknown_route_404_is_not_a_missing_model() -> None:
    script = Script().on("/api/tags", fixture_reply(
        404, "derived_from_code/unknown_route.404.txt", "text/plain"))
    with pytest.raises(MalformedResponse, match="is it really Ollama"):
        await engine_for(script).list_models()


async def test_suffix_without_insert_is_capability_missing() -> None:
    script = Script().on("/api/generate", fixture_reply(
        400, "errors_from_tests/generate_suffix_without_insert.400.json"))
    with pytest.raises(CapabilityMissing) as info:
        await engine_for(script).generate(GenerateRequest("test", "a", suffix="b"))
    assert info.value.capability == "insert" and info.value.model == "test"
    assert "cannot fill in the middle" in str(info.value)
    assert "registry.ollama.ai/library/test:latest does not support insert" in str(info.value)


async def test_other_400_is_invalid_request_with_ollamas_text() -> None:
    script = Script().on("/api/generate", fixture_reply(
        400, "derived_from_code/raw_with_template.400.json"))
    with pytest.raises(InvalidRequest) as info:
        await engine_for(script).generate(GenerateRequest(MODEL, "p", raw=True))
    assert str(info.value) == (f"Ollama at {HOST} rejected the request: raw mode does not "
                               "support template, system, or context")


async def test_503_is_retried_then_succeeds() -> None:
    busy = fixture_reply(503, "derived_from_code/server_busy.503.json")
    script = Script().on("/api/generate", busy, busy, stream_reply(generate_lines(["ok"])))
    result = await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert result.text == "ok"
    assert len(script.bodies("/api/generate")) == 3


async def test_503_bounded_retry_then_engine_busy() -> None:
    script = Script().on("/api/generate", fixture_reply(
        503, "derived_from_code/server_busy.503.json"))
    with pytest.raises(EngineBusy) as info:
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert len(script.bodies("/api/generate")) == 3
    assert "server busy, please try again.  maximum pending requests exceeded" in str(info.value)
    assert "after 3 attempts" in str(info.value)


async def test_503_on_a_plain_request_is_retried_too() -> None:
    busy = fixture_reply(503, "errors_from_tests/runner_status_error_nonstream.503.json")
    script = Script().on("/api/tags", busy, fixture_reply(200, "native/tags/response.json"))
    assert len(await engine_for(script).list_models()) == 2


async def test_5xx_is_server_error() -> None:
    script = Script().on("/api/generate", fixture_reply(
        500, "derived_from_code/invalid_option_type.500.json"))
    with pytest.raises(ServerError) as info:
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert info.value.status == 500
    assert 'option "temperature" must be of type float32' in str(info.value)


async def test_error_line_mid_stream_is_stream_error() -> None:
    script = Script().on("/api/generate", stream_reply(ndjson_lines(
        "docs_api_mdx/midstream_error_generate.ndjson")))
    texts: list[str] = []
    with pytest.raises(StreamError) as info:
        async for chunk in engine_for(script).stream_generate(GenerateRequest("gemma4", "p")):
            texts.append(chunk.text)
    assert texts == [" Yes", ".", "I", "can"]
    assert "an error was encountered while running the model" in str(info.value)
    assert script.streams[0].closed


async def test_non_json_line_is_malformed() -> None:
    script = Script().on("/api/generate", stream_reply([b'{"response":"a","done":false}\n',
                                                        b"<html>oops\n"]))
    with pytest.raises(MalformedResponse, match="not JSON"):
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))


async def test_truncated_stream_is_malformed() -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b"])[:-1]))
    with pytest.raises(MalformedResponse, match="ended before its final line"):
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))


async def test_connection_dropped_mid_stream_is_malformed() -> None:
    class Dropping(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b'{"response":"a","done":false}\n'
            raise httpx.RemoteProtocolError("peer closed connection without sending complete "
                                            "message body")

    script = Script().on("/api/generate", lambda r: httpx.Response(200, stream=Dropping()))
    with pytest.raises(MalformedResponse, match=r"connection to .* broke"):
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))


async def test_first_token_timeout() -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a"]), stall_after=0))
    engine = engine_for(script, first_token_s=0.2)
    with pytest.raises(EngineTimeout) as info:
        await engine.generate(GenerateRequest(MODEL, "p"))
    assert info.value.phase == "first_token"
    assert "no first token within 0.2 s" in str(info.value)
    assert script.streams[0].closed


async def test_between_tokens_timeout() -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b"]), stall_after=1))
    engine = engine_for(script, between_tokens_s=0.2)
    with pytest.raises(EngineTimeout) as info:
        await engine.generate(GenerateRequest(MODEL, "p"))
    assert info.value.phase == "between_tokens"
    assert "stalled" in str(info.value) and "0.2 s" in str(info.value)
    assert script.streams[0].closed


async def test_connect_timeout() -> None:
    def slow_connect(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with pytest.raises(EngineTimeout) as info:
        await engine_for(Script().on("/api/generate", slow_connect)).generate(
            GenerateRequest(MODEL, "p"))
    assert info.value.phase == "connect" and "ollama serve" in str(info.value)


async def test_every_error_is_an_engine_error_with_host() -> None:
    script = Script().on("/api/generate", refuse_connection)
    with pytest.raises(EngineError) as info:
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert info.value.host == HOST


# -- cancellation closes the HTTP response -----------------------------------------------


async def test_aclose_closes_the_response() -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b", "c"]),
                                                       delay_s=0.01))
    stream = engine_for(script).stream_generate(GenerateRequest(MODEL, "p"))
    first = await anext(stream)
    assert first.text == "a"
    assert not script.streams[0].closed
    await stream.aclose()  # type: ignore[attr-defined]
    assert script.streams[0].closed
    assert script.streams[0].sent < 4


async def test_break_inside_aclosing_closes_the_response() -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b", "c"])))
    engine = engine_for(script)
    async with contextlib.aclosing(engine.stream_generate(GenerateRequest(MODEL, "p"))) as s:  # type: ignore[type-var]
        async for _chunk in s:
            break
    assert script.streams[0].closed


async def test_task_cancellation_closes_the_response() -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b"]),
                                                       stall_after=1))
    engine = engine_for(script)
    got_first = asyncio.Event()

    async def consume() -> None:
        async for _chunk in engine.stream_generate(GenerateRequest(MODEL, "p")):
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.streams[0].closed


@pytest.mark.parametrize(("fixture", "capability", "advice"), [
    ("derived_from_code/thinking_unsupported_generate.400.json", "thinking", "think: false"),
    ("errors_from_tests/generate_no_completion_capability.400.json", "generate",
     "embedding model"),
])
async def test_other_missing_capabilities(fixture: str, capability: str, advice: str) -> None:
    script = Script().on("/api/generate", fixture_reply(400, fixture))
    with pytest.raises(CapabilityMissing) as info:
        await engine_for(script).generate(GenerateRequest("bert", "p"))
    assert info.value.capability == capability and advice in str(info.value)


async def test_429_before_the_first_chunk_is_busy() -> None:
    script = Script().on("/api/generate", fixture_reply(
        429, "errors_from_tests/runner_status_error_stream_before_first_chunk.429.json"))
    with pytest.raises(EngineBusy, match="rate limit exceeded"):
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))


async def test_host_forms_are_normalized() -> None:
    assert OllamaEngine(":11500").host == "http://127.0.0.1:11500"
    assert OllamaEngine(None).host == "http://127.0.0.1:11434"
    assert json_reply(200, {})  # helper stays importable for other tests


def stale_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                     request=request)


async def test_a_stale_keep_alive_connection_is_retried_once() -> None:
    script = Script().on("/api/generate", stale_connection,
                         stream_reply(generate_lines(("ok",))))
    result = await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert result.text == "ok"
    assert len(script.bodies("/api/generate")) == 2
    script = Script().on("/api/tags", stale_connection, json_reply(200, {"models": []}))
    assert await engine_for(script).list_models() == []


async def test_a_connection_dropped_twice_is_a_clear_error() -> None:
    script = Script().on("/api/generate", stale_connection, stale_connection,
                         stream_reply(generate_lines(("never",))))
    with pytest.raises(MalformedResponse, match="broke during"):
        await engine_for(script).generate(GenerateRequest(MODEL, "p"))
    assert len(script.bodies("/api/generate")) == 2
