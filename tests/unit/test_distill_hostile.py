"""The distiller with odd options: a model named twice is still one model whose further
samples run hotter (docs/aethel.md, "The distiller", step 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aethel_lsp.distill.run import distill
from aethel_lsp.engine import OllamaEngine
from tests.fakes.ollama import FakeOllama
from tests.unit.test_distill import CHAT, CODER, DESCRIPTION, PAY, fenced, options


@pytest.fixture
async def engine(fake_ollama: FakeOllama) -> AsyncIterator[OllamaEngine]:
    engine = OllamaEngine(fake_ollama.url)
    yield engine
    await engine.aclose()


async def test_a_model_named_twice_runs_hotter_on_its_second_sample(
    fake_ollama: FakeOllama, engine: OllamaEngine
) -> None:
    fake_ollama.set_reply(CODER, fenced(PAY))
    fake_ollama.set_reply(CHAT, fenced(PAY))
    await distill(engine, DESCRIPTION, options(models=(CODER, CODER, CHAT), candidates=4))
    sent = [(body["model"], body["options"]["temperature"])
            for body in fake_ollama.chat_requests()]
    assert sorted(sent) == sorted([(CODER, 0.2), (CHAT, 0.2), (CODER, 0.5), (CHAT, 0.5)])
