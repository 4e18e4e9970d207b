"""Hostile and malformed input against the REAL server process over stdio.

Every bad request must get one clear error response (or, for a notification, be
ignored), and the server must keep serving: each test ends with a follow-up request
that works.  The engine behind the server is the independent strict Ollama emulator
(`tests/fakes/ollama_strict.py`), so the happy paths also run against Go's dialect.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.conftest import isolated_environ
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.ollama_strict import StrictOllama

CODER = "qwen2.5-coder:1.5b"
PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
INVALID_PARAMS = -32602

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def emu() -> Iterator[StrictOllama]:
    with StrictOllama() as server:
        server.default_script.split = "split"
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory, emu: StrictOllama
              ) -> AsyncIterator[Harness]:
    harness = await start_server(
        tmp_path_factory.mktemp("hostile"), None,
        editor_settings={"engine": "ollama", "model": CODER},
        extra_env={"OLLAMA_HOST": emu.url},
    )
    yield harness
    await harness.stop()


async def still_serving(h: Harness) -> None:
    """The follow-up request every test ends with."""
    status = await h.command(protocol.CMD_MODEL_STATUS)
    assert status["available"] is True, status


async def rejected(h: Harness, command: str, args: Any, *, raw: bool = False) -> str:
    """Run a command that must fail with one JSON-RPC error; return its message."""
    params = types.ExecuteCommandParams(command=command,
                                        arguments=args if raw else [args])
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(h.client.workspace_execute_command_async(params), 30)
    message = str(info.value)
    assert "Traceback" not in message
    return message


async def send(h: Harness, method: str, params: dict[str, Any]) -> Any:
    """A request with JSON params, structured into lsprotocol's type for `method`."""
    params_type = types.METHOD_TO_TYPES[method][2]
    typed = h.client.protocol._converter.structure(params, params_type)
    return await asyncio.wait_for(h.client.protocol.send_request_async(method, typed), 15)


# -- executeCommand arguments -------------------------------------------------------


@pytest.mark.parametrize("arguments", [
    None, [], [None], ["a string"], [42], [[1, 2]], [{"uri": 5, "range": SEL}],
    [{"range": SEL}], [{"uri": "", "range": SEL}], [{"uri": "file:///x.py"}],
])
async def test_explain_with_missing_or_wrong_arguments(lsp: Harness, arguments: Any) -> None:
    uri = lsp.open("args.py", PY)
    if arguments and isinstance(arguments[0], dict) and arguments[0].get("uri") == "file:///x.py":
        arguments = [{"uri": uri}]  # an open document, but no range
    message = await rejected(lsp, protocol.CMD_EXPLAIN_SELECTION, arguments, raw=True)
    assert any(word in message for word in ("uri", "range", "arguments", "Argument")), message
    await still_serving(lsp)


@pytest.mark.parametrize("bad_range", [
    "0:0-1:0", [0, 0, 1, 0], {"start": {"line": 0, "character": 0}},
    {"start": {"line": -1, "character": 0}, "end": {"line": 1, "character": 0}},
    {"start": {"line": 0, "character": -5}, "end": {"line": 1, "character": 0}},
    {"start": {"line": "0", "character": 0}, "end": {"line": 1, "character": 0}},
    {"start": {"line": 0.5, "character": 0}, "end": {"line": 1, "character": 0}},
    {"start": {"line": True, "character": 0}, "end": {"line": 1, "character": 0}},
    {"start": {"line": 1, "character": 0}, "end": {"line": 0, "character": 0}},  # reversed
    {"start": {"line": 0, "character": 9}, "end": {"line": 0, "character": 2}},  # reversed
    {"start": {"line": 2**40, "character": 0}, "end": {"line": 2**41, "character": 0}},
])
async def test_invalid_ranges_are_invalid_params(lsp: Harness, bad_range: Any) -> None:
    uri = lsp.open("ranges.py", PY)
    message = await rejected(lsp, protocol.CMD_EXPLAIN_SELECTION,
                             {"uri": uri, "range": bad_range})
    assert "range" in message.lower() or "selection" in message.lower(), message
    await still_serving(lsp)


