"""The embedded engine with the real llama.cpp server (xllamacpp) and SmolLM2-135M:
streaming, options, llama.cpp's own timings as metrics, the prompt cache, cancellation,
two slots, the model catalogue (incl. Ollama's store), errors.

Kept fast: small `num_predict`; SmolLM2 loads in well under a second. The exact HTTP
bodies (and `/infill`, which SmolLM2 cannot do) are tested against a fake server in
test_embedded_fake_server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aethel_lsp.engine.embedded import EmbeddedEngine, embedded_available
from aethel_lsp.engine.errors import CapabilityMissing, InvalidRequest, ModelNotFound
from aethel_lsp.engine.types import (
    ChatMessage,
    ChatRequest,
    Chunk,
    GenerateRequest,
    GenerationOptions,
    Metrics,
)
from tests.unit.embedded_support import SHIPPED_MODEL, add_stored_model, requires_embedded

pytestmark = [pytest.mark.embedded, requires_embedded]

SMOL = "SmolLM2-135M-Instruct.Q4_1"
CODE = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EmbeddedEngine]:
    eng = EmbeddedEngine(str(SHIPPED_MODEL), threads=1, ollama_models=tmp_path / "none")
    yield eng
    await eng.aclose()


def ask(prompt: str = CODE, *, raw: bool = True, **options: Any) -> GenerateRequest:
    return GenerateRequest(model="", prompt=prompt, raw=raw, options=GenerationOptions(**options))


async def run(stream: AsyncIterator[Chunk]) -> tuple[str, Metrics]:
    parts: list[str] = []
    async with contextlib.aclosing(stream) as chunks:  # type: ignore[type-var]
        async for chunk in chunks:
            if chunk.done:
                assert chunk.metrics is not None
                return "".join(parts), chunk.metrics
            parts.append(chunk.text)
    raise AssertionError("the stream ended without a final chunk")


async def test_raw_prompt_metrics_are_llama_cpps_own(engine: EmbeddedEngine) -> None:
    text, metrics = await run(engine.stream_generate(ask(num_predict=8, temperature=0.0)))
    prompt_tokens = await engine.tokenize(CODE)
    assert metrics.model == SMOL
    assert metrics.prompt_tokens == len(prompt_tokens)  # SmolLM2 adds no BOS token
    assert metrics.tokens_generated == 8 and metrics.done_reason == "length"
    assert metrics.tokens_per_second and metrics.eval_duration_ms
    assert metrics.load_ms and metrics.time_to_first_token_ms
    assert text


async def test_the_cached_prefix_is_reused(engine: EmbeddedEngine) -> None:
    """Typing one character re-reads only the new tokens (`cache_prompt`)."""
    _, first = await run(engine.stream_generate(ask(num_predict=1)))
    _, typed = await run(engine.stream_generate(ask(CODE + "    r", num_predict=1)))
    assert first.cached_prompt_tokens == 0 and first.prompt_tokens
    assert typed.cached_prompt_tokens is not None and typed.prompt_tokens is not None
    assert typed.cached_prompt_tokens >= first.prompt_tokens - 1  # all but the last token
    assert typed.prompt_tokens - typed.cached_prompt_tokens <= 3  # only the typed text is read


async def test_stop_sequence_and_seed(engine: EmbeddedEngine) -> None:
    stopped, metrics = await run(engine.stream_generate(
        ask(num_predict=64, temperature=0.0, stop=("\n",))))
    assert "\n" not in stopped and metrics.done_reason == "stop"
    one, _ = await run(engine.stream_generate(ask(num_predict=12, seed=42, temperature=1.0)))
    two, _ = await run(engine.stream_generate(ask(num_predict=12, seed=42, temperature=1.0)))
    assert one == two


async def test_chat_uses_the_models_template(engine: EmbeddedEngine) -> None:
    request = ChatRequest("", (ChatMessage("system", "Answer with one word."),
                               ChatMessage("user", "What colour is the sky?")),
                          options=GenerationOptions(num_predict=8))
    text, metrics = await run(engine.stream_chat(request))
    assert text.strip()
    # the template wraps the messages in <|im_start|>...<|im_end|> turns: more tokens
    plain = await engine.tokenize("Answer with one word.What colour is the sky?")
    assert metrics.prompt_tokens is not None and metrics.prompt_tokens > len(plain) + 6


async def test_completion_and_action_do_not_wait_for_each_other(engine: EmbeddedEngine) -> None:
    """Two slots: a short request finishes while a long one is still streaming."""
    long_stream = engine.stream_generate(ask("Write a long story.", raw=False, num_predict=400))
    async with contextlib.aclosing(long_stream) as chunks:  # type: ignore[type-var]
        async for chunk in chunks:
            if chunk.text:
                break
        short = await asyncio.wait_for(run(engine.stream_generate(ask(num_predict=2))), 120)
    assert short[1].tokens_generated == 2


async def test_closing_a_stream_frees_its_slot(tmp_path: Path) -> None:
    """With one slot, the next request can only be served once the closed ones stopped
    (each would otherwise count on for 8,000 tokens: minutes on two cores)."""
    single = EmbeddedEngine(str(SHIPPED_MODEL), threads=1, slots=1, context_size=8192,
                            ollama_models=tmp_path / "none")
    try:
        for _ in range(2):
            stream = single.stream_generate(ask("1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
                                                num_predict=-1, temperature=0.0))
            async with contextlib.aclosing(stream) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    if chunk.text:
                        break
        _, metrics = await asyncio.wait_for(run(single.stream_generate(ask(num_predict=2))),
                                            120)
        assert metrics.tokens_generated == 2
    finally:
        await single.aclose()


async def test_models_show_running_and_status(engine: EmbeddedEngine) -> None:
    await run(engine.stream_generate(ask(num_predict=1)))
    [smol] = await engine.list_models()
    assert smol.to_json() == {
        "name": SMOL, "sizeBytes": SHIPPED_MODEL.stat().st_size if SHIPPED_MODEL else None,
        # trained for 8192, served with the engine's 4096-token window: what really fits
        "parameters": 134_515_008, "contextLength": 4096, "family": "llama",
        "quantization": "Q4_1", "capabilities": ["completion"],
    }
    assert (await engine.show("")) == smol
    [running] = await engine.running()
    assert running.name == SMOL and running.context_length == 4096
    status = await engine.status()
    assert status.available and status.engine == "embedded" and status.version
    assert [m.name for m in status.models] == [SMOL]


async def test_errors_say_what_to_do(engine: EmbeddedEngine) -> None:
    with pytest.raises(CapabilityMissing, match="fill in the middle") as missing:
        await run(engine.stream_generate(GenerateRequest(model="", prompt="a", suffix="b")))
    assert missing.value.capability == "insert"
    with pytest.raises(ModelNotFound, match=f"no model named 'llama3:70b'.*{SMOL}"):
        await run(engine.stream_generate(GenerateRequest(model="llama3:70b", prompt="a")))
    with pytest.raises(InvalidRequest, match="ollama pull tinyllama"):
        async for _ in engine.pull("tinyllama"):
            pass


async def test_prompt_longer_than_the_context_is_refused(tmp_path: Path) -> None:
    small = EmbeddedEngine(str(SHIPPED_MODEL), threads=1, context_size=256,
                           ollama_models=tmp_path / "none")
    try:
        with pytest.raises(InvalidRequest, match="contextSize"):
            await run(small.stream_generate(ask("word " * 400, num_predict=4)))
    finally:
        await small.aclose()


async def test_serves_models_from_ollamas_store(tmp_path: Path) -> None:
    assert SHIPPED_MODEL is not None
    store = tmp_path / "ollama-models"
    add_stored_model(store, "smol", "latest", SHIPPED_MODEL, link=True)
    explicit = EmbeddedEngine(str(SHIPPED_MODEL), threads=1, ollama_models=store)
    try:
        assert [m.name for m in await explicit.list_models()] == [SMOL, "smol:latest"]
        _, metrics = await run(explicit.stream_generate(
            GenerateRequest(model="smol", prompt="Say hi.",
                            options=GenerationOptions(num_predict=4))))
        assert metrics.model == "smol:latest"
        assert [r.name for r in await explicit.running()] == ["smol:latest"]
    finally:
        await explicit.aclose()


def test_available_reports_why_not(tmp_path: Path) -> None:
    ok, why = embedded_available(SHIPPED_MODEL)
    assert ok, why
    ok, why = embedded_available(tmp_path / "missing.gguf")
    assert not ok
    assert "missing.gguf does not exist" in why and "aethel-lsp pull" in why


async def test_other_local_processes_cannot_use_the_server(engine: EmbeddedEngine) -> None:
    """Loopback only, and every request needs the key only this engine knows."""
    import httpx

    await run(engine.stream_generate(ask(num_predict=1)))
    running = engine._running  # the address is not public on purpose; tests may look
    assert running is not None
    base = running.server.base_url
    assert base.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(base_url=base, trust_env=False) as stranger:
        refused = await stranger.post("/completion", json={"prompt": "hi", "n_predict": 1})
        assert refused.status_code == 401
        preflight = await stranger.options("/completion", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert preflight.headers.get("access-control-allow-origin", "") in ("", "null")
