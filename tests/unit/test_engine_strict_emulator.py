"""The Ollama engine against the independent strict emulator (`tests/fakes/ollama_strict.py`).

Our own fake and the client were written by the same people; this second emulator was
written from the API reference only, so these tests catch shared misunderstandings:
Go's JSON (key order, omitempty, raw UTF-8 incl. U+0085), lines split across chunks and
TCP writes, thinking on by default for thinking models, per-endpoint 404 texts, mid-stream
error lines, busy retries, timeouts per phase, and cancellation seen from the server side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest

from aethel_lsp.engine import create_engine
from aethel_lsp.engine._http import RetryPolicy
from aethel_lsp.engine.errors import (
    CapabilityMissing,
    EngineBusy,
    EngineOffline,
    EngineTimeout,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    StreamError,
)
from aethel_lsp.engine.factory import EngineConfig
from aethel_lsp.engine.ollama import OllamaEngine
from aethel_lsp.engine.openai_compat import OpenAIEngine
from aethel_lsp.engine.types import (
    ChatMessage,
    ChatRequest,
    EngineTimeouts,
    GenerateRequest,
    GenerationOptions,
)
from tests.fakes.ollama_strict import BUSY_TEXT, StrictOllama, go_json, rfc3339_nano

FAST_RETRY = RetryPolicy(attempts=3, backoff_s=0.01)
CODER_FIM = "qwen2.5-coder:1.5b"


@pytest.fixture
def emu() -> Iterator[StrictOllama]:
    with StrictOllama() as server:
        yield server


def engine_for(emu: StrictOllama, **timeouts: float) -> OllamaEngine:
    return OllamaEngine(emu.url, timeouts=EngineTimeouts(**timeouts), retry=FAST_RETRY)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the emulator itself speaks Go's dialect ------------------------------------------


def test_go_json_escapes_like_encoding_json() -> None:
    assert go_json({"a": "<&>", "b": "é\u0085\u2028🙂"}) == (
        '{"a":"\\u003c\\u0026\\u003e","b":"é\u0085\\u2028🙂"}')


def test_created_at_trims_trailing_zeros_and_keeps_nanoseconds() -> None:
    assert rfc3339_nano(1_691_176_965_499_127_000) == "2023-08-04T19:22:45.499127Z"
    assert rfc3339_nano(1_691_176_965_000_000_001) == "2023-08-04T19:22:45.000000001Z"
    assert rfc3339_nano(1_691_176_965_000_000_000) == "2023-08-04T19:22:45Z"


# -- detection and models -------------------------------------------------------------


async def test_status_lists_local_and_cloud_models_and_running_with_local_offset(
    emu: StrictOllama,
) -> None:
    engine = engine_for(emu)
    try:
        status = await engine.status()
    finally:
        await engine.aclose()
    assert status.available and status.version == "0.33.0" and status.host == emu.url
    names = [m.name for m in status.models]
    assert "gpt-oss:120b-cloud" in names and "someuser/aethel-coder:latest" in names
    coder = next(m for m in status.models if m.name == "qwen2.5-coder:1.5b")
    assert coder.capabilities == ("completion", "tools", "insert")
    assert coder.size_bytes == 986061892 and coder.quantization == "Q4_K_M"
    [running] = status.running
    assert running.name == "qwen2.5-coder:1.5b" and running.context_length == 4096
    assert running.expires_at is not None and running.expires_at.endswith("-07:00")


async def test_show_reads_exact_parameters_and_context_from_large_model_info(
    emu: StrictOllama,
) -> None:
    engine = engine_for(emu)
    try:
        coder = await engine.show("qwen2.5-coder:1.5b")
        thinker = await engine.show("qwen3:8b")  # 36 blocks -> 300+ tensors in the body
        mystery = await engine.show("mystery:7b")  # no general.parameter_count
        cloud = await engine.show("gpt-oss:120b-cloud")  # remote: minimal model_info
        short = await engine.show("llama3.2")  # tag defaults to latest
    finally:
        await engine.aclose()
    assert (coder.parameters, coder.context_length) == (1543714304, 32768)
    assert coder.has("insert")
    assert (thinker.parameters, thinker.context_length) == (8190735360, 40960)
    assert thinker.has("thinking")
    assert mystery.parameters is None and mystery.context_length is None
    assert mystery.parameter_size == "7B"  # the human string is still there
    assert cloud.parameters is None and cloud.context_length == 131072
    assert short.parameters == 3212749888


async def test_show_unknown_model_is_not_installed_with_pull_advice(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        with pytest.raises(ModelNotFound) as info:
            await engine.show("nope")
    finally:
        await engine.aclose()
    assert "ollama pull nope" in str(info.value)


async def test_tags_without_capabilities_like_older_servers() -> None:
    with StrictOllama(tags_capabilities=False) as emu:
        engine = engine_for(emu)
        try:
            listed = await engine.list_models()
            detailed = await engine.list_models_detailed()
        finally:
            await engine.aclose()
    assert all(m.capabilities == () for m in listed)
    by_name = {m.name: m for m in detailed}
    assert by_name["qwen2.5-coder:1.5b"].has("insert")
    assert by_name["qwen2.5-coder:1.5b"].parameters == 1543714304


# -- generation: text and metrics -----------------------------------------------------


@pytest.mark.parametrize("split", ["line", "split", "packed", "bytewise"])
async def test_text_is_reassembled_exactly_and_metrics_come_from_the_final_line(
    emu: StrictOllama, split: str
) -> None:
    tokens = ["fn ", "привет", "(", "🙂", ") ", "→ ", "日本語", "\n", "<&>", "\"q\"", "\\"]
    emu.script(tokens=tokens, split=split, eval_count=259, eval_duration=4_232_710_000,
               prompt_eval_count=26, load_duration=6_338_219_291, done_reason="stop")
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("qwen2.5-coder:1.5b", "write"))
    finally:
        await engine.aclose()
    assert result.text == "".join(tokens)
    m = result.metrics
    assert m.tokens_generated == 259 and m.prompt_tokens == 26
    assert m.tokens_per_second == pytest.approx(259 / 4_232_710_000 * 1e9)
    assert m.load_ms == pytest.approx(6338.219291)
    assert m.done_reason == "stop"
    assert m.time_to_first_token_ms is not None and m.latency_ms is not None


async def test_unicode_line_separators_in_tokens_do_not_split_ndjson_lines(
    emu: StrictOllama,
) -> None:
    """Go leaves U+0085 (NEL) raw inside JSON strings; only "\\n" ends an NDJSON line."""
    tokens = ["a\u0085b", "c\u2028d", "e\x1cf", "\x0b\x0c", "end"]
    emu.script(tokens=tokens, split="packed")
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("qwen2.5-coder:1.5b", "x"))
    finally:
        await engine.aclose()
    assert result.text == "".join(tokens)


async def test_text_on_the_final_line_is_kept(emu: StrictOllama) -> None:
    """docs streaming.mdx: the last fragment may arrive on the `done: true` line."""
    emu.script(tokens=["That", "'s"], text_in_final="!")
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert result.text == "That's!"


async def test_done_reason_length_is_reported(emu: StrictOllama) -> None:
    emu.script(tokens=["a", "b"], done_reason="length", eval_count=2)
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest(
            "llama3.2", "x", options=GenerationOptions(num_predict=2)))
    finally:
        await engine.aclose()
    assert result.metrics.done_reason == "length"
    assert emu.bodies("/api/generate")[-1]["options"] == {"num_predict": 2}


async def test_request_body_is_what_ollama_accepts(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    options = GenerationOptions(temperature=0.2, num_predict=64, num_ctx=4096,
                                stop=("\n\n", "```"), seed=7)
    try:
        for keep_alive in ("5m", -1, 0, 300.5, "-1m", "1h30m"):
            await engine.generate(GenerateRequest("qwen2.5-coder:1.5b", "def f(", suffix="\n",
                                                  options=options, keep_alive=keep_alive))
    finally:
        await engine.aclose()
    bodies = emu.bodies("/api/generate")
    assert len(bodies) == 6
    assert bodies[0] == {"model": "qwen2.5-coder:1.5b", "prompt": "def f(", "stream": True,
                         "suffix": "\n", "options": {"temperature": 0.2, "num_predict": 64,
                                                     "num_ctx": 4096, "stop": ["\n\n", "```"],
                                                     "seed": 7},
                         "keep_alive": "5m", "think": False}


async def test_invalid_keep_alive_is_a_clear_invalid_request(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        with pytest.raises(InvalidRequest) as info:
            await engine.generate(GenerateRequest("llama3.2", "x", keep_alive="five minutes"))
    finally:
        await engine.aclose()
    assert 'time: invalid duration "five minutes"' in str(info.value)


async def test_empty_prompt_is_a_load_reply_not_a_generation(emu: StrictOllama) -> None:
    """Ollama answers an empty prompt (even with a suffix) with one `done_reason: load`
    object: no text, no metrics — the engine must return that, not fail."""
    engine = engine_for(emu)
    try:
        loaded = await engine.generate(GenerateRequest(CODER_FIM, "", suffix="\nreturn x"))
    finally:
        await engine.aclose()
    assert loaded.text == "" and loaded.metrics.done_reason == "load"
    assert loaded.metrics.tokens_generated is None and loaded.metrics.tokens_per_second is None


@pytest.mark.parametrize("keep_alive", [90.5, "1.5", "1h30m"])
async def test_configured_keep_alive_reaches_ollama_in_a_form_it_accepts(
    emu: StrictOllama, keep_alive: object
) -> None:
    """`keepAlive = 90.5` (TOML float) or "1.5" must not become the string "90.5", which
    Go's `time.ParseDuration` rejects ("missing unit") with a 400 on every request."""
    from aethel_lsp.config import ConfigSource, dict_layer, resolve

    layer = dict_layer(ConfigSource.USER_FILE, {"keepAlive": keep_alive})
    assert layer is not None
    resolved = resolve([layer])
    assert not resolved.issues, resolved.issues
    engine = engine_for(emu)
    try:
        await engine.generate(GenerateRequest(
            "llama3.2", "x", keep_alive=resolved.settings.keep_alive_value))
    finally:
        await engine.aclose()