async def test_character_past_the_line_end_is_clamped_like_lsp_says(
    lsp: Harness, emu: StrictOllama
) -> None:
    uri = lsp.open("clamp.py", PY)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {
        "uri": uri,
        "range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 400}}})
    assert result["text"]
    prompt = json.dumps(emu.requests[-1].body)
    assert "add(a, b):" in prompt and "return a + b" not in prompt
    message = await rejected(lsp, protocol.CMD_EXPLAIN_SELECTION, {
        "uri": uri,
        "range": {"start": {"line": 1, "character": 0}, "end": {"line": 99, "character": 0}}})
    assert "past the end" in message


async def test_unknown_document_is_a_clear_error(lsp: Harness) -> None:
    message = await rejected(lsp, protocol.CMD_EXPLAIN_SELECTION,
                             {"uri": "file:///never/opened.py", "range": SEL})
    assert "file:///never/opened.py" in message or "open" in message.lower(), message
    await still_serving(lsp)


async def test_extra_arguments_are_ignored(lsp: Harness) -> None:
    uri = lsp.open("extra.py", PY)
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION,
                               {"uri": uri, "range": SEL, "bogus": {"deep": [1, 2]},
                                "model": 12})
    assert result["text"] and result["metrics"]["tokensPerSecond"] == 24.0


@pytest.mark.parametrize(("command", "args"), [
    (protocol.CMD_SELECT_MODEL, {}),
    (protocol.CMD_SELECT_MODEL, {"model": 12}),
    (protocol.CMD_SELECT_MODEL, {"model": ["a"]}),
    (protocol.CMD_SELECT_MODEL, {"model": "no-such-model:1b"}),
    (protocol.CMD_SELECT_MODEL, {"model": CODER, "task": "dance"}),
    (protocol.CMD_SELECT_MODEL, {"model": CODER, "task": 5}),
    (protocol.CMD_PULL_MODEL, {}),
    (protocol.CMD_PULL_MODEL, {"model": {"name": "x"}}),
    (protocol.CMD_GENERATE_CONTRACT, {"uri": "file:///nowhere.ae", "range": SEL}),
    (protocol.CMD_IMPROVE_SELECTION, {"uri": None, "range": None}),
    (protocol.CMD_DOCUMENT_SELECTION, {"uri": [], "range": {}}),
    (protocol.CMD_FIX_WITH_AI, {"uri": 3.5}),
])
async def test_other_commands_reject_bad_arguments(lsp: Harness, command: str, args: Any
                                                   ) -> None:
    await rejected(lsp, command, args)
    await still_serving(lsp)


async def test_unknown_command_is_an_error_response(lsp: Harness) -> None:
    await rejected(lsp, "aethel.doesNotExist", {})
    await still_serving(lsp)


async def test_commands_without_arguments_ignore_garbage(lsp: Harness) -> None:
    params = types.ExecuteCommandParams(command=protocol.CMD_THROUGHPUT, arguments=[{"x": 1}])
    result = await asyncio.wait_for(lsp.client.workspace_execute_command_async(params), 30)
    assert "models" in result
    await still_serving(lsp)


# -- text: UTF-16 positions, emoji, huge selections ------------------------------------


async def test_emoji_selection_uses_utf16_positions(lsp: Harness, emu: StrictOllama) -> None:
    text = "x = '🙂é'  # ünï\nprint(x)\n"
    uri = lsp.open("emoji.py", text)
    # "x = '" is 5 UTF-16 units, 🙂 is 2 more (a surrogate pair), é is 1.
    await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {
        "uri": uri, "range": {"start": {"line": 0, "character": 5},
                              "end": {"line": 0, "character": 8}}})
    body = emu.requests[-1].body or {}
    sent = json.dumps(body, ensure_ascii=False)
    assert "🙂é" in sent and "x = '🙂" not in sent


