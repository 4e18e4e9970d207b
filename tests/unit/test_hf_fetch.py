"""`aethel-lsp pull hf:OWNER/REPO/FILE.gguf`: a GGUF from Hugging Face, against a fake Hub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aethel_lsp.engine.embedded import EmbeddedEngine, embedded_pull
from aethel_lsp.engine.errors import InvalidRequest
from aethel_lsp.engine.hf_fetch import HfFetchError, fetch_hf_file, parse_hf_reference
from aethel_lsp.engine.types import PullProgress
from tests.fakes.huggingface import FakeHub
from tests.unit.embedded_support import TINY_METADATA, TINY_TENSORS, write_gguf

REF = "hf:acme/Tiny-Coder-GGUF/tiny-coder-q4.gguf"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    coder = write_gguf(tmp_path / "src.gguf", {
        **TINY_METADATA, "tokenizer.ggml.fim_pre_token_id": 1,
        "tokenizer.ggml.fim_suf_token_id": 2, "tokenizer.ggml.fim_mid_token_id": 3,
    }, TINY_TENSORS)
    with FakeHub({"acme/Tiny-Coder-GGUF/main/tiny-coder-q4.gguf": coder.read_bytes()}) as fake:
        yield fake


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def drain(stream: AsyncIterator[PullProgress]) -> list[PullProgress]:
    return [item async for item in stream]


async def test_downloads_verifies_and_serves_the_file(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    models = tmp_path / "models"
    progress = await drain(embedded_pull(REF, models))
    assert [p.status for p in progress][-2:] == ["verifying sha256 digest", "success"]
    assert any(p.total and p.completed == p.total for p in progress)
    assert names(models) == ["tiny-coder-q4.gguf"]
    assert hub.paths[0] == "HEAD /acme/Tiny-Coder-GGUF/resolve/main/tiny-coder-q4.gguf"
    engine = EmbeddedEngine(models_directory=models, ollama_models=tmp_path / "none")
    try:  # the downloaded model is offered, with fill-in-the-middle
        info = await engine.show("tiny-coder-q4")
        assert info.capabilities == ("completion", "insert")
    finally:
        await engine.aclose()
    again = await drain(embedded_pull(REF, models))
    assert [p.status for p in again] == ["success"]  # already there: no request
    assert len(hub.paths) == 3


async def test_a_hash_mismatch_keeps_nothing(hub: FakeHub, tmp_path: Path) -> None:
    hub.corrupt = True
    models = tmp_path / "models"
    with pytest.raises(HfFetchError, match="does not match the SHA-256"):
        await drain(fetch_hf_file(parse_hf_reference(REF), models, endpoint=hub.url))
    assert names(models) == []


async def test_a_download_closed_midway_keeps_nothing(hub: FakeHub, tmp_path: Path) -> None:
    models = tmp_path / "models"
    stream = fetch_hf_file(parse_hf_reference(REF), models, endpoint=hub.url)
    async for progress in stream:
        if progress.completed:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert names(models) == []


async def test_an_unwritable_model_directory_says_what_to_do(
    hub: FakeHub, tmp_path: Path
) -> None:
    occupied = tmp_path / "models"
    occupied.write_text("a file where the directory should be")
    with pytest.raises(HfFetchError, match="set AETHEL_LSP_MODELS_DIR to a writable directory"):
        await drain(fetch_hf_file(parse_hf_reference(REF), occupied, endpoint=hub.url))


async def test_missing_and_gated_files_say_what_to_do(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(HfFetchError, match="does not exist"):
        await drain(fetch_hf_file(parse_hf_reference("hf:acme/none/x.gguf"), tmp_path,
                                  endpoint=hub.url))
    with pytest.raises(HfFetchError, match=r"embedded\.modelPath"):
        await drain(fetch_hf_file(parse_hf_reference("hf:gated/repo/x.gguf"), tmp_path,
                                  endpoint=hub.url))


@pytest.mark.parametrize("bad", ["hf:acme/repo", "hf:acme/repo/model.bin", "hf:a/../b.gguf",
                                 "hf:a/b c/d.gguf"])
def test_bad_references_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match=r"hf:OWNER/REPO/FILE\.gguf"):
        parse_hf_reference(bad)