async def test_thinking_model_without_think_streams_thinking_apart_from_text(
    emu: StrictOllama,
) -> None:
    """The server defaults think=true for thinking models when `think` is omitted."""
    emu.script(tokens=["x = 1"], thinking=["Let me ", "think."])
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("qwen3:8b", "x", think=None))
        chat = await engine.chat(ChatRequest(
            "qwen3:8b", (ChatMessage("user", "x"),), think=None))
    finally:
        await engine.aclose()
    assert "think" not in emu.bodies("/api/generate")[-1]
    assert result.text == "x = 1" and result.thinking == "Let me think."
    assert chat.text == "def add(a, b):\n    return a + b\n"
    assert chat.thinking == "The user wants an adder."


async def test_code_tasks_send_think_false_and_get_no_thinking(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("qwen3:8b", "x"))
    finally:
        await engine.aclose()
    assert emu.bodies("/api/generate")[-1]["think"] is False
    assert result.thinking == "" and "adder" not in result.text


async def test_cloud_model_lines_with_remote_fields_parse(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("gpt-oss:120b-cloud", "x", think=None))
    finally:
        await engine.aclose()
    assert result.text == "def add(a, b):\n    return a + b\n"
    assert result.metrics.tokens_generated == 8  # thinking tokens count as eval tokens