async def test_range_inside_a_surrogate_pair_does_not_break(lsp: Harness) -> None:
    uri = lsp.open("surrogate.py", "a = '🙂🙂🙂'\n")
    params = types.ExecuteCommandParams(command=protocol.CMD_EXPLAIN_SELECTION, arguments=[{
        "uri": uri, "range": {"start": {"line": 0, "character": 6},
                              "end": {"line": 0, "character": 9}}}])
    try:
        result = await asyncio.wait_for(lsp.client.workspace_execute_command_async(params), 30)
        assert isinstance(result["text"], str)
    except JsonRpcException as exc:
        assert "Traceback" not in str(exc)
    await still_serving(lsp)


async def test_huge_selection_is_bounded(lsp: Harness, emu: StrictOllama) -> None:
    line = "value = compute(value) + 1  # " + "é" * 40 + "\n"
    text = line * 40_000  # ~3 MB
    uri = lsp.open("huge.py", text)
    params = types.ExecuteCommandParams(command=protocol.CMD_EXPLAIN_SELECTION, arguments=[{
        "uri": uri, "range": {"start": {"line": 0, "character": 0},
                              "end": {"line": 40_000, "character": 0}}}])
    before = len(emu.requests)
    try:
        await asyncio.wait_for(lsp.client.workspace_execute_command_async(params), 60)
    except JsonRpcException as exc:
        assert "Traceback" not in str(exc)
    sent = [r for r in emu.requests[before:] if r.path in ("/api/generate", "/api/chat")]
    # Never ship a 3 MB prompt to a model with a 32k-token context.
    assert all(len(r.raw) < 1_000_000 for r in sent), [len(r.raw) for r in sent]
    await still_serving(lsp)


async def test_thinking_never_leaks_into_the_answer(lsp: Harness, emu: StrictOllama) -> None:
    """Some models (gpt-oss) think even when sent `think: false`."""
    uri = lsp.open("think.py", PY)
    await lsp.command(protocol.CMD_SELECT_MODEL, {"model": "gpt-oss:120b-cloud"})
    try:
        emu.script(thinking=["SECRET-REASONING "], always_think=True)
        emu.script(thinking=["SECRET-REASONING "], always_think=True)
        explained = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
        improved = await lsp.command(protocol.CMD_IMPROVE_SELECTION, {"uri": uri, "range": SEL})
    finally:
        await lsp.command(protocol.CMD_SELECT_MODEL, {"model": CODER})
    assert "SECRET" not in explained["text"] and "SECRET" not in improved["text"]
    reports = [r.message or "" for rs in lsp.client.progress_reports.values() for r in rs
               if isinstance(r, types.WorkDoneProgressReport)]
    assert not any("SECRET" in r for r in reports)
    edits = json.dumps([lsp.client.protocol._converter.unstructure(a) for a in lsp.applied])
    assert "SECRET" not in edits


# -- notifications that make no sense -----------------------------------------------


async def test_did_change_for_an_unopened_document_is_ignored(lsp: Harness) -> None:
    lsp.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri="file:///ghost.py", version=3),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(5, 0), types.Position(6, 0)), text="boo")]))
    lsp.client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri="file:///ghost2.ae")))
    lsp.client.text_document_did_save(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri="file:///ghost3.ae")))
    await still_serving(lsp)
    await rejected(lsp, protocol.CMD_EXPLAIN_SELECTION, {"uri": "file:///ghost.py", "range": SEL})


async def test_did_change_with_out_of_bounds_edit_keeps_the_server_alive(lsp: Harness) -> None:
    uri = lsp.open("edit.ae", "intent a() {\n}\n", language_id="aethel")
    lsp.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(50, 3), types.Position(80, 0)), text="🙂")]))
    await still_serving(lsp)


async def test_cancel_request_for_unknown_ids_is_ignored(lsp: Harness) -> None:
    for request_id in (999_999, "no-such-id", -1):
        lsp.client.protocol.notify(types.CANCEL_REQUEST,
                                   types.CancelParams(id=request_id))
    await still_serving(lsp)


