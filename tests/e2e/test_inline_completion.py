"""End to end: textDocument/inlineCompletion through the real server process and the fake
Ollama over HTTP — FIM request shapes (exact JSON), latest-wins with closed upstream
streams, typed-through cache reuse, the deadline, and a model load kept alive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama import FakeOllama, Reply
from tests.fakes.ollama_models import CHAT, CODER

CODER_NAME = "qwen2.5-coder:1.5b"
NO_INSERT_NAME = "starcoder2:3b"  # known FIM family, but no `insert` capability here


def settings(**completion: Any) -> dict[str, Any]:
    return {"model": CODER_NAME, "completion": {"model": CODER_NAME, **completion}}


async def started(tmp_path: Path, token_delay: float = 0.0, **completion: Any) -> Harness:
    fake = FakeOllama([CODER, CHAT.renamed(NO_INSERT_NAME)], token_delay=token_delay)
    fake.start()
    return await start_server(tmp_path, fake, editor_settings=settings(**completion))


@pytest.fixture
async def lsp(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await started(tmp_path)
    yield harness
    await harness.stop()


def ask(
    h: Harness, uri: str, line: int, character: int, *, invoked: bool = True
) -> asyncio.Future[types.InlineCompletionList | list[types.InlineCompletionItem] | None]:
    kind = (
        types.InlineCompletionTriggerKind.Invoked
        if invoked
        else types.InlineCompletionTriggerKind.Automatic
    )
    return asyncio.ensure_future(
        h.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(trigger_kind=kind),
            )
        )
    )


def texts(result: object) -> list[str]:
    assert isinstance(result, types.InlineCompletionList)
    return [str(item.insert_text) for item in result.items]


def change(h: Harness, uri: str, version: int, text: str) -> None:
    h.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def test_capabilities_advertise_inline_completion(lsp: Harness) -> None:
    caps = lsp.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.completion_provider.resolve_provider is True


async def test_native_fim_sends_suffix_for_an_insert_model(lsp: Harness) -> None:
    doc = "def add(a, b):\n    return \n\nprint(add(1, 2))\n"
    uri = lsp.open("calc.py", doc)
    assert lsp.fake is not None
    lsp.fake.enqueue(Reply(tokens=["a ", "+ b"]))
    result = await asyncio.wait_for(ask(lsp, uri, 1, 11), 10)
    assert texts(result) == ["a + b"]
    (body,) = lsp.fake.generate_requests()
    assert body == {
        "model": CODER_NAME,
        "prompt": "def add(a, b):\n    return ",
        "suffix": "\n\nprint(add(1, 2))\n",
        "stream": True,
        "options": {"temperature": 0.1, "num_predict": 64, "num_ctx": 8192},
        "keep_alive": "30m",
        "think": False,
    }
    assert any(f"FIM mode for {CODER_NAME}: native" in m.message for m in lsp.client.log_messages)


async def test_raw_template_for_a_model_without_insert(tmp_path: Path) -> None:
    fake = FakeOllama([CODER, CHAT.renamed(NO_INSERT_NAME)])
    fake.start()
    h = await start_server(
        tmp_path,
        fake,
        editor_settings={"model": CODER_NAME, "completion": {"model": NO_INSERT_NAME}},
    )
    try:
        doc = "x = \ny = 2\n"
        uri = h.open("a.py", doc)
        fake.enqueue(Reply(tokens=["41", "<|endoftext|>"]))
        result = await asyncio.wait_for(ask(h, uri, 0, 4), 10)
        assert texts(result) == ["41"]
        (body,) = fake.generate_requests()
        assert body == {
            "model": NO_INSERT_NAME,
            "prompt": "<fim_prefix>x = <fim_suffix>\ny = 2\n<fim_middle>",
            "stream": True,
            "raw": True,
            "options": {
                "temperature": 0.1,
                "num_predict": 64,
                "num_ctx": 8192,
                "stop": ["<|endoftext|>", "<file_sep>", "<fim_prefix>"],
            },
            "keep_alive": "30m",
            "think": False,
        }
        reason = [m.message for m in h.client.log_messages if "FIM mode for" in m.message]
        assert reason and "template" in reason[0] and "no 'insert' capability" in reason[0]
    finally:
        await h.stop()


async def test_superseded_request_answered_empty_and_its_stream_closed(tmp_path: Path) -> None:
    h = await started(tmp_path, token_delay=0.05)
    try:
        assert h.fake is not None
        doc = "alpha = \nbeta = \n"
        uri = h.open("s.py", doc)
        h.fake.enqueue(Reply(text="one two three four five six seven eight nine ten" * 3))
        h.fake.enqueue(Reply(tokens=["2"]))
        first = ask(h, uri, 0, 8)
        await h.wait_for(
            lambda: h.fake is not None and h.fake.streams and h.fake.streams[0].tokens_sent >= 2
        )
        second = ask(h, uri, 1, 7)  # elsewhere: does not extend the first prompt
        assert texts(await asyncio.wait_for(first, 5)) == []
        stream = h.fake.streams[0]
        await h.wait_for(lambda: stream.closed_early, timeout=5)
        assert not stream.completed
        assert texts(await asyncio.wait_for(second, 10)) == ["2"]
        assert len(h.fake.generate_requests()) == 2
    finally:
        await h.stop()


async def test_typed_through_reuses_the_cached_suggestion(lsp: Harness) -> None:
    assert lsp.fake is not None
    uri = lsp.open("t.py", "values = [1, 2]\ntotal = \n")
    lsp.fake.enqueue(Reply(tokens=["sum", "(values)"]))
    assert texts(await asyncio.wait_for(ask(lsp, uri, 1, 8), 10)) == ["sum(values)"]
    change(lsp, uri, 2, "values = [1, 2]\ntotal = su\n")
    result = await asyncio.wait_for(ask(lsp, uri, 1, 10, invoked=False), 10)
    assert texts(result) == ["m(values)"]
    assert len(lsp.fake.generate_requests()) == 1  # no new upstream request


async def test_deadline_returns_the_complete_lines_so_far(tmp_path: Path) -> None:
    h = await started(tmp_path, token_delay=0.15, deadlineMs=500)
    try:
        assert h.fake is not None
        lines = [f"    v{i} = {i}\n" for i in range(12)]
        h.fake.enqueue(Reply(tokens=lines))
        uri = h.open("d.py", "def f():\n\n")
        result = texts(await asyncio.wait_for(ask(h, uri, 1, 0), 10))
        assert len(result) == 1
        shown = result[0] + "\n"
        k = shown.count("\n")
        assert 1 <= k < len(lines)
        assert shown == "".join(lines[:k])  # whole lines only, in order
    finally:
        await h.stop()


async def test_model_load_is_not_cancelled_by_a_keystroke(tmp_path: Path) -> None:
    h = await started(tmp_path)
    try:
        assert h.fake is not None
        h.fake.enqueue(Reply(tokens=["1", " + 1", " + 1"], first_token_delay=1.0, token_delay=0.2))
        h.fake.enqueue(Reply(tokens=["2"]))
        uri = h.open("l.py", "alpha = \nbeta = \n")
        first = ask(h, uri, 0, 8)
        await h.wait_for(lambda: h.fake is not None and h.fake.streams)
        second = ask(h, uri, 1, 7)
        assert texts(await asyncio.wait_for(first, 5)) == []
        loading = h.fake.streams[0]
        # No "still open 0.4 s later" check: on a loaded box the 1 s load may be over by
        # then. A load closed by the keystroke would end with no token sent (below).
        await h.wait_for(lambda: loading.finished, timeout=5)
        assert loading.tokens_sent >= 1  # it ran until the model answered ...
        assert loading.closed_early  # ... and was closed then, not run to the end
        assert texts(await asyncio.wait_for(second, 10)) == ["2"]
        assert any("until the model has loaded" in m.message for m in h.client.log_messages)
    finally:
        await h.stop()


async def test_disabled_language_gets_nothing(tmp_path: Path) -> None:
    h = await started(tmp_path, disabledLanguages=["markdown"])
    try:
        uri = h.open("r.md", "# Title\n\nSome ", language_id="markdown")
        assert texts(await asyncio.wait_for(ask(h, uri, 2, 5), 10)) == []
        assert h.fake is not None and h.fake.generate_requests() == []
    finally:
        await h.stop()


async def test_typing_what_the_model_writes_reuses_the_running_stream(tmp_path: Path) -> None:
    h = await started(tmp_path, token_delay=0.1)
    try:
        assert h.fake is not None
        h.fake.enqueue(Reply(tokens=["sum", "(values", ")", " + 1"]))
        uri = h.open("r.py", "values = [1]\ntotal = \n")
        first = ask(h, uri, 1, 8)
        await h.wait_for(
            lambda: h.fake is not None and h.fake.streams and h.fake.streams[0].tokens_sent >= 1
        )
        change(h, uri, 2, "values = [1]\ntotal = su\n")
        second = ask(h, uri, 1, 10, invoked=False)
        assert texts(await asyncio.wait_for(first, 5)) == []  # superseded, answered
        assert texts(await asyncio.wait_for(second, 10)) == ["m(values) + 1"]
        assert len(h.fake.generate_requests()) == 1  # the running stream was adopted
        assert not h.fake.streams[0].closed_early
    finally:
        await h.stop()


async def test_client_cancel_closes_the_upstream_stream(lsp: Harness) -> None:
    assert lsp.fake is not None
    uri = lsp.open("c.py", "warm = \ncold = \n")
    lsp.fake.enqueue(Reply(tokens=["1"]))  # the model answers once: it counts as loaded
    assert texts(await asyncio.wait_for(ask(lsp, uri, 0, 7), 10)) == ["1"]
    lsp.fake.enqueue(Reply(tokens=[f" x{i}" for i in range(200)], token_delay=0.02))
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=1, character=7),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    pending = asyncio.ensure_future(
        lsp.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="inline-cancel"
        )
    )
    await lsp.wait_for(lambda: len(lsp.fake.streams) == 2 and lsp.fake.streams[1].tokens_sent >= 2)
    lsp.client.cancel_request(types.CancelParams(id="inline-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(pending, 5)
    stream = lsp.fake.streams[1]
    await lsp.wait_for(lambda: stream.finished, timeout=5)
    assert stream.closed_early
    assert stream.tokens_sent < 200


async def test_selected_completion_item_is_extended(lsp: Harness) -> None:
    """With the suggest widget open (VS Code), complete after the selected item."""
    assert lsp.fake is not None
    uri = lsp.open("sel.py", "import os\nos.pa\n")
    lsp.fake.enqueue(Reply(tokens=["(", "'a', 'b')"]))
    word = types.Range(start=types.Position(line=1, character=3), end=types.Position(1, 5))
    result = await asyncio.wait_for(
        lsp.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=1, character=5),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic,
                    selected_completion_info=types.SelectedCompletionInfo(
                        range=word, text="path.join"
                    ),
                ),
            )
        ),
        10,
    )
    assert isinstance(result, types.InlineCompletionList)
    (item,) = result.items
    assert item.insert_text == "path.join('a', 'b')"
    assert item.range == word
    (body,) = lsp.fake.generate_requests()
    assert body["prompt"] == "import os\nos.path.join"
    assert body["suffix"] == "\n"


async def test_chat_prompt_for_a_model_without_fim(tmp_path: Path) -> None:
    chat_model = "llama3.2:latest"  # no `insert`, no known FIM family
    fake = FakeOllama([CODER, CHAT])
    fake.start()
    h = await start_server(
        tmp_path,
        fake,
        editor_settings={"model": CODER_NAME, "completion": {"model": chat_model}},
    )
    try:
        uri = h.open("c.py", "x = \n")
        fake.enqueue(Reply(tokens=["```python\n", "42", "\n```"]))
        assert texts(await asyncio.wait_for(ask(h, uri, 0, 4), 10)) == ["42"]
        assert fake.generate_requests() == []
        (body,) = fake.chat_requests()
        system, user = body["messages"]
        assert system["role"] == "system" and "code completion engine" in system["content"]
        assert user == {
            "role": "user",
            "content": "```python\nx = <CURSOR>\n\n```\nText to insert at <CURSOR>:",
        }
        assert {k: v for k, v in body.items() if k != "messages"} == {
            "model": chat_model,
            "stream": True,
            "options": {"temperature": 0.1, "num_predict": 64, "num_ctx": 8192},
            "keep_alive": "30m",
            "think": False,
        }
        reason = [m.message for m in h.client.log_messages if "FIM mode for" in m.message]
        assert reason and ": chat (" in reason[0]
    finally:
        await h.stop()
