"""MeteredEngine records exactly one outcome per generation: ok, error or cancelled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aethel_lsp.engine import (
    ChatRequest,
    EngineError,
    EngineTimeouts,
    GenerateRequest,
    MeteredEngine,
    ModelNotFound,
    OllamaEngine,
    RetryPolicy,
    UsageStats,
)
from tests.unit.engine_support import (
    Script,
    fixture_json,
    fixture_reply,
    generate_lines,
    json_reply,
    stream_reply,
)

MODEL = "qwen2.5-coder:1.5b"


def metered(script: Script, tmp_path: Path) -> MeteredEngine:
    inner = OllamaEngine("http://127.0.0.1:11434", transport=script.transport(),
                         timeouts=EngineTimeouts(), retry=RetryPolicy(backoff_s=0.0))
    return MeteredEngine(inner, UsageStats(tmp_path / "u.sqlite3"))


async def test_ok_records_metrics_and_last(tmp_path: Path) -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b"], eval_count=8)))
    engine = metered(script, tmp_path)
    result = await engine.generate(GenerateRequest(MODEL, "p"))
    assert engine.last_metrics == result.metrics
    usage = engine.stats.usage(MODEL) if engine.stats else None
    assert usage is not None
    assert (usage.requests, usage.tokens_generated, usage.prompt_tokens) == (1, 8, 12)
    assert usage.tokens_per_second_mean == pytest.approx(4.0)
    assert engine.kind == "ollama" and engine.host == "http://127.0.0.1:11434"


async def test_error_is_recorded(tmp_path: Path) -> None:
    script = Script().on("/api/generate", fixture_reply(
        500, "derived_from_code/invalid_option_type.500.json"))
    engine = metered(script, tmp_path)
    with pytest.raises(EngineError):
        await engine.generate(GenerateRequest(MODEL, "p"))
    assert engine.stats is not None
    usage = engine.stats.usage(MODEL)
    assert (usage.requests, usage.errors, usage.cancelled) == (1, 1, 0)


async def test_a_missing_model_is_not_a_row(tmp_path: Path) -> None:
    """A typo (`-m nosuch`) would otherwise stay in the statistics forever."""
    script = Script().on("/api/generate", fixture_reply(
        404, "derived_from_code/generate_model_not_found.404.json"))
    engine = metered(script, tmp_path)
    with pytest.raises(ModelNotFound):
        await engine.generate(GenerateRequest(MODEL, "p"))
    assert engine.stats is not None
    assert engine.stats.usage(MODEL).requests == 0


async def test_early_close_is_cancelled_and_closes_http(tmp_path: Path) -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b", "c"])))
    engine = metered(script, tmp_path)
    stream = engine.stream_generate(GenerateRequest(MODEL, "p"))
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert script.streams[0].closed
    assert engine.stats is not None
    assert engine.stats.usage(MODEL).cancelled == 1


async def test_task_cancel_is_cancelled_and_closes_http(tmp_path: Path) -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a", "b"]),
                                                       stall_after=1))
    engine = metered(script, tmp_path)
    first = asyncio.Event()

    async def consume() -> None:
        async for _chunk in engine.stream_generate(GenerateRequest(MODEL, "p")):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.streams[0].closed
    assert engine.stats is not None
    usage = engine.stats.usage(MODEL)
    assert (usage.requests, usage.cancelled, usage.errors) == (1, 1, 0)


async def test_without_stats_still_keeps_last_metrics(tmp_path: Path) -> None:
    script = Script().on("/api/generate", stream_reply(generate_lines(["a"])))
    inner = OllamaEngine(transport=script.transport())
    engine = MeteredEngine(inner, None)
    await engine.generate(GenerateRequest(MODEL, "p"))
    assert engine.last_metrics is not None and engine.last_metrics.tokens_generated == 4


@pytest.mark.parametrize("reason", ["load", "unload"])
async def test_a_load_reply_is_not_a_generation(tmp_path: Path, reason: str) -> None:
    """An empty prompt makes Ollama load (or unload) the model and generate nothing
    (REFERENCE §1.5): not counted in the statistics, not the last metrics (bugs.md #5)."""
    reply = {"model": MODEL, "created_at": "2024-09-12T21:17:29.110811Z", "response": "",
             "done": True, "done_reason": reason}
    script = Script().on("/api/generate", json_reply(200, reply))
    engine = metered(script, tmp_path)
    result = await engine.generate(GenerateRequest(MODEL, ""))
    assert result.text == "" and result.metrics.done_reason == reason
    assert engine.stats is not None
    assert engine.stats.models() == {}
    assert engine.last_metrics is None


async def test_a_chat_load_reply_is_not_a_generation(tmp_path: Path) -> None:
    loaded = fixture_json("native/chat/11_load.response.json")  # sent as one compact line
    script = Script().on("/api/chat", json_reply(200, loaded))
    engine = metered(script, tmp_path)
    result = await engine.chat(ChatRequest(MODEL, ()))
    assert result.metrics.done_reason == "load"
    assert engine.stats is not None and engine.stats.models() == {}
    # ... while a real generation right after is counted as usual
    script.on("/api/generate", stream_reply(generate_lines(["a"])))
    await engine.generate(GenerateRequest(MODEL, "p"))
    assert engine.stats.usage(MODEL).requests == 1