@pytest.mark.parametrize("method", ["textDocument/hover", "textDocument/documentSymbol",
                                    "textDocument/formatting", "textDocument/foldingRange",
                                    "textDocument/semanticTokens/full",
                                    "textDocument/completion", "textDocument/definition",
                                    "textDocument/codeAction"])
async def test_language_features_on_an_unknown_document(lsp: Harness, method: str) -> None:
    uri = "file:///never/opened.ae"
    doc = {"uri": uri}
    far = {"line": 10_000, "character": 10_000}
    params: dict[str, Any] = {"textDocument": doc}
    if method in ("textDocument/hover", "textDocument/completion", "textDocument/definition"):
        params["position"] = far
    if method == "textDocument/formatting":
        params["options"] = {"tabSize": 4, "insertSpaces": True}
    if method == "textDocument/codeAction":
        params["range"] = {"start": far, "end": {"line": 0, "character": 0}}
        params["context"] = {"diagnostics": []}
    try:
        await send(lsp, method, params)
    except JsonRpcException as exc:
        assert "Traceback" not in str(exc)
    await still_serving(lsp)


@pytest.mark.parametrize("position", [(10_000, 0), (0, 10_000), (1, 3)])
async def test_language_features_with_positions_out_of_bounds(lsp: Harness,
                                                              position: tuple[int, int]) -> None:
    uri = lsp.open("pos.ae", "intent a() {\n  guard { x > 0; }\n}\n", language_id="aethel")
    pos = {"line": position[0], "character": position[1]}
    for method in ("textDocument/hover", "textDocument/definition", "textDocument/references",
                   "textDocument/documentHighlight", "textDocument/completion"):
        params: dict[str, Any] = {"textDocument": {"uri": uri}, "position": pos}
        if method == "textDocument/references":
            params["context"] = {"includeDeclaration": True}
        try:
            await send(lsp, method, params)
        except JsonRpcException as exc:
            assert "Traceback" not in str(exc)
    await still_serving(lsp)


@pytest.mark.parametrize("settings", ["x", 5, None, [1], {"aethel": 5},
                                      {"aethel": {"temperature": "hot", "host": ["a"]}},
                                      {"aethel": {"model": None, "maxTokens": 1e400}}])
async def test_did_change_configuration_with_garbage(lsp: Harness, settings: Any) -> None:
    lsp.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=settings))
    await still_serving(lsp)


async def test_did_change_watched_files_with_odd_uris(lsp: Harness) -> None:
    lsp.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri="not a uri", type=types.FileChangeType.Changed),
        types.FileEvent(uri="file:///nonexistent/aethel.toml", type=types.FileChangeType.Deleted),
        types.FileEvent(uri="untitled:Untitled-1", type=types.FileChangeType.Created),
    ]))
    await still_serving(lsp)


async def test_untitled_documents_work(lsp: Harness) -> None:
    uri = "untitled:Untitled-1"
    lsp.client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=PY)))
    result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert result["text"]


async def test_workspace_toml_turning_invalid_while_running(lsp: Harness) -> None:
    path = lsp.root / "aethel.toml"
    path.write_text("temperature = [[[\n", encoding="utf-8")
    try:
        lsp.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=path.as_uri(), type=types.FileChangeType.Changed)]))
        await still_serving(lsp)
        uri = lsp.open("after-toml.py", PY)
        result = await lsp.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
        assert result["text"]
    finally:
        path.unlink()
        lsp.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=path.as_uri(), type=types.FileChangeType.Deleted)]))


# -- configuration: bad TOML, bad initializationOptions ---------------------------------


async def test_invalid_workspace_toml_does_not_stop_the_server(tmp_path: Path,
                                                               emu: StrictOllama) -> None:
    h = await start_server(tmp_path, None, extra_env={"OLLAMA_HOST": emu.url},
                           workspace_files={"aethel.toml": "model = \"unterminated\n[[[\n"})
    try:
        await still_serving(h)
        messages = [m.message for m in h.client.messages]
        diagnostics = [d for uri, ds in h.client.diagnostics.items()
                       if uri.endswith("aethel.toml") for d in ds]
        assert any("aethel.toml" in m for m in messages) or diagnostics
    finally:
        await h.stop()


