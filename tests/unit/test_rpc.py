"""AethelProtocol answers every request (see aethel_lsp/rpc.py); these tests also fail if
a pygls release renames the private members it relies on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types

from aethel_lsp.lsp.rpc import AethelProtocol, UnparsableRequest
from aethel_lsp.lsp.server import create_server


class Captured:
    def __init__(self, protocol: AethelProtocol) -> None:
        self.errors: list[tuple[Any, int, str]] = []
        protocol._send_response = self.send  # type: ignore[method-assign]

    def send(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        self.errors.append((msg_id, error.code, error.message))


def _protocol(*, initialized: bool = True) -> AethelProtocol:
    """A fresh protocol; `initialized` skips LSP's rule that `initialize` comes first."""
    protocol = create_server().protocol
    assert isinstance(protocol, AethelProtocol)
    protocol.initialize_received = initialized
    return protocol


def test_private_members_still_exist() -> None:
    protocol = _protocol()
    assert callable(protocol._send_response)
    assert protocol._shutdown is False
    assert callable(protocol._send_data)
    server = protocol._server
    assert server._stop_event is None and server._server is None
    assert callable(server._report_server_error)


def test_every_outgoing_message_loses_known_key_values() -> None:
    server = create_server()
    server.session.env = {"OPENAI_API_KEY": "sk-secret-value-12345"}
    sent: list[str] = []
    server.protocol.set_writer(_Collect(sent))
    server.window_log_message(
        types.LogMessageParams(type=types.MessageType.Error, message="echo sk-secret-value-12")
    )
    server.protocol.notify(types.PROGRESS, types.ProgressParams(
        token="t", value=types.WorkDoneProgressEnd(message="Failed: 'sk-secret-value-12345'")))
    assert sent and not any("sk-secret-value" in text for text in sent)
    assert all("[REDACTED]" in text for text in sent)


class _Collect:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.sink.append(data.decode())

    def close(self) -> None:
        pass


def test_request_with_bad_params_becomes_a_marker_with_its_id() -> None:
    protocol = _protocol()
    bad = protocol.structure_message(
        {"jsonrpc": "2.0", "id": 7, "method": "textDocument/hover", "params": "nope"}
    )
    assert isinstance(bad, UnparsableRequest) and bad.id == 7
    captured = Captured(protocol)
    protocol.handle_message(bad)
    ((msg_id, code, message),) = captured.errors
    assert (msg_id, code) == (7, -32602) and "textDocument/hover" in message


def test_unknown_method_is_method_not_found() -> None:
    protocol = _protocol()
    bad = protocol.structure_message({"jsonrpc": "2.0", "id": 8, "method": "custom/x"})
    captured = Captured(protocol)
    protocol.handle_message(bad)
    assert captured.errors[0][:2] == (8, -32601)


def test_requests_after_shutdown_are_refused() -> None:
    protocol = _protocol()
    protocol._shutdown = True
    captured = Captured(protocol)
    message = protocol.structure_message(
        {
            "jsonrpc": "2.0",
            "id": 9,
            "method": types.WORKSPACE_EXECUTE_COMMAND,
            "params": {"command": "aethel.modelStatus"},
        }
    )
    protocol.handle_message(message)
    assert captured.errors[0][:2] == (9, -32600)


def test_an_expected_error_is_answered_in_one_log_line(caplog: Any) -> None:
    """A handler's JsonRpcException (our sentence for the user) is no traceback."""
    import asyncio
    import logging

    from pygls.exceptions import JsonRpcException

    protocol = _protocol()
    assert callable(protocol._send_handler_result) and isinstance(protocol._request_futures, dict)
    captured = Captured(protocol)
    loop = asyncio.new_event_loop()
    try:
        future: asyncio.Future[Any] = loop.create_future()
        future.set_exception(JsonRpcException("Ollama is not running at h", code=-32803))
        protocol._request_futures[5] = future
        with caplog.at_level(logging.DEBUG):
            protocol._send_handler_result(future, msg_id=5)
    finally:
        loop.close()
    assert captured.errors == [(5, -32803, "Ollama is not running at h")]
    assert 5 not in protocol._request_futures
    assert "Traceback" not in caplog.text and "Ollama is not running" in caplog.text


# -- bounded bookkeeping (pygls #607/#608) ----------------------------------------------


def test_pygls_internals_we_work_around_keep_their_shape() -> None:
    """Fails when a pygls release changes what `AethelProtocol` overrides or prunes."""
    import inspect

    from pygls.progress import Progress
    from pygls.protocol import JsonRPCProtocol

    params = list(inspect.signature(JsonRPCProtocol._execute_handler).parameters)
    assert params == ["self", "msg_id", "handler", "callback", "args", "kwargs"]
    params = list(inspect.signature(JsonRPCProtocol.send_request).parameters)
    assert params == ["self", "method", "params", "callback", "msg_id"]
    protocol = _protocol()
    assert isinstance(protocol._request_futures, dict)
    assert isinstance(protocol._result_types, dict)
    assert isinstance(protocol.progress, Progress)
    assert isinstance(protocol.progress.tokens, dict)
    # Our shutdown replaces pygls' builtin one (registered by its method name).
    assert protocol.fm.builtin_features[types.SHUTDOWN].__func__ is AethelProtocol.lsp_shutdown


