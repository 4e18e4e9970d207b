"""MeteredEngine records exactly one outcome per generation: ok, error or cancelled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aethel_lsp.engine import (
    EngineTimeouts,
    GenerateRequest,
    MeteredEngine,
    ModelNotFound,
    OllamaEngine,
    RetryPolicy,
    UsageStats,
)
from tests.unit.engine_support import Script, fixture_reply, generate_lines, stream_reply

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
        404, "derived_from_code/generate_model_not_found.404.json"))
    engine = metered(script, tmp_path)
    with pytest.raises(ModelNotFound):
        await engine.generate(GenerateRequest(MODEL, "p"))
    assert engine.stats is not None
    usage = engine.stats.usage(MODEL)
    assert (usage.requests, usage.errors, usage.cancelled) == (1, 1, 0)


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
