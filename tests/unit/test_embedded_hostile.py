"""The embedded engine given files that are not models: refused with the reader's own
reason before llama.cpp is asked to load them (its answer is only "Failed to init
server, please check the input params.")."""

from __future__ import annotations

from pathlib import Path

import pytest

from aethel_lsp.engine.embedded import EmbeddedEngine
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.llama_server import LlamaServer, ServerSettings
from aethel_lsp.engine.types import GenerateRequest

NOT_MODELS = {
    "random.gguf": (b"\x8f\x01 not a model at all" * 5, "not a GGUF model file"),
    "empty.gguf": (b"", "truncated"),
    "magic-only.gguf": (b"GGUF\x03\x00\x00\x00", "truncated"),
}


@pytest.mark.parametrize("name", sorted(NOT_MODELS))
async def test_a_file_that_is_not_a_model_is_refused_before_loading(
    tmp_path: Path, name: str
) -> None:
    content, reason = NOT_MODELS[name]
    model = tmp_path / name
    model.write_bytes(content)
    loads: list[ServerSettings] = []

    def factory(settings: ServerSettings) -> LlamaServer:
        loads.append(settings)
        raise RuntimeError("Failed to init server, please check the input params.")

    engine = EmbeddedEngine(str(model), ollama_models=tmp_path / "no-store",
                            models_directory=tmp_path / "models", server_factory=factory)
    try:
        with pytest.raises(EngineError) as failed:
            await engine.generate(GenerateRequest("", "hi", raw=True))
    finally:
        await engine.aclose()
    assert loads == []
    message = str(failed.value)
    assert reason in message and str(model) in message
    assert "input params" not in message and ".." not in message