class Sink:
    """A writer that keeps nothing (the tests look at the protocol's maps)."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _message(protocol: Any, data: dict[str, Any]) -> Any:
    return protocol.structure_message({"jsonrpc": "2.0", **data})


async def _drive_edits(protocol: Any, changes: int) -> None:
    protocol.set_writer(Sink())
    uri = "file:///tmp/My%20Project%20(1)/a.txt"
    init = {"processId": None, "rootUri": None, "capabilities": {}}
    protocol.handle_message(_message(protocol, {"id": 1, "method": "initialize", "params": init}))
    opened = {"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1, "text": ""}}
    did_open = {"method": "textDocument/didOpen", "params": opened}
    protocol.handle_message(_message(protocol, did_open))
    for version in range(2, changes + 2):
        change = {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"text": f"v{version}"}],
        }
        protocol.handle_message(
            _message(protocol, {"method": "textDocument/didChange", "params": change})
        )
    for _ in range(5):  # let the done callbacks run
        await asyncio.sleep(0)


async def test_notifications_and_generator_steps_leave_no_futures_behind() -> None:
    protocol = _protocol(initialized=False)
    await _drive_edits(protocol, 200)
    assert protocol.bookkeeping_sizes() == {
        "request_futures": 0,
        "result_types": 0,
        "progress_tokens": 0,
    }


async def test_plain_pygls_still_leaks_so_the_workaround_is_still_needed() -> None:
    """When this fails, pygls fixed #607: the pruning in AethelProtocol can go."""
    from pygls.lsp.server import LanguageServer

    bare = LanguageServer("bare", "0")
    await _drive_edits(bare.protocol, 50)
    assert len(bare.protocol._request_futures) >= 50


async def test_requests_we_send_forget_their_result_type_on_error_and_cancel() -> None:
    protocol = _protocol()
    protocol.set_writer(Sink())
    failed = protocol.send_request(types.WORKSPACE_APPLY_EDIT, None)
    (failed_id,) = protocol._request_futures
    error = {"id": failed_id, "error": {"code": -32603, "message": "no"}}
    protocol.handle_message(_message(protocol, error))
    assert failed.exception() is not None
    abandoned = protocol.send_request(types.WINDOW_WORK_DONE_PROGRESS_CREATE, None)
    abandoned.cancel()  # e.g. our timeout gave up waiting for the client
    assert protocol.bookkeeping_sizes()["result_types"] == 0
    assert protocol.bookkeeping_sizes()["request_futures"] == 0


# -- framing ---------------------------------------------------------------------------


def _framed(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _reader(data: bytes, limit: int = 1 << 20) -> Any:
    import io

    from aethel_lsp.lsp.rpc import ChunkInput, FrameReader

    stream = io.BytesIO(data)
    return FrameReader(ChunkInput(stream.read, chunk=7), lambda: limit)  # tiny reads


def _bodies(reader: Any) -> list[bytes]:
    out = []
    while (frame := reader.next_frame()) is not None:
        out.append(frame.body)
    return out


def test_frames_are_read_with_or_without_a_content_type() -> None:
    typed = b"Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc\r\n\r\n{}"
    assert _bodies(_reader(_framed(b'{"a":1}') + typed)) == [b'{"a":1}', b"{}"]


def test_a_malformed_content_length_loses_one_message_and_resyncs() -> None:
    data = b"Content-Length: abc\r\n\r\n" + b'{"lost":1}' + _framed(b'{"next":2}') + _framed(b"{}")
    assert _bodies(_reader(data)) == [b'{"next":2}', b"{}"]


def test_garbage_between_messages_is_skipped() -> None:
    data = _framed(b"{}") + b"garbage\r\nmore" + _framed(b'{"b":2}')
    assert _bodies(_reader(data)) == [b"{}", b'{"b":2}']


def test_a_body_over_the_limit_is_refused_without_being_kept() -> None:
    big = b'{"jsonrpc":"2.0","id":5,"method":"workspace/executeCommand","params":"' + (
        b"x" * 500_000
    ) + b'"}'
    reader = _reader(_framed(big) + _framed(b"{}"), limit=1000)
    refused = reader.next_frame()
    assert refused.refused_size == len(big) and len(refused.body) <= 64 * 1024
    assert reader.next_frame().body == b"{}"


def test_input_that_is_not_lsp_at_all_ends_with_a_reason() -> None:
    from aethel_lsp.lsp import rpc
    from aethel_lsp.lsp.rpc import FramingLost

    reader = _reader(b"x" * (rpc.GARBAGE_MAX + 10))
    with pytest.raises(FramingLost, match="without an LSP header"):
        reader.next_frame()


def test_lifecycle_order_before_and_after_initialize() -> None:
    protocol = _protocol(initialized=False)
    captured = Captured(protocol)
    early = _message(protocol, {"id": 3, "method": "textDocument/hover", "params": {
        "textDocument": {"uri": "file:///a"}, "position": {"line": 0, "character": 0}}})
    protocol.handle_message(early)
    assert captured.errors[-1][:2] == (3, -32002)
    protocol.set_writer(Sink())
    init = {"processId": None, "rootUri": None, "capabilities": {}}
    protocol.handle_message(_message(protocol, {"id": 4, "method": "initialize", "params": init}))
    protocol.handle_message(_message(protocol, {"id": 5, "method": "initialize", "params": init}))
    assert captured.errors[-1][:2] == (5, -32600)


def test_a_cancel_for_an_answered_request_is_not_a_warning(caplog: Any) -> None:
    """VS Code cancels requests that were already answered, routinely: no warning line."""
    import asyncio
    import logging

    protocol = _protocol()
    assert callable(super(AethelProtocol, protocol)._handle_cancel_notification)
    with caplog.at_level(logging.DEBUG):
        protocol._handle_cancel_notification(404)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    loop = asyncio.new_event_loop()
    try:
        pending: asyncio.Future[Any] = loop.create_future()
        protocol._request_futures[405] = pending
        protocol._handle_cancel_notification(405)  # a live request is still cancelled
        assert pending.cancelled()
    finally:
        loop.close()
