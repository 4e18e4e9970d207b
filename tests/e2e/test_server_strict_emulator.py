"""The real server process against the independent strict Ollama emulator (happy paths).

What our own fake might let slip: lines split across chunks and TCP writes (streamed
progress must still concatenate to the exact text), Ollama's own metrics in `throughput`,
cloud and parameter-less models in `listModels`, a pull's progress, a mid-stream error
line, and an unknown model named in Ollama's 404.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama_strict import StrictModel, StrictOllama, default_models

CODER = "qwen2.5-coder:1.5b"
PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def emu() -> Iterator[StrictOllama]:
    with StrictOllama() as server:
        server.default_script.split = "packed"
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory, emu: StrictOllama
              ) -> AsyncIterator[Harness]:
    harness = await start_server(
        tmp_path_factory.mktemp("strict"), None,
        editor_settings={"engine": "ollama", "model": CODER},
        extra_env={"OLLAMA_HOST": emu.url},
    )
    yield harness
    await harness.stop()


def reports_of(h: Harness, title: str) -> list[list[object]]:
    return h.progress_for_title(title)


async def test_model_status_and_list(lsp: Harness, emu: StrictOllama) -> None:
    status = await lsp.command(protocol.CMD_MODEL_STATUS)
    assert status["available"] is True and status["version"] == "0.33.0"
    assert status["host"] == emu.url and status["activeModel"] == CODER
    models = {m["name"]: m for m in await lsp.command(protocol.CMD_LIST_MODELS)}
    assert models[CODER]["parameters"] == 1543714304
    assert models[CODER]["contextLength"] == 32768
    assert models["mystery:7b"]["parameters"] is None
    assert models["gpt-oss:120b-cloud"]["contextLength"] == 131072


async def test_model_status_models_are_the_same_objects_as_list_models(lsp: Harness) -> None:
    status = await lsp.command(protocol.CMD_MODEL_STATUS)
    listed = {m["name"]: m for m in await lsp.command(protocol.CMD_LIST_MODELS)}
    for model in status["models"]:
        assert model == listed[model["name"]], model


async def test_streamed_explain_reassembles_exactly_and_reports_ollamas_metrics(
    lsp: Harness, emu: StrictOllama
) -> None:
    tokens = ["Adds ", "two ", "numbers", " — é🙂", "\u0085", " <b>&</b>", "\n"]
    emu.script(tokens=tokens, token_delay_s=0.01, eval_count=259,
               eval_duration=4_232_710_000, prompt_eval_count=26)
    uri = lsp.open("explain.py", PY)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["text"] == "".join(tokens)
    metrics = result["metrics"]
    assert metrics["tokensPerSecond"] == round(259 / 4_232_710_000 * 1e9, 2)
    assert (metrics["promptTokens"], metrics["tokensGenerated"]) == (26, 259)
    [reports] = reports_of(lsp, "Explaining selection")[-1:]
    text = "".join(r.message or "" for r in reports if isinstance(r, types.WorkDoneProgressReport))
    assert text == "".join(tokens)
    throughput = await lsp.command(protocol.CMD_THROUGHPUT)
    assert throughput["last"]["tokensPerSecond"] == metrics["tokensPerSecond"]
    rates = [s.get("tokensPerSecond") for s in lsp.statuses if s.get("tokensPerSecond")]
    assert rates and rates[-1] == pytest.approx(metrics["tokensPerSecond"], abs=0.01)
    body = emu.bodies("/api/chat")[-1] if emu.bodies("/api/chat") else emu.bodies(
        "/api/generate")[-1]
    assert body["think"] is False and body["model"] == CODER


async def test_midstream_error_line_fails_the_action_with_ollamas_text(
    lsp: Harness, emu: StrictOllama
) -> None:
    emu.script(fault="midstream_error", error_text="an error was encountered while running")
    uri = lsp.open("err.py", PY)
    with pytest.raises(JsonRpcException) as info:
        await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert "an error was encountered while running" in str(info.value)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["text"]


async def test_pull_reports_percentages_then_success(lsp: Harness) -> None:
    result = await lsp.command(protocol.CMD_PULL_MODEL, {"model": "tiny:1b"})
    assert result == {"model": "tiny:1b", "status": "success"}
    models = [m["name"] for m in await lsp.command(protocol.CMD_LIST_MODELS)]
    assert "tiny:1b" in models


async def test_pull_of_an_unknown_model_is_a_clear_error(lsp: Harness) -> None:
    with pytest.raises(JsonRpcException) as info:
        await lsp.command(protocol.CMD_PULL_MODEL, {"model": "nonexistent-model"})
    assert "nonexistent-model" in str(info.value)
    await lsp.command(protocol.CMD_MODEL_STATUS)


async def test_selecting_an_unknown_model_is_refused(lsp: Harness) -> None:
    with pytest.raises(JsonRpcException) as info:
        await lsp.command(protocol.CMD_SELECT_MODEL, {"model": "codellama:70b"})
    assert "codellama:70b" in str(info.value)
    chosen = await lsp.command(protocol.CMD_SELECT_MODEL, {"model": "llama3.2"})
    assert chosen["activeModel"] in ("llama3.2", "llama3.2:latest")
    await lsp.command(protocol.CMD_SELECT_MODEL, {"model": CODER})


async def test_no_configured_model_never_silently_picks_a_cloud_model(tmp_path: Path) -> None:
    """Real Ollama lists cloud models (e.g. qwen3-coder:480b-cloud) among local ones, newest
    first; with no `model` setting the server must pick a local model, not send the code
    to ollama.com."""
    cloud = StrictModel("qwen3-coder:480b-cloud", "qwen3moe", "qwen3moe", "480.2B", "FP8",
                        ("completion", "tools"), None, 262144, 384,
                        remote_host="https://ollama.com:443", remote_model="qwen3-coder:480b")
    with StrictOllama([cloud, *default_models()]) as emu:
        h = await start_server(tmp_path, None, extra_env={"OLLAMA_HOST": emu.url},
                               editor_settings={"engine": "ollama"})
        try:
            uri = h.open("pick.py", PY)
            await h.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
        finally:
            await h.stop()
    used = [r.body["model"] for r in emu.requests
            if r.path in ("/api/chat", "/api/generate") and r.body]
    assert used and "cloud" not in used[-1], used


@pytest.mark.parametrize("route", ["cancelRequest", "progressCancel"])
async def test_cancel_closes_the_stream_seen_from_the_emulator(
    lsp: Harness, emu: StrictOllama, route: str
) -> None:
    emu.script(tokens=[f"w{i} " for i in range(2000)], token_delay_s=0.05)
    uri = lsp.open(f"cancel-{route}.py", PY)
    started = len(emu.streams)
    msg_id = f"strict-{route}"
    future = asyncio.ensure_future(lsp.client.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command=protocol.CMD_EXPLAIN_SELECTION,
                                   arguments=[{"uri": uri, "range": SEL}]),
        msg_id=msg_id))
    await lsp.wait_for(lambda: len(emu.streams) > started and emu.streams[-1].lines_written >= 3)
    tokens = await lsp.wait_for(lambda: [
        t for t, r in lsp.client.progress_reports.items()
        if r and not isinstance(r[-1], types.WorkDoneProgressEnd)])
    cancelled_at = time.monotonic()
    if route == "cancelRequest":
        lsp.client.cancel_request(types.CancelParams(id=msg_id))
    else:
        lsp.client.window_work_done_progress_cancel(
            types.WorkDoneProgressCancelParams(token=tokens[-1]))
    with pytest.raises((JsonRpcException, asyncio.CancelledError)):
        await asyncio.wait_for(future, 10)
    record = emu.streams[started]
    assert record.closed_event.wait(2.0)
    assert record.client_closed and not record.finished
    assert record.closed_at is not None
    elapsed_ms = (record.closed_at - cancelled_at) * 1000
    print(f"{route}: emulator saw the connection close {elapsed_ms:.1f} ms after the cancel")
    assert elapsed_ms < 100
    assert record.lines_written < 100  # the emulator stopped "generating"
    await lsp.command(protocol.CMD_MODEL_STATUS)


# The budget under test is far below the 20 s stall; the other one is roomy, so that a
# loaded machine still gets the first token in (stall) and the recovery request through.
@pytest.mark.parametrize(("fault", "words", "first_token_ms", "between_tokens_ms"),
                         [("stall_first", "first token", 1500, 5000),
                          ("stall", "stalled", 5000, 1000)])
async def test_a_stalled_model_times_out_progress_ends_and_the_server_recovers(
    tmp_path: Path, fault: str, words: str, first_token_ms: int, between_tokens_ms: int
) -> None:
    with StrictOllama() as emu:
        h = await start_server(tmp_path, None, extra_env={"OLLAMA_HOST": emu.url},
                               editor_settings={"engine": "ollama", "model": CODER, "timeouts": {
                                   "firstTokenMs": first_token_ms,
                                   "betweenTokensMs": between_tokens_ms}})
        try:
            emu.script(fault=fault, stall_s=20.0)
            uri = h.open("stall.py", PY)
            with pytest.raises(JsonRpcException) as info:
                await h.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
            assert words in str(info.value), str(info.value)
            record = emu.streams[-1]
            assert record.closed_event.wait(10.0) and record.client_closed
            [reports] = h.progress_for_title("Explaining selection")
            assert isinstance(reports[-1], types.WorkDoneProgressEnd)
            result = await h.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
            assert result["text"]
        finally:
            await h.stop()


async def test_openai_engine_on_ollamas_v1(tmp_path: Path) -> None:
    """engine = "openai" pointed at Ollama's own /v1: the same actions work over SSE."""
    with StrictOllama() as emu:
        emu.default_script.split = "split"
        h = await start_server(tmp_path, None, editor_settings={
            "engine": "openai", "model": CODER, "openai": {"baseUrl": f"{emu.url}/v1"}})
        try:
            emu.script(tokens=["Adds", " two", " numbers 🙂"], eval_count=3, prompt_eval_count=7)
            uri = h.open("oa.py", PY)
            result = await h.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
            status = await h.command(protocol.CMD_MODEL_STATUS)
        finally:
            await h.stop()
    assert result["text"] == "Adds two numbers 🙂"
    assert (result["metrics"]["promptTokens"], result["metrics"]["tokensGenerated"]) == (7, 3)
    assert status["available"] is True and status["engine"] == "openai"
    assert emu.bodies("/v1/chat/completions")[-1]["stream_options"] == {"include_usage": True}


async def test_cancelling_a_pull_stops_the_download(lsp: Harness, emu: StrictOllama) -> None:
    emu.pull_hold_after = 1  # stalls after "pulling manifest" until the server hangs up
    try:
        started = len(emu.streams)
        future = asyncio.ensure_future(lsp.client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(command=protocol.CMD_PULL_MODEL,
                                       arguments=[{"model": "huge:405b"}]),
            msg_id="strict-pull"))
        await lsp.wait_for(lambda: len(emu.streams) > started
                           and emu.streams[-1].lines_written >= 1)
        lsp.client.cancel_request(types.CancelParams(id="strict-pull"))
        with pytest.raises((JsonRpcException, asyncio.CancelledError)):
            await asyncio.wait_for(future, 10)
        record = emu.streams[started]
        assert record.closed_event.wait(10.0) and record.client_closed and not record.finished
    finally:
        emu.pull_hold_after = None
    models = [m["name"] for m in await lsp.command(protocol.CMD_LIST_MODELS)]
    assert "huge:405b" not in models