@pytest.mark.parametrize("options", [
    "just a string", [1, 2, 3], 42, {"temperature": "hot", "maxTokens": -3, "host": 5},
    {"timeouts": "soon", "enabledActions": "all", "model": {"x": 1}},
    {"aethel": {"host": ["a"]}}, {"temperature": 1e308, "maxTokens": 10**30},
    {"host": "::1:11434"}, {"host": "http://[zz::1]:80"},
    {"host": "http://a b:80"},
])
async def test_bad_initialization_options(tmp_path: Path, emu: StrictOllama,
                                          options: Any) -> None:
    h = await start_server(tmp_path, None, extra_env={"OLLAMA_HOST": emu.url},
                           init_options=options)
    try:
        await still_serving(h)
    finally:
        await h.stop()


# -- the wire itself: malformed JSON-RPC frames -----------------------------------------


def _frame(payload: bytes) -> bytes:
    return b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload


def _rpc(obj: Any) -> bytes:
    return _frame(json.dumps(obj).encode())


async def _read_message(stdout: asyncio.StreamReader) -> dict[str, Any]:
    length = 0
    while True:
        line = await stdout.readline()
        if not line:
            raise AssertionError("server closed stdout")
        if line in (b"\r\n", b"\n"):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    data: dict[str, Any] = json.loads(await stdout.readexactly(length))
    return data


async def _response(stdout: asyncio.StreamReader, request_id: Any) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(_read_message(stdout), 20)
        if message.get("id") == request_id and "method" not in message:
            return message


