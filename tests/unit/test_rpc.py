"""AethelProtocol answers every request (see aethel_lsp/rpc.py); these tests also fail if
a pygls release renames the private members it relies on."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from aethel_lsp.lsp.rpc import AethelProtocol, UnparsableRequest
from aethel_lsp.lsp.server import create_server


class Captured:
    def __init__(self, protocol: AethelProtocol) -> None:
        self.errors: list[tuple[Any, int, str]] = []
        protocol._send_response = self.send  # type: ignore[method-assign]

    def send(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        self.errors.append((msg_id, error.code, error.message))


def _protocol() -> AethelProtocol:
    protocol = create_server().protocol
    assert isinstance(protocol, AethelProtocol)
    return protocol


def test_private_members_still_exist() -> None:
    protocol = _protocol()
    assert callable(protocol._send_response)
    assert protocol._shutdown is False
    assert callable(protocol._send_data)


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
