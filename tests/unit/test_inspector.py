"""The request inspector: records what was sent and received, bounded, concurrent-safe,
and never stores a secret."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aethel_lsp.engine import (
    ChatMessage,
    ChatRequest,
    EngineError,
    GenerateRequest,
    GenerationOptions,
    OllamaEngine,
)
from aethel_lsp.engine.base import collect
from aethel_lsp.engine.inspector import (
    REDACTED,
    InspectingEngine,
    InspectionRecord,
    Inspector,
    Redactor,
    inspection_scope,
)
from tests.fakes.ollama import FakeOllama, Reply
from tests.fakes.ollama_models import CHAT, CODER

SECRET = "sk-live-SECRETVALUE0123456789abcd"


def record(n: int) -> InspectionRecord:
    return InspectionRecord(kind="generate", endpoint="generate", model=f"m{n}", engine="ollama",
                            host="http://127.0.0.1:11434", request={"prompt": f"p{n}"})


@pytest.fixture
def inspector(tmp_path: Path) -> Iterator[Inspector]:
    ring = Inspector(tmp_path / "inspector.sqlite3", size=3,
                     redactor=Redactor.from_env({"MY_KEY": SECRET}, "MY_KEY"))
    yield ring
    ring.close()


@pytest.fixture
async def fake_engine(fake_ollama: FakeOllama) -> AsyncIterator[OllamaEngine]:
    engine = OllamaEngine(fake_ollama.url)
    yield engine
    await engine.aclose()


# -- redaction ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        f"key = {SECRET}",  # the configured variable's value, anywhere
        "Authorization: Bearer abcdefghijklmnop1234",
        "OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx",
        'api_key = "hunter2hunter2"',
        "token: ghp_abcdefghijklmnopqrstuvwxyz0123",
        "aws AKIAABCDEFGHIJKLMNOP here",
        "slack xoxb-1234567890-abcdefghij",
        "https://user:pa55word@example.com/v1",
        "password=correct-horse",
    ],
)
def test_redactor_removes_secrets(text: str) -> None:
    redactor = Redactor.from_env({"MY_KEY": SECRET}, "MY_KEY")
    out = redactor.text(text)
    assert REDACTED in out
    for secret in (SECRET, "abcdefghijklmnop1234", "sk-abcdefghijklmnopqrstuvwx", "hunter2",
                   "ghp_abc", "AKIAABCDEFGHIJKLMNOP", "xoxb-1234567890", "pa55word",
                   "correct-horse"):
        assert secret not in out


def test_redactor_keeps_ordinary_code() -> None:
    code = "def tokenize(text):\n    return text.split()\n"
    assert Redactor().text(code) == code


def test_redactor_blanks_secret_keys_in_objects() -> None:
    out = Redactor().value({"headers": {"Authorization": "x y"}, "apiKey": "abc", "n": 1})
    assert out == {"headers": {"Authorization": REDACTED}, "apiKey": REDACTED, "n": 1}


# -- the ring -------------------------------------------------------------------------------------
def test_ring_keeps_only_the_newest(inspector: Inspector) -> None:
    for n in range(5):
        inspector.write(record(n))
    models = [r["model"] for r in inspector.last(10)]
    assert models == ["m4", "m3", "m2"]  # newest first, bounded to size=3


def test_update_rewrites_the_same_row(inspector: Inspector) -> None:
    item = record(1)
    inspector.write(item)
    item.result = "shown"
    inspector.write(item)
    rows = inspector.last(10)
    assert len(rows) == 1 and rows[0]["result"] == "shown"


def test_secrets_never_reach_the_file(inspector: Inspector) -> None:
    item = record(1)
    item.request["prompt"] = f"OPENAI_KEY = '{SECRET}'\n"
    item.response = f"use {SECRET}"
    inspector.write(item)
    assert SECRET not in inspector.path.read_bytes().decode("utf-8", "replace")
    wal = inspector.path.with_name(inspector.path.name + "-wal")
    if wal.exists():
        assert SECRET.encode() not in wal.read_bytes()
    assert REDACTED in json.dumps(inspector.last(1))


def test_concurrent_writers_share_one_ring(tmp_path: Path) -> None:
    path = tmp_path / "ring.sqlite3"
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        ring = Inspector(path, size=30)
        try:
            for n in range(40):
                ring.write(record(offset + n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            ring.close()

    threads = [threading.Thread(target=writer, args=(i * 100,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    reader = Inspector(path, size=30)
    try:
        assert len(reader.last(1000)) == 30
    finally:
        reader.close()


def test_a_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "ring.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    ring = Inspector(path, size=5)
    try:
        ring.write(record(1))
        assert [r["model"] for r in ring.last(5)] == ["m1"]
        assert ring.notice is not None and "corrupt" in ring.notice
        assert list(tmp_path.glob("ring.sqlite3.corrupt-*"))
    finally:
        ring.close()


# -- the engine wrapper ---------------------------------------------------------------------------
async def test_records_a_fim_request_exactly(
    inspector: Inspector, fake_engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    fake_ollama.set_reply(CODER.name, Reply(text="return a + b"))
    engine = InspectingEngine(fake_engine, lambda: inspector)
    request = GenerateRequest(model=CODER.name, prompt="def add(a, b):\n    ",
                              suffix="\n\nprint(add(1, 2))",
                              options=GenerationOptions(temperature=0.1, num_predict=32),
                              keep_alive="30m")
    with inspection_scope("inlineCompletion") as scope:
        result = await collect(engine.stream_generate(request), CODER.name)
    scope.finish("return a + b", fim_mode="native", source="fresh")
    [row] = inspector.last(5)
    assert row["kind"] == "inlineCompletion" and row["endpoint"] == "generate"
    assert row["model"] == CODER.name and row["host"] == fake_ollama.url
    # The body exactly as Ollama received it (optional fields only when sent).
    assert row["path"] == "/api/generate"
    assert row["request"] == {"model": CODER.name, "prompt": "def add(a, b):\n    ",
                              "suffix": "\n\nprint(add(1, 2))", "stream": True,
                              "options": {"temperature": 0.1, "num_predict": 32},
                              "keep_alive": "30m", "think": False}
    assert row["fimMode"] == "native"
    assert row["response"] == result.text == "return a + b"
    assert row["outcome"] == "ok"
    assert row["metrics"]["tokensGenerated"] == result.metrics.tokens_generated
    assert row["result"] == "return a + b" and row["resultSource"] == "fresh"
    assert row["elapsedMs"] > 0


async def test_records_chat_and_redacts_the_prompt(
    inspector: Inspector, fake_engine: OllamaEngine
) -> None:
    engine = InspectingEngine(fake_engine, lambda: inspector)
    request = ChatRequest(model=CHAT.name, messages=(
        ChatMessage("system", "Explain."), ChatMessage("user", f"API_KEY = '{SECRET}'")))
    await collect(engine.stream_chat(request), CHAT.name)
    [row] = inspector.last(5)
    assert row["endpoint"] == "chat" and row["fimMode"] is None
    assert row["request"]["messages"][0] == {"role": "system", "content": "Explain."}
    assert SECRET not in json.dumps(row) and REDACTED in row["request"]["messages"][1]["content"]
    assert row["response"] == CHAT.default_text


async def test_errors_and_cancellations_are_recorded(
    inspector: Inspector, fake_engine: OllamaEngine, fake_ollama: FakeOllama
) -> None:
    engine = InspectingEngine(fake_engine, lambda: inspector)
    with pytest.raises(EngineError):
        await collect(engine.stream_generate(GenerateRequest("missing:1b", "x")), "missing:1b")
    fake_ollama.set_reply(CODER.name, Reply(tokens=["a"] * 20, token_delay=0.02))
    stream = engine.stream_generate(GenerateRequest(CODER.name, "x"))
    async with contextlib.aclosing(stream) as chunks:  # type: ignore[type-var]
        async for _chunk in chunks:
            break
    rows = inspector.last(5)
    assert [r["outcome"] for r in rows] == ["cancelled", "error"]
    assert "not installed" in rows[1]["error"] and rows[0]["response"] == "a"


async def test_nothing_is_recorded_when_off(
    inspector: Inspector, fake_engine: OllamaEngine
) -> None:
    engine = InspectingEngine(fake_engine, lambda: None)
    await collect(engine.stream_generate(GenerateRequest(CODER.name, "x")), CODER.name)
    assert inspector.last(5) == []
