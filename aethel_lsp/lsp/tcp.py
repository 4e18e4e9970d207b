"""LSP over TCP (`aethel-lsp --tcp`): one client at a time, LSP framing only, optional token.

A TCP port on 127.0.0.1 can be reached by every local process and by web pages (a
browser may POST to it), so pygls' own `start_tcp` is not enough: it reads any header
lines until a `Content-Length`, lets a second connection replace the editor's, and
shuts the server down when any connection closes.  Here:
- a connection whose header lines are not `Content-Length` / `Content-Type` (e.g. an
  HTTP request line), or whose body is not JSON, is closed, and logged once;
- while a client is connected, another connection is closed at once, without touching
  the session; a connection that sends no `initialize` within 10 s is closed, so an idle
  one cannot keep the editor out;
- with a token (`--token-file`), the first message must be `initialize` carrying it in
  `initializationOptions.token`, else the connection gets an error and is closed;
- only the end of a client that got past `initialize` stops the server, as with stdio.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp.lsp.rpc import close_on_shutdown, new_stop_event
from aethel_lsp.lsp.session import AethelServer

log = logging.getLogger(__name__)

MAX_HEADER_LINES = 8
FIRST_MESSAGE_S = 10.0  # a connection that sends no `initialize` cannot hold the slot
MAX_BODY_BYTES = 64 * 1024 * 1024
TOKEN_OPTION = "token"  # initializationOptions.token
_HEADERS = (b"content-length", b"content-type")


class NotLsp(Exception):
    """The peer does not speak LSP base-protocol framing; the sentence says why."""


@dataclass
class _Client:
    started: bool = False  # got past `initialize`: the session is this client's


@dataclass
class _Slot:
    """Who holds the one client slot."""

    busy: bool = False
    refusals_told: bool = False
    exit_code: int = 0  # what `exit` asked for (1 without `shutdown` first)


def serve_tcp(server: AethelServer, bind: str, port: int, token: str | None,
              on_listening: Callable[[], None] | None = None) -> int:
    """Serve LSP on `bind:port` until the client exits (blocks, like `start_io`).

    `on_listening` runs once the port is bound, so "serving on ..." is never said about a
    port that then turns out busy (that is an `OSError` from here, and nothing else).
    Returns the exit status: what `exit` asks for (1 without `shutdown`), else 0.
    """
    stop = new_stop_event(server)
    slot = _Slot()
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(_serve(server, bind, port, token, slot, stop, on_listening))
    return slot.exit_code


async def _serve(
    server: AethelServer, bind: str, port: int, token: str | None, slot: _Slot,
    stop: threading.Event, on_listening: Callable[[], None] | None,
) -> None:

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if slot.busy:
            _refuse(server, slot, f"Refused a second connection from {peer}: aethel-lsp --tcp "
                    "serves one client at a time.")
            await _close(writer)
            return
        slot.busy = True
        client = _Client()
        try:
            await _serve_client(server, reader, writer, token, client, stop)
        except SystemExit as exc:  # pygls' `exit` handler: end the server, not the loop
            slot.exit_code = exc.code if isinstance(exc.code, int) else 1
        except NotLsp as exc:
            _refuse(server, slot, f"Closed the connection from {peer}: {exc}")
        finally:
            slot.busy = False
            await _close(writer)
        if client.started:  # the editor went away: stop, as with stdio
            server.shutdown()  # type: ignore[no-untyped-call]

    tcp = await asyncio.start_server(on_connection, bind, port)
    close_on_shutdown(server, tcp)
    log.info("Serving LSP on %s", ", ".join(str(s.getsockname()) for s in tcp.sockets))
    if on_listening is not None:
        on_listening()
    async with tcp:
        with contextlib.suppress(asyncio.CancelledError):
            await tcp.serve_forever()


async def _serve_client(
    server: AethelServer,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    token: str | None,
    client: _Client,
    stop: threading.Event,
) -> None:
    """Pump messages until the end of the stream (or the server stops)."""
    protocol = server.protocol
    while not stop.is_set():
        if client.started:
            body = await read_message(reader)
        else:
            try:
                body = await asyncio.wait_for(read_message(reader), FIRST_MESSAGE_S)
            except asyncio.TimeoutError:
                raise NotLsp(f"no `initialize` within {FIRST_MESSAGE_S:g} s.") from None
        if body is None:
            return
        data = _json(body)
        if not client.started:
            if not _admit(data, token):
                _answer_refusal(writer, data)
                raise NotLsp("the first message was not `initialize` with the right token "
                             "(initializationOptions.token, see --token-file).")
            protocol.set_writer(writer)
            client.started = True
        try:
            # Decoded once above; only the envelope is structured (its inner dicts are data).
            protocol.handle_message(protocol.structure_message(data))
        except Exception as exc:  # as pygls' own loop: one bad message never ends the session
            log.exception("Unable to handle message")
            server.report_server_error(exc, JsonRpcException)


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One LSP message body; None at a clean end of stream; `NotLsp` for anything else."""
    length: int | None = None
    for _ in range(MAX_HEADER_LINES + 1):
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and length is None:
                return None
            raise NotLsp("the stream ended inside a message header.") from None
        except asyncio.LimitOverrunError:
            raise NotLsp("a header line is too long for LSP.") from None
        if line == b"\r\n":
            break
        name, colon, value = line[:-2].partition(b":")
        if not colon or name.strip().lower() not in _HEADERS:
            shown = line[:40].decode("ascii", "replace").strip()
            raise NotLsp(f"{shown!r} is not an LSP header (an HTTP request?).")
        if name.strip().lower() == b"content-length":
            length = _length(value.strip())
    else:
        raise NotLsp("too many header lines for LSP.")
    if length is None:
        raise NotLsp("a message without Content-Length.")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise NotLsp("the stream ended inside a message body.") from None


def _length(value: bytes) -> int:
    if not value.isdigit() or int(value) > MAX_BODY_BYTES:
        raise NotLsp(f"Content-Length must be a number up to {MAX_BODY_BYTES}.")
    return int(value)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NotLsp("the message body is not JSON.") from None


def _admit(data: Any, token: str | None) -> bool:
    """The first message: `initialize`, with the token when one is required (then removed)."""
    if not isinstance(data, dict) or data.get("method") != types.INITIALIZE:
        return False
    params = data.get("params")
    options = params.get("initializationOptions") if isinstance(params, dict) else None
    sent = options.pop(TOKEN_OPTION, None) if isinstance(options, dict) else None
    if token is None:
        return True
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), token.encode())


def _answer_refusal(writer: asyncio.StreamWriter, data: Any) -> None:
    """An error response for a refused `initialize`, so a real client says why."""
    if not isinstance(data, dict) or "id" not in data:
        return
    error = {"code": -32600, "message": "aethel-lsp --tcp: the first request must be "
             "`initialize` with initializationOptions.token (the content of --token-file)."}
    body = json.dumps({"jsonrpc": "2.0", "id": data["id"], "error": error}).encode()
    writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def _refuse(server: AethelServer, slot: _Slot, why: str) -> None:
    """One stderr line per refused connection; the editor hears of the first one only."""
    if not slot.refusals_told and server.protocol.writer is not None:
        slot.refusals_told = True
        server.log(f"{why} (Further refusals are only written to stderr.)",
                   types.MessageType.Warning)  # also writes the stderr line
    else:
        log.warning("%s", why)


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2.0)
