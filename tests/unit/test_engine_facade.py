"""The synchronous LocalEngine facade over the async core (same HTTP, same errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aethel_lsp.engine import (
    LocalEngine,
    LocalInferenceRequest,
    ModelNotFound,
    PullProgress,
    UsageStats,
)
from tests.unit.engine_support import (
    Script,
    fixture_reply,
    generate_lines,
    ndjson_lines,
    refuse_connection,
    stream_reply,
)

MODEL = "qwen2.5-coder:1.5b"


@pytest.fixture
def script() -> Script:
    return (Script()
            .on("/api/version", fixture_reply(200, "native/version/response.json"))
            .on("/api/tags", fixture_reply(200, "native/tags/response.json"))
            .on("/api/ps", fixture_reply(200, "native/ps/response.json"))
            .on("/api/show", fixture_reply(200, "native/show/response.normalized.json"))
            .on("/api/generate", stream_reply(generate_lines(["def", " f"], eval_count=2,
                                                             eval_duration=500_000_000)))
            .on("/api/pull", stream_reply(ndjson_lines("native/pull/response.ndjson"))))


@pytest.fixture
def engine(script: Script, tmp_path: Path) -> Iterator[LocalEngine]:
    with LocalEngine("127.0.0.1:11434", transport=script.transport(),
                     stats=UsageStats(tmp_path / "u.sqlite3")) as local:
        yield local


def test_available_and_models(engine: LocalEngine) -> None:
    assert engine.check_ollama_available() is True
    models = engine.list_models()
    assert [m.name for m in models] == ["deepseek-r1:latest", "llama3.2:latest"]
    assert models[0].parameters == 8030261248  # exact, from /api/show
    assert models[0].size_gb == pytest.approx(4683075271 / 1024**3)
    assert engine.get_model_info("llava").context_length == 8192


def test_generate_is_exact(engine: LocalEngine, script: Script) -> None:
    response = engine.generate(LocalInferenceRequest("write f", MODEL, temperature=0.2,
                                                     max_tokens=64))
    assert script.bodies("/api/generate") == [{
        "model": MODEL, "prompt": "write f", "stream": True, "think": False,
        "options": {"temperature": 0.2, "num_predict": 64}}]
    assert response.text == "def f"
    assert response.tokens_generated == 2 and response.tokens_per_second == pytest.approx(4.0)
    assert response.to_json()["tokensGenerated"] == 2
    assert engine.get_statistics()["usage"][MODEL]["requests"] == 1


def test_stream_generate_and_early_close(engine: LocalEngine, script: Script) -> None:
    assert list(engine.stream_generate(LocalInferenceRequest("p", MODEL))) == ["def", " f"]
    assert engine.last_metrics is not None and engine.last_metrics.tokens_generated == 2
    tokens = engine.stream_generate(LocalInferenceRequest("p", MODEL))
    assert next(tokens) == "def"
    tokens.close()  # type: ignore[attr-defined]
    assert script.streams[-1].closed
    usage = engine.get_statistics()["usage"][MODEL]
    assert (usage["requests"], usage["cancelled"]) == (2, 1)


def test_pull_model_reports_progress(engine: LocalEngine) -> None:
    seen: list[PullProgress] = []
    last = engine.pull_model("llama3.2", on_progress=seen.append)
    assert last.status == "success" and len(seen) == 6


def test_recommended_models_and_statistics(engine: LocalEngine) -> None:
    picks = engine.get_recommended_models()
    assert set(picks) == {"coding", "general", "fast", "powerful", "code_large"}
    stats = engine.get_statistics()
    assert stats["ollama_available"] is True and stats["models_installed"] == 2


def test_offline_returns_false_and_defaults(tmp_path: Path) -> None:
    script = Script()
    for path in ("/api/version", "/api/tags", "/api/generate", "/api/show"):
        script.on(path, refuse_connection)
    with LocalEngine(":9", transport=script.transport(), record_usage=False) as engine:
        assert engine.check_ollama_available() is False
        assert engine.get_recommended_models()["coding"] == "qwen2.5-coder:1.5b"
        assert engine.get_statistics()["ollama_available"] is False


def test_missing_model_is_model_not_found(tmp_path: Path) -> None:
    script = Script().on("/api/show", fixture_reply(
        404, "derived_from_code/show_model_not_found.404.json"))
    with LocalEngine(transport=script.transport(), record_usage=False) as engine, \
            pytest.raises(ModelNotFound, match="ollama pull"):
        engine.get_model_info("llama3.2")