# -- errors -----------------------------------------------------------------------------


async def test_offline_is_never_model_not_found() -> None:
    port = free_port()
    engine = OllamaEngine(f"127.0.0.1:{port}", retry=FAST_RETRY)
    try:
        status = await engine.status()
        with pytest.raises(EngineOffline) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
        with pytest.raises(EngineOffline):
            await engine.show("llama3.2")
    finally:
        await engine.aclose()
    assert not status.available and status.state == "offline"
    for text in (str(info.value), status.error or ""):
        assert f"127.0.0.1:{port}" in text and "ollama serve" in text
        assert "not found" not in text and "not installed" not in text


async def test_generate_unknown_model_is_not_installed(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        with pytest.raises(ModelNotFound) as gen:
            await engine.generate(GenerateRequest("codellama:7b", "x"))
        with pytest.raises(ModelNotFound) as chat:
            await engine.chat(ChatRequest("codellama:7b", (ChatMessage("user", "x"),)))
    finally:
        await engine.aclose()
    for err in (gen.value, chat.value):
        assert "ollama pull codellama:7b" in str(err) and err.status == 404


async def test_suffix_on_model_without_insert_is_capability_missing(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        with pytest.raises(CapabilityMissing) as info:
            await engine.generate(GenerateRequest("llama3.2", "def f(", suffix="\n"))
    finally:
        await engine.aclose()
    assert info.value.capability == "insert" and info.value.model == "llama3.2"
    assert "registry.ollama.ai/library/llama3.2:latest does not support insert" in str(info.value)


async def test_embedding_model_cannot_generate(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        with pytest.raises(CapabilityMissing) as info:
            await engine.generate(GenerateRequest("all-minilm", "x"))
    finally:
        await engine.aclose()
    assert "embedding model" in str(info.value)


async def test_think_true_on_a_non_thinking_model(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        with pytest.raises(CapabilityMissing) as info:
            await engine.generate(GenerateRequest("llama3.2", "x", think=True))
    finally:
        await engine.aclose()
    assert info.value.capability == "thinking" and "think: false" in str(info.value)


async def test_midstream_error_line_is_a_stream_error_with_ollamas_text(
    emu: StrictOllama,
) -> None:
    emu.script(fault="midstream_error", fault_after=3, split="split",
               error_text="an error was encountered while running the model")
    engine = engine_for(emu)
    seen: list[str] = []
    try:
        with pytest.raises(StreamError) as info:
            async for chunk in engine.stream_generate(GenerateRequest("llama3.2", "x")):
                seen.append(chunk.text)
    finally:
        await engine.aclose()
    assert "an error was encountered while running the model" in str(info.value)
    assert "".join(seen) == "def add(a, b):"


async def test_an_error_as_the_first_line_of_a_200_stream(emu: StrictOllama) -> None:
    """Status 200, then `{"error"}` before any token (older servers, proxies, pull)."""
    emu.script(fault="midstream_error", fault_after=0, error_text="model runner crashed")
    engine = engine_for(emu)
    try:
        with pytest.raises(StreamError) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert "model runner crashed" in str(info.value)


@pytest.mark.parametrize(("fault", "expected"), [("malformed", "not JSON"),
                                                 ("truncate", "ended before"),
                                                 ("disconnect", "broke")])
async def test_broken_streams_are_malformed_responses(
    emu: StrictOllama, fault: str, expected: str
) -> None:
    emu.script(fault=fault)
    engine = engine_for(emu)
    try:
        with pytest.raises(MalformedResponse) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
        # and the engine keeps working on the next request
        emu.script()
        after = await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert expected in str(info.value) and emu.url in str(info.value)
    assert after.text == "def add(a, b):\n    return a + b\n"


async def test_busy_is_retried_then_succeeds(emu: StrictOllama) -> None:
    emu.script(busy_times=2)
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert result.text.startswith("def add")
    assert len(emu.bodies("/api/generate")) == 3


async def test_busy_beyond_the_retries_quotes_ollamas_text(emu: StrictOllama) -> None:
    emu.script(busy_times=5)
    engine = engine_for(emu)
    try:
        with pytest.raises(EngineBusy) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert BUSY_TEXT in str(info.value) and info.value.status == 503
    assert len(emu.bodies("/api/generate")) == 3


@pytest.mark.parametrize(("status", "text", "error"), [
    (500, "model runner has unexpectedly stopped, this may be due to resource limitations",
     ServerError),
    (429, "rate limit exceeded", EngineBusy),
    (400, "the prompt is longer than the context length currently available to the model",
     InvalidRequest),
])
async def test_errors_before_the_first_byte_use_the_real_status(
    emu: StrictOllama, status: int, text: str, error: type[Exception]
) -> None:
    for _ in range(3):
        emu.script(fault="error_first", error_status=status, error_text=text)
    engine = engine_for(emu)
    try:
        with pytest.raises(error) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert text in str(info.value)


async def test_request_canceled_499_is_not_reported_as_a_bad_request(emu: StrictOllama) -> None:
    emu.script(fault="error_first", error_status=499, error_text="request canceled")
    engine = engine_for(emu)
    try:
        with pytest.raises(Exception) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert "request canceled" in str(info.value)


async def test_a_number_json_cannot_carry_is_an_invalid_request(emu: StrictOllama) -> None:
    """`temperature = nan` used to escape as a bare ValueError from the JSON encoder."""
    engine = engine_for(emu)
    try:
        with pytest.raises(InvalidRequest) as info:
            await engine.generate(GenerateRequest(
                "llama3.2", "x", options=GenerationOptions(temperature=float("nan"))))
        with pytest.raises(InvalidRequest):
            await engine.generate(GenerateRequest("llama3.2", "x", keep_alive=float("inf")))
    finally:
        await engine.aclose()
    assert "NaN" in str(info.value) and emu.bodies("/api/generate") == []


# -- timeouts ---------------------------------------------------------------------------


# Budgets are far below the 20 s stall (so only the deadline can end the wait) yet roomy
# enough that a loaded machine still gets the request out and the tokens in before the
# budget that is *not* under test runs out.
@pytest.mark.parametrize(("fault", "phase", "first_token_s", "between_tokens_s"),
                         [("no_headers", "first_token", 1.0, 10.0),
                          ("stall_first", "first_token", 1.0, 10.0),
                          ("stall", "between_tokens", 10.0, 0.5)])
async def test_timeouts_per_phase_and_the_connection_is_closed(
    emu: StrictOllama, fault: str, phase: str, first_token_s: float, between_tokens_s: float
) -> None:
    emu.script(fault=fault, stall_s=20.0)
    engine = engine_for(emu, first_token_s=first_token_s, between_tokens_s=between_tokens_s)
    start = time.monotonic()
    try:
        with pytest.raises(EngineTimeout) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert info.value.phase == phase
    assert time.monotonic() - start < 8.0
    if fault != "no_headers":
        record = emu.wait_closed(timeout=10.0)
        assert record.client_closed and not record.finished


# -- cancellation -----------------------------------------------------------------------


async def test_closing_a_stream_closes_the_connection_server_side(emu: StrictOllama) -> None:
    # A model that keeps generating; after 40 tokens it stalls (30 s) until we hang up, so
    # a slow client on a loaded machine cannot see the stream end on its own first.
    emu.script(tokens=[f"t{i} " for i in range(200)], token_delay_s=0.02, fault="stall",
               fault_after=40, stall_s=30.0)
    engine = engine_for(emu)
    try:
        stream = engine.stream_generate(GenerateRequest("llama3.2", "x"))
        got = [await anext(stream) for _ in range(3)]
        closed_at = time.monotonic()
        await stream.aclose()  # type: ignore[attr-defined]
        record = emu.wait_closed(timeout=10.0)
    finally:
        await engine.aclose()
    assert [c.text for c in got] == ["t0 ", "t1 ", "t2 "]
    assert record.client_closed and not record.finished
    assert record.closed_at is not None and record.closed_at - closed_at < 5.0
    assert record.lines_written <= 40


async def test_cancelling_the_task_closes_the_connection_server_side(emu: StrictOllama) -> None:
    emu.script(tokens=[f"t{i} " for i in range(200)], token_delay_s=0.02, fault="stall",
               fault_after=40, stall_s=30.0)
    engine = engine_for(emu)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.stream_generate(GenerateRequest("llama3.2", "x")):
            first.set()

    try:
        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        record = emu.wait_closed(timeout=10.0)
    finally:
        await engine.aclose()
    assert record.client_closed and not record.finished


# -- pull -------------------------------------------------------------------------------


async def test_pull_reports_progress_and_success(emu: StrictOllama) -> None:
    engine = engine_for(emu)
    try:
        progress = [p async for p in engine.pull("tiny:1b")]
        models = [m.name for m in await engine.list_models()]
    finally:
        await engine.aclose()
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    downloading = [p for p in progress if p.total]
    assert [p.percentage for p in downloading] == [0, 25, 75, 100]
    assert downloading[0].completed is None  # omitempty: absent while 0
    assert "tiny:1b" in models
    assert emu.bodies("/api/pull")[-1] == {"model": "tiny:1b", "stream": True}


async def test_closing_a_pull_stops_the_download_server_side(emu: StrictOllama) -> None:
    emu.pull_hold_after = 1  # the download stalls after its first line until we hang up
    engine = engine_for(emu)
    try:
        pull = engine.pull("big:70b")
        first = await anext(pull)
        await pull.aclose()  # type: ignore[attr-defined]
        record = emu.wait_closed(timeout=10.0)
        models = [m.name for m in await engine.list_models()]
    finally:
        await engine.aclose()
    assert first.status == "pulling manifest"
    assert record.client_closed and not record.finished
    assert "big:70b" not in models


async def test_pull_of_an_unknown_model_is_an_error_line_after_the_manifest(
    emu: StrictOllama,
) -> None:
    engine = engine_for(emu)
    seen: list[str] = []
    try:
        with pytest.raises(ModelNotFound) as info:
            async for p in engine.pull("nonexistent-model"):
                seen.append(p.status)
    finally:
        await engine.aclose()
    assert seen == ["pulling manifest"]
    assert "file does not exist" in str(info.value)


# -- hosts and the factory --------------------------------------------------------------


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", ":{port}", "http://127.0.0.1:{port}/",
                                  "localhost:{port}"])
async def test_host_forms_reach_the_emulator(emu: StrictOllama, form: str) -> None:
    engine = create_engine(EngineConfig(kind="ollama", host=form.format(port=emu.port)))
    try:
        assert (await engine.status()).available
    finally:
        await engine.aclose()


async def test_auto_engine_prefers_a_running_ollama(emu: StrictOllama) -> None:
    engine = create_engine(EngineConfig(kind="auto", host=emu.url))
    try:
        status = await engine.status()
        result = await engine.generate(GenerateRequest("qwen2.5-coder:1.5b", "x"))
    finally:
        await engine.aclose()
    assert status.available and status.engine == "ollama"
    assert result.metrics.tokens_per_second == pytest.approx(6 / 0.25)


def test_emulator_answers_head_405_and_404_like_gin(emu: StrictOllama) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        conn.request("HEAD", "/api/tags")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        conn.request("GET", "/api/generate")
        wrong = conn.getresponse()
        assert (wrong.status, wrong.read()) == (405, b"405 method not allowed")
        conn.request("GET", "/api/nothing")
        missing = conn.getresponse()
        assert (missing.status, missing.read()) == (404, b"404 page not found")
        conn.request("POST", "/api/generate", body=b"{\"model\": 1}",
                     headers={"Content-Type": "application/json"})
        bad = conn.getresponse()
        assert bad.status == 400 and "error" in json.loads(bad.read())
    finally:
        conn.close()


# -- cloud models ---------------------------------------------------------------------


async def test_cloud_models_are_marked_and_never_auto_picked_over_local_ones(
    emu: StrictOllama,
) -> None:
    from aethel_lsp.engine.recommend import recommend_installed

    engine = engine_for(emu)
    try:
        listed = {m.name: m for m in await engine.list_models()}
        shown = await engine.show("gpt-oss:120b-cloud")
        picks = {r.use_case: r for r in await recommend_installed(engine)}
    finally:
        await engine.aclose()
    assert listed["gpt-oss:120b-cloud"].remote_host == "https://ollama.com:443"
    assert shown.is_remote and not listed["llama3.2:latest"].is_remote
    assert all(r.model != "gpt-oss:120b-cloud" for r in picks.values()), picks
    # the largest local model that answers without thinking (qwen3:8b thinks)
    assert picks["powerful"].model == "mystery:7b"


async def test_a_cloud_model_alone_is_picked_with_a_warning() -> None:
    from aethel_lsp.engine.recommend import recommend_installed
    from tests.fakes.ollama_strict import default_models

    cloud_only = [m for m in default_models() if m.remote_host or "embedding" in m.capabilities]
    with StrictOllama(cloud_only) as emu:
        engine = engine_for(emu)
        try:
            picks = {r.use_case: r for r in await recommend_installed(engine)}
        finally:
            await engine.aclose()
    assert picks["coding"].model == "gpt-oss:120b-cloud"
    assert "leave this machine" in picks["coding"].reason


# -- the OpenAI-compatible backend against Ollama's /v1 ---------------------------------


def openai_for(emu: StrictOllama) -> OpenAIEngine:
    return OpenAIEngine(f"{emu.url}/v1", retry=FAST_RETRY)


@pytest.mark.parametrize("split", ["line", "split", "packed", "bytewise"])
async def test_openai_backend_streams_chat_exactly_with_ollamas_usage(
    emu: StrictOllama, split: str
) -> None:
    tokens = ["Hello", " wörld", " 🙂", "\u0085", "!"]
    emu.script(tokens=tokens, split=split, eval_count=5, prompt_eval_count=11)
    engine = openai_for(emu)
    try:
        result = await engine.generate(GenerateRequest("llama3.2", "hi", system="be brief"))
    finally:
        await engine.aclose()
    assert result.text == "".join(tokens)
    assert (result.metrics.prompt_tokens, result.metrics.tokens_generated) == (11, 5)
    assert result.metrics.done_reason == "stop"
    body = emu.bodies("/v1/chat/completions")[-1]
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["stream_options"] == {"include_usage": True}


async def test_openai_backend_fim_uses_completions_with_zero_usage_frames(
    emu: StrictOllama,
) -> None:
    """Ollama's /v1/completions repeats `usage` with zeros on every frame; only the last
    usage-only frame has the counts."""
    emu.script(tokens=["a + ", "b"], eval_count=2, prompt_eval_count=9, done_reason="length")
    engine = openai_for(emu)
    try:
        result = await engine.generate(GenerateRequest(CODER_FIM, "def f(a, b): return ",
                                                       suffix="\n"))
    finally:
        await engine.aclose()
    assert result.text == "a + b"
    assert (result.metrics.prompt_tokens, result.metrics.tokens_generated) == (9, 2)
    assert result.metrics.done_reason == "length"


async def test_openai_backend_reasoning_does_not_leak_into_text(emu: StrictOllama) -> None:
    emu.script(tokens=["x = 1"], thinking=["hidden ", "reasoning"])
    engine = openai_for(emu)
    try:
        result = await engine.generate(GenerateRequest("qwen3:8b", "x"))
    finally:
        await engine.aclose()
    assert result.text == "x = 1"


async def test_openai_backend_errors(emu: StrictOllama) -> None:
    engine = openai_for(emu)
    try:
        listed = [m.name for m in await engine.list_models()]
        with pytest.raises(ModelNotFound):
            await engine.generate(GenerateRequest("nope:1b", "x"))
        with pytest.raises(CapabilityMissing):
            await engine.generate(GenerateRequest("llama3.2", "x", suffix="y"))
        emu.script(fault="truncate", fault_after=2)
        with pytest.raises(MalformedResponse):
            await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert "gpt-oss:120b-cloud" in listed and CODER_FIM in listed


# -- differential: our own fake answers like the independent emulator ------------------

_SAME_ANSWER = [
    ("GET", "/api/generate", None), ("GET", "/nope", None), ("POST", "/api/generate", b""),
    ("POST", "/api/generate", {"model": "", "prompt": "x"}),
    ("POST", "/api/chat", {"model": "", "messages": []}),
    ("POST", "/api/generate", {"model": "nope", "prompt": "x"}),
    ("POST", "/api/show", {"model": "nope"}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "suffix": "y"}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "think": True}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "think": "foo"}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x",
                               "options": {"temperature": "hot"}}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "options": {"stop": "x"}}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "keep_alive": "bogus"}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "keep_alive": "1.5"}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "keep_alive": True}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "x", "raw": True, "system": "s"}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": ""}),
    ("POST", "/api/generate", {"model": "llama3.2", "prompt": "", "keep_alive": 0}),
    ("POST", "/api/pull", {"model": "nonexistent-model-zzz", "stream": False}),
    ("DELETE", "/api/delete", {"model": "nope"}),
    ("POST", "/api/embed", {"model": "nope", "input": "x"}),
    ("POST", "/v1/chat/completions", {"model": "nope",
                                      "messages": [{"role": "user", "content": "x"}]}),
]


