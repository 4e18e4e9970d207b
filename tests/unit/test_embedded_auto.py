"""`engine = "auto"`: the fake Ollama when it answers, the embedded engine when it is down.

Real HTTP to the fake Ollama on one side, the real SmolLM2 model on the other, and the
project's own factory choosing between them — what a user gets with the default settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.factory import EngineConfig, create_engine
from aethel_lsp.engine.types import GenerateRequest, GenerationOptions
from tests.fakes.ollama import FakeOllama, Reply
from tests.unit.embedded_support import requires_embedded

pytestmark = [pytest.mark.embedded, requires_embedded]

SMOL = "SmolLM2-135M-Instruct.Q4_1"


@pytest.fixture
async def auto(fake_ollama: FakeOllama) -> AsyncIterator[Engine]:
    engine = create_engine(EngineConfig(kind="auto", host=fake_ollama.url))
    yield engine
    await engine.aclose()


def ask(model: str = "") -> GenerateRequest:
    return GenerateRequest(model=model, prompt="Say hi.",
                           options=GenerationOptions(num_predict=8, temperature=0.0))


async def test_fake_ollama_serves_while_it_is_up(auto: Engine, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="from the fake"))
    status = await auto.status()
    assert status.available and status.engine == "ollama"
    assert status.reason is not None and "Ollama answered" in status.reason

    result = await auto.generate(ask("qwen2.5-coder:1.5b"))
    assert result.text == "from the fake"
    assert fake_ollama.bodies("/api/generate")[-1]["model"] == "qwen2.5-coder:1.5b"


async def test_embedded_engine_serves_when_ollama_is_down(
    auto: Engine, fake_ollama: FakeOllama
) -> None:
    fake_ollama.go_offline()
    status = await auto.status()
    assert status.available and status.engine == "embedded", status
    assert status.reason is not None and "not running" in status.reason
    assert [m.name for m in status.models] == [SMOL]

    result = await auto.generate(ask())
    assert result.metrics.model == SMOL
    assert result.metrics.tokens_generated == 8
    assert result.text.strip()
    assert auto.kind == "embedded"


async def test_back_to_ollama_when_it_comes_back(auto: Engine, fake_ollama: FakeOllama) -> None:
    fake_ollama.go_offline()
    assert (await auto.status()).engine == "embedded"
    fake_ollama.go_online()
    fake_ollama.enqueue(Reply(text="back"))
    assert (await auto.status()).engine == "ollama"
    assert (await auto.generate(ask("qwen2.5-coder:1.5b"))).text == "back"
