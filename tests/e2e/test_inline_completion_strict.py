"""Inline completion (FIM) through the real server against the strict Ollama emulator.

Real-Ollama details our own fake may not have: `/api/generate` answers an empty `prompt`
with a `done_reason: "load"` object and generates nothing (even when `suffix` is set), the
insert-capability error names the fully qualified model, thinking models think unless
told not to, and lines arrive split across chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama_strict import StrictOllama

CODER = "qwen2.5-coder:1.5b"


@pytest.fixture
def emu() -> Iterator[StrictOllama]:
    with StrictOllama() as server:
        server.default_script.split = "split"
        yield server


@pytest_asyncio.fixture
async def lsp(tmp_path: Path, emu: StrictOllama) -> AsyncIterator[Harness]:
    harness = await start_server(
        tmp_path, None, extra_env={"OLLAMA_HOST": emu.url},
        editor_settings={"engine": "ollama", "model": CODER, "completion": {"model": CODER}})
    yield harness
    await harness.stop()


async def complete(h: Harness, uri: str, line: int, character: int) -> list[str]:
    result = await asyncio.wait_for(h.client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked))), 30)
    items: Any = result.items if isinstance(result, types.InlineCompletionList) else result
    return [str(i.insert_text) for i in items or []]


async def test_fim_middle_of_file(lsp: Harness, emu: StrictOllama) -> None:
    emu.script(tokens=["a + ", "b"])
    uri = lsp.open("mid.py", "def add(a, b):\n    return \n\nprint(add(1, 2))\n")
    assert await complete(lsp, uri, 1, 11) == ["a + b"]
    body = emu.bodies("/api/generate")[-1]
    assert body["prompt"].endswith("    return ") and body["suffix"].startswith("\n")
    assert body["think"] is False


async def test_fim_at_the_very_start_of_a_file(lsp: Harness, emu: StrictOllama) -> None:
    """An empty prefix must not be sent as `prompt: ""` — Ollama would only load the model."""
    emu.script(tokens=["import os", "\n"])
    uri = lsp.open("start.py", "\nprint(os.getcwd())\n")
    assert await complete(lsp, uri, 0, 0) == ["import os"]
    sent = emu.bodies("/api/generate")
    assert sent and all(b.get("prompt") for b in sent), sent


async def test_thinking_never_reaches_the_ghost_text(lsp: Harness, emu: StrictOllama) -> None:
    emu.script(tokens=["a + b"], thinking=["<think>SECRET"], always_think=True)
    uri = lsp.open("think.py", "def add(a, b):\n    return \n")
    assert await complete(lsp, uri, 1, 11) == ["a + b"]