def _answer(client: object, method: str, path: str, body: object) -> tuple[int, str, object]:
    import httpx

    assert isinstance(client, httpx.Client)
    kwargs: dict[str, object] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    try:
        data = response.json()
        shown: object = data.get("error") if "error" in data else sorted(data)
    except ValueError:
        shown = response.text
    return response.status_code, response.headers.get("content-type", ""), shown


def test_our_fake_answers_like_the_independent_emulator(emu: StrictOllama) -> None:
    import httpx

    from tests.fakes.ollama import FakeOllama

    with FakeOllama() as fake, httpx.Client(base_url=fake.url) as ours, \
            httpx.Client(base_url=emu.url) as strict:
        for method, path, body in _SAME_ANSWER:
            assert _answer(ours, method, path, body) == _answer(strict, method, path, body), (
                method, path, body)


async def test_a_line_without_end_is_refused_not_buffered_forever(emu: StrictOllama) -> None:
    """Go's client caps a line at 8 MiB; so do we (a hostile or broken server cannot make
    us buffer without bound)."""
    emu.script(tokens=["x" * (9 * 1024 * 1024)], split="line")
    engine = engine_for(emu)
    try:
        with pytest.raises(MalformedResponse) as info:
            await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert "MiB" in str(info.value)


async def test_a_long_but_legal_line_is_fine(emu: StrictOllama) -> None:
    token = "é" * 300_000 + "🙂"
    emu.script(tokens=[token], split="split")
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("llama3.2", "x"))
    finally:
        await engine.aclose()
    assert result.text == token