class RawServer:
    """The server process driven with hand-written JSON-RPC frames (no client library)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = proc.stdout

    async def send(self, *frames: bytes) -> None:
        for frame in frames:
            self.stdin.write(frame)
        await self.stdin.drain()

    async def response(self, request_id: Any, timeout: float = 20) -> dict[str, Any]:
        return await asyncio.wait_for(_response(self.stdout, request_id), timeout)

    async def initialize(self, request_id: int = 1) -> None:
        await self.send(_rpc({"jsonrpc": "2.0", "id": request_id, "method": "initialize",
                              "params": {"processId": os.getpid(), "rootUri": None,
                                         "capabilities": {}}}),
                        _rpc({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        assert "capabilities" in (await self.response(request_id))["result"]

    async def model_status(self, request_id: int) -> dict[str, Any]:
        await self.send(_rpc({"jsonrpc": "2.0", "id": request_id,
                              "method": "workspace/executeCommand",
                              "params": {"command": protocol.CMD_MODEL_STATUS}}))
        return await self.response(request_id)


@pytest_asyncio.fixture(loop_scope="module")
async def raw(tmp_path: Path, emu: StrictOllama) -> AsyncIterator[RawServer]:
    env = isolated_environ(tmp_path / "env", {"OLLAMA_HOST": emu.url})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aethel_lsp", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env=env, cwd=str(tmp_path))
    try:
        yield RawServer(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_malformed_frames_do_not_kill_the_server(raw: RawServer) -> None:
    await raw.send(
        _frame(b"{not json"),
        _frame(b"[1, 2, 3]"),
        _frame(b'"a string"'),
        _frame(b"{}"),
        _frame(b'{"jsonrpc": "2.0", "method": "\\u00e9\\ud83d", "params": {}}'),  # lone surrogate
        _rpc({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": "nope"}),
        _rpc({"jsonrpc": "2.0", "method": "$/unknownNotification", "params": {}}),
        _rpc({"jsonrpc": "2.0", "id": 7, "method": "no/such/method", "params": {}}),
    )
    early = await raw.response(7)
    assert early["error"]["code"] == -32002  # ServerNotInitialized (LSP)
    await raw.initialize(9)
    await raw.send(_rpc({"jsonrpc": "2.0", "id": 8, "method": "no/such/method", "params": {}}))
    assert (await raw.response(8))["error"]["code"] == -32601  # MethodNotFound
    status = await raw.model_status(10)
    assert status["result"]["available"] is True
    await raw.send(_rpc({"jsonrpc": "2.0", "id": 11, "method": "shutdown"}))
    await raw.response(11)
    await raw.send(_rpc({"jsonrpc": "2.0", "method": "exit"}))
    assert await asyncio.wait_for(raw.proc.wait(), 10) == 0


async def test_a_request_whose_params_do_not_parse_still_gets_an_error_response(
    raw: RawServer,
) -> None:
    """JSON-RPC: a request (it has an id) gets exactly one response, here -32602."""
    await raw.initialize(1)
    await raw.send(_rpc({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover",
                         "params": "nope"}))
    answer = await raw.response(2, timeout=5)
    assert answer["error"]["code"] == INVALID_PARAMS
    await raw.send(_rpc({"jsonrpc": "2.0", "id": 4, "method": "custom/x"}))  # no params: legal
    assert (await raw.response(4, timeout=5))["error"]["code"] == -32601
    assert (await raw.model_status(3))["result"]["available"] is True


async def test_requests_after_shutdown_are_refused(raw: RawServer) -> None:
    """LSP: after `shutdown`, requests error with InvalidRequest (-32600) until `exit`."""
    await raw.initialize(1)
    await raw.send(_rpc({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
    assert (await raw.response(2))["result"] is None
    answer = await raw.model_status(3)
    assert answer["error"]["code"] == -32600


# -- Aethel documents that are hostile to the parser ------------------------------------

_GARBAGE_AE = "}{ intent ((( guard ; 🙂 \"unterminated\n" * 12_000  # ~450 KB


async def test_deeply_nested_expression_is_a_diagnostic_not_a_crash(lsp: Harness) -> None:
    depth = 1000
    text = "intent a() {\n    guard { " + "(" * depth + "x" + ")" * depth + " > 0; }\n}\n"
    uri = lsp.open("deep.ae", text, language_id="aethel")
    for method in ("textDocument/documentSymbol", "textDocument/foldingRange",
                   "textDocument/semanticTokens/full"):
        await send(lsp, method, {"textDocument": {"uri": uri}})  # no InternalError
    await lsp.wait_for(lambda: lsp.client.diagnostics.get(uri), timeout=10)
    await still_serving(lsp)


async def test_a_garbage_aethel_file_gets_a_bounded_number_of_diagnostics(lsp: Harness) -> None:
    uri = lsp.open("garbage.ae", _GARBAGE_AE, language_id="aethel")
    diagnostics = await lsp.wait_for(lambda: lsp.client.diagnostics.get(uri), timeout=30)
    assert len(diagnostics) <= 1000, len(diagnostics)


async def test_a_garbage_aethel_file_does_not_block_other_requests(lsp: Harness) -> None:
    uri = lsp.open("garbage2.ae", _GARBAGE_AE, language_id="aethel")
    await asyncio.sleep(1.0)  # let the debounced diagnostics run first
    symbols = asyncio.ensure_future(send(lsp, "textDocument/documentSymbol",
                                         {"textDocument": {"uri": uri}}))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await still_serving(lsp)
    waited = time.monotonic() - started
    await asyncio.wait_for(symbols, 60)
    assert waited < 1.5, f"modelStatus waited {waited:.1f} s behind documentSymbol"


async def test_lone_surrogates_in_a_document(lsp: Harness) -> None:
    """JSON lets a client send "\\ud83d" alone; the text is then not encodable as UTF-8."""
    uri = "untitled:surrogate-alone"  # not written to disk: it cannot be UTF-8
    lsp.client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                             text="x = '\ud83d'\ny = '\udcff'\n")))
    for command in (protocol.CMD_EXPLAIN_SELECTION, protocol.CMD_IMPROVE_SELECTION,
                    protocol.CMD_DOCUMENT_SELECTION):
        try:
            await lsp.command(command, {"uri": uri, "range": SEL})
        except JsonRpcException as exc:
            assert exc.code != -32603, f"{command}: internal error {exc}"
    await still_serving(lsp)
