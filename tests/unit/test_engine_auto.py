"""AutoEngine: Ollama when it answers, else embedded, else a message; Ollama's return is seen."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from aethel_lsp.engine import (
    AutoEngine,
    ChatRequest,
    Chunk,
    Engine,
    EngineConfig,
    EngineNotInstalled,
    EngineStatus,
    GenerateRequest,
    Metrics,
    ModelInfo,
    NoEngineAvailable,
    OllamaEngine,
    OpenAIEngine,
    PullProgress,
    RunningModel,
    create_engine,
)
from aethel_lsp.engine.auto import load_embedded_engine
from tests.unit.engine_support import generate_lines

HOST = "http://127.0.0.1:11434"


class FakeEmbedded(Engine):
    """A stand-in for the embedded backend that answers "embedded" to everything."""

    kind = "embedded"
    host = "embedded:test.gguf"

    async def status(self) -> EngineStatus:
        return EngineStatus(True, self.host, "embedded", version="test")

    async def version(self) -> str:
        return "test"

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo("tiny")]

    async def show(self, model: str) -> ModelInfo:
        return ModelInfo(model)

    async def running(self) -> list[RunningModel]:
        return []

    async def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        yield Chunk(text="embedded")
        yield Chunk(done=True, metrics=Metrics(model=request.model, tokens_generated=1))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return self.stream_generate(GenerateRequest(request.model, ""))

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        yield PullProgress("success")


class Switchable:
    """A MockTransport handler for an Ollama that can be stopped and started."""

    def __init__(self) -> None:
        self.up = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("Connection refused", request=request)
        if request.url.path == "/api/version":
            return httpx.Response(200, json={"version": "0.33.0"})
        if request.url.path in ("/api/tags", "/api/ps"):
            return httpx.Response(200, json={"models": []})
        return httpx.Response(200, content=b"".join(generate_lines(["ollama"])))


def auto(server: Switchable, embedded: Engine | None, ttl: float = 0.0) -> AutoEngine:
    ollama = OllamaEngine(HOST, transport=httpx.MockTransport(server))
    loader = (lambda: (embedded, "")) if embedded else (lambda: (None, "llama-cpp missing"))
    return AutoEngine(ollama, embedded_loader=loader, probe_ttl_s=ttl)


async def test_prefers_ollama_and_says_why() -> None:
    engine = auto(Switchable(), FakeEmbedded())
    status = await engine.status()
    assert status.available and status.engine == "ollama"
    assert status.reason == f"Ollama answered at {HOST}"
    assert (await engine.generate(GenerateRequest("m", "p"))).text == "ollama"


async def test_falls_back_to_embedded_and_back_to_ollama_without_restart() -> None:
    server = Switchable()
    engine = auto(server, FakeEmbedded())
    server.up = False
    assert (await engine.generate(GenerateRequest("m", "p"))).text == "embedded"
    status = await engine.status()
    assert status.engine == "embedded" and "not running" in (status.reason or "")
    assert engine.kind == "embedded"
    server.up = True
    assert (await engine.generate(GenerateRequest("m", "p"))).text == "ollama"
    assert engine.kind == "ollama"


async def test_offline_during_a_call_reprobes_and_falls_back() -> None:
    server = Switchable()
    engine = auto(server, FakeEmbedded(), ttl=3600.0)
    assert (await engine.generate(GenerateRequest("m", "p"))).text == "ollama"
    server.up = False  # the cached probe still says "up"
    assert (await engine.generate(GenerateRequest("m", "p"))).text == "embedded"
    assert [m.name for m in await engine.list_models()] == ["tiny"]


async def test_nothing_available_says_how_to_get_either() -> None:
    server = Switchable()
    server.up = False
    engine = auto(server, None)
    with pytest.raises(NoEngineAvailable) as info:
        await engine.generate(GenerateRequest("m", "p"))
    message = str(info.value)
    assert "ollama serve" in message and "pip install 'aethel-lsp[embedded]'" in message
    assert HOST in message and "llama-cpp missing" in message
    status = await engine.status()
    assert not status.available and status.offline and status.error == message


def test_loader_reports_import_errors_as_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    def missing(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    engine, why = load_embedded_engine(None)
    assert engine is None and "not installed" in why
    with pytest.raises(EngineNotInstalled, match=r"pip install 'aethel-lsp\[embedded\]'"):
        create_engine(EngineConfig(kind="embedded"))


def test_factory_builds_each_kind() -> None:
    assert isinstance(create_engine(EngineConfig(kind="ollama", host=":9")), OllamaEngine)
    assert create_engine(EngineConfig(kind="ollama", host=":9")).host == "http://127.0.0.1:9"
    assert isinstance(create_engine(EngineConfig(kind="auto")), AutoEngine)
    openai = create_engine(EngineConfig(kind="openai", openai_base_url="http://h:8000"))
    assert isinstance(openai, OpenAIEngine) and openai.host == "http://h:8000/v1"