# -- the synchronous facade (the earlier engine's names) --------------------------------


def test_facade_against_the_emulator(emu: StrictOllama) -> None:
    from aethel_lsp.engine.facade import LocalEngine, LocalInferenceRequest

    emu.script(tokens=["a", "b", "c"], eval_count=3, eval_duration=1_500_000_000)
    with LocalEngine(emu.url, record_usage=False) as local:
        assert local.check_ollama_available() is True
        models = {m.name: m for m in local.list_models()}
        answer = local.generate(LocalInferenceRequest(prompt="x", model="llama3.2"))
        recommended = local.get_recommended_models()
        with pytest.raises(ModelNotFound):
            local.get_model_info("nope")
    assert models["qwen2.5-coder:1.5b"].parameters == 1543714304
    assert answer.text == "abc" and answer.tokens_per_second == pytest.approx(2.0)
    assert "gpt-oss:120b-cloud" not in recommended.values()


def test_facade_breaking_out_of_a_stream_closes_the_connection(emu: StrictOllama) -> None:
    from aethel_lsp.engine.facade import LocalEngine, LocalInferenceRequest

    emu.script(tokens=[f"t{i} " for i in range(500)], token_delay_s=0.02, fault="stall",
               fault_after=40, stall_s=30.0)
    with LocalEngine(emu.url, record_usage=False) as local:
        got = []
        for text in local.stream_generate(LocalInferenceRequest(prompt="x", model="llama3.2")):
            got.append(text)
            if len(got) == 3:
                break
        record = emu.wait_closed(timeout=10.0)
    assert got == ["t0 ", "t1 ", "t2 "]
    assert record.client_closed and record.lines_written < 100


def test_facade_offline_is_false_not_an_exception() -> None:
    from aethel_lsp.engine.facade import LocalEngine

    with LocalEngine(f"127.0.0.1:{free_port()}", record_usage=False) as local:
        assert local.check_ollama_available() is False
        stats = local.get_statistics()
    assert stats["ollama_available"] is False and stats["models_installed"] == 0


async def test_measured_recommendations_never_probe_a_cloud_model(emu: StrictOllama) -> None:
    from aethel_lsp.engine.measure import measure_installed

    engine = engine_for(emu)
    try:
        _models, _probes, recommendations = await measure_installed(engine, timeout_s=10)
    finally:
        await engine.aclose()
    probed = [b["model"] for b in emu.bodies("/api/generate")]
    assert "qwen2.5-coder:1.5b" in probed
    assert "gpt-oss:120b-cloud" not in probed, probed
    assert all(r.to_json().get("model") != "gpt-oss:120b-cloud" for r in recommendations)


@pytest.mark.parametrize("form", ["http://[::1]:{port}", "[::1]:{port}"])
async def test_ipv6_loopback_hosts(form: str) -> None:
    with StrictOllama(bind="::1") as emu:
        engine = create_engine(EngineConfig(kind="ollama", host=form.format(port=emu.port)))
        try:
            status = await engine.status()
            result = await engine.generate(GenerateRequest("llama3.2", "x"))
        finally:
            await engine.aclose()
    assert status.available, status.error
    assert result.text.startswith("def add")


@pytest.mark.parametrize("host", ["::1:11434", "http://[zz::1]:80", "[::1]x", "http://a b:80",
                                  "http://user:pw@host:80", "http://host:99999"])
def test_invalid_hosts_are_a_clear_value_error_not_an_httpx_crash(host: str) -> None:
    with pytest.raises(ValueError) as info:
        OllamaEngine(host)
    assert "host" in str(info.value).lower()


async def test_lone_surrogates_in_a_prompt_are_sent_escaped(emu: StrictOllama) -> None:
    """A client's JSON may carry "\\ud83d" alone (or stdin undecodable bytes): JSON can
    still carry it escaped, and Ollama's decoder replaces it with U+FFFD."""
    engine = engine_for(emu)
    try:
        result = await engine.generate(GenerateRequest("llama3.2", "a \ud83d b \udcff"))
    finally:
        await engine.aclose()
    assert result.text.startswith("def add")
    assert b"\\ud83d" in emu.requests[-1].raw
