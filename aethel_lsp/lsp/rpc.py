"""The JSON-RPC protocol of aethel-lsp: pygls' LSP protocol, with every request answered
and bounded memory.

JSON-RPC and LSP promise that each request gets exactly one response.  pygls 2 breaks
that in two cases, which this subclass fixes:
- a request whose `params` do not match the method's type fails while the message is
  decoded, so its id is lost: pygls shows "Error in server: Invalid Params" to the user
  and never answers.  Here the request is answered with InvalidParams (-32602), and the
  client's mistake is only logged.
- after `shutdown`, pygls silently drops requests; LSP says they must fail with
  InvalidRequest (-32600) until `exit`, so a client waiting for an answer never hangs.
It also keeps expected failures quiet: a handler's `JsonRpcException` (a bad selection,
Ollama not running) is our own sentence for the user, answered as an error response and
logged in one line; pygls would log a 40-line traceback and report it as a server error.

Every outgoing message also passes the server's redactor (`_send_data`), so no key
value leaves in any message, whichever code path wrote the text.

pygls 2.1 also keeps things it never forgets (pygls #607, #608), so a server that lives
for days would grow by kilobytes per message:
- `_request_futures` gets the future of every notification and of every step of a
  built-in generator handler (didOpen, didChange, executeCommand, ...) under a fresh
  uuid, and only request ids are ever removed: here each entry is dropped when its
  future is done;
- `_result_types` keeps the result type of a request we sent until a *successful*
  response: here it is dropped when the request's future is done (error, cancel);
- `progress.tokens` keeps every work-done progress token: `lsp/progress.py` drops its
  own tokens when the progress ends.

Uses pygls private members (`_send_response`, `_shutdown`, `_send_handler_result`,
`_send_data`, `_execute_handler`, `_request_futures`, `_result_types`, and the server's
`_stop_event`, `_server`, `_report_server_error`), all only here and in `cancellation.py`;
`tests/unit/test_rpc.py` fails if a pygls release renames or reshapes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.io_ import StdoutWriter
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.server import JsonRPCServer

from aethel_lsp.engine.redaction import Redactor
from aethel_lsp.lsp.open_documents import document_key

log = logging.getLogger(__name__)


class UnparsableRequest:
    """Stands in for a request whose params could not be decoded (keeps its id)."""

    jsonrpc = "2.0"

    def __init__(self, msg_id: Any, method: str, cause: BaseException) -> None:
        self.id = msg_id
        self.method = method
        self.cause = cause


def _is_request(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and "id" in data
        and isinstance(data.get("method"), str)
        and "result" not in data
        and "error" not in data
    )


DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MIB = 1024 * 1024


class AethelProtocol(LanguageServerProtocol):
    # Set by the server: the redactor that knows the current key values.
    redactor_source: Callable[[], Redactor] | None = None

    def _send_data(self, data: Any) -> None:
        """Every outgoing message (results, errors, progress, messages, logs) loses any
        known key value here, whatever path produced the text (pygls private API)."""
        redactor = self.redactor_source() if self.redactor_source and data else None
        if redactor:
            plain = json.loads(json.dumps(data, default=self._serialize_message))
            data = redactor.known_value(plain)
        super()._send_data(data)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES  # the `maxMessageMb` setting
        self.initialize_received = False
        self._refused_methods: set[str] = set()

    # -- messages from the reader ------------------------------------------------------

    def receive(self, frame: Frame) -> None:
        """Decode and handle one framed message; never raises (the session goes on)."""
        if frame.refused_size:
            self._refuse(frame)
            return
        try:
            message = json.loads(frame.body, object_hook=self.structure_message)
        except ValueError as exc:  # not JSON (or not UTF-8): JSON-RPC's parse error
            log.error("A message is not JSON (%s): %r", exc, frame.body[:80])
            error = JsonRpcParseError(f"Not JSON: {exc}").to_response_error()
            self._send_data(types.ResponseErrorMessage(id=None, error=error))
            return
        except Exception as exc:
            log.exception("Unable to decode a message")
            self._server._report_server_error(exc, JsonRpcException)
            return
        try:
            self.handle_message(message)
        except Exception as exc:
            log.exception("Unable to handle a message")
            self._server._report_server_error(exc, JsonRpcException)

    def _refuse(self, frame: Frame) -> None:
        msg_id, method = refused_request(frame.body)
        text = (
            f"{method}: the message has {frame.refused_size:,} bytes, more than the "
            f"{self.max_message_bytes // MIB} MiB that `maxMessageMb` allows; it was refused"
        )
        log.warning("%s.", text)
        if msg_id is not None:
            self.answer_error(msg_id, JsonRpcInvalidRequest(f"{text}."))
        elif method not in self._refused_methods:  # a notification: tell the user once
            self._refused_methods.add(method)
            self.notify(
                types.WINDOW_SHOW_MESSAGE,
                types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message=f"aethel-lsp: {text} (a document this large is ignored).",
                ),
            )

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if _is_request(data):
                return UnparsableRequest(data["id"], data["method"], exc.__cause__ or exc)
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, UnparsableRequest) and not self._knows(message.method):
            self.answer_error(message.id, JsonRpcMethodNotFound.of(message.method))
            return
        if isinstance(message, UnparsableRequest):
            detail = str(message.cause).splitlines()[0][:200] if str(message.cause) else ""
            log.warning(
                "Invalid params for %s (request %r): %s", message.method, message.id, detail
            )
            self.answer_error(
                message.id,
                JsonRpcInvalidParams(
                    f"Invalid params for {message.method}: they do not match the LSP "
                    f"specification of this method ({detail or 'cannot be decoded'})."
                ),
            )
            return
        method = getattr(message, "method", None)
        if not self._lifecycle_allows(message, method):
            return
        if (
            getattr(self, "_shutdown", False)
            and method is not None
            and method != types.EXIT
            and getattr(message, "id", None) is not None
        ):
            self.answer_error(
                message.id,
                JsonRpcInvalidRequest(
                    f"The server is shutting down: {method} refused (only `exit` is accepted)."
                ),
            )
            return
        super().handle_message(message)

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        """A cancel for a request already answered is routine (editors send one whenever
        the user moves on): a debug line, not pygls' warning in the editor's log."""
        if msg_id not in self._request_futures:
            log.debug("$/cancelRequest for %r, which is already answered", msg_id)
            return
        super()._handle_cancel_notification(msg_id)

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:
        """Answer a finished request; an expected error is one log line, not a traceback."""
        exc = None if future.cancelled() else future.exception()
        if not isinstance(exc, JsonRpcException):
            super()._send_handler_result(future, msg_id=msg_id)
            return
        self._request_futures.pop(msg_id, None)
        log.info("Request %r failed: %s", msg_id, str(exc).splitlines()[0][:300])
        self._send_response(msg_id, error=exc.to_response_error())

    # -- bounded bookkeeping (pygls #607/#608) -----------------------------------------

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Callable[..., Any],
        callback: Callable[[Future[Any]], None],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget_future(msg_id, done))

    def send_request(
        self,
        method: str,
        params: Any | None = None,
        callback: Callable[[Any], None] | None = None,
        msg_id: Any = None,
    ) -> Future[Any]:
        msg_id = str(uuid.uuid4()) if msg_id is None else msg_id
        future = super().send_request(method, params, callback, msg_id)

        def forget(done: Future[Any]) -> None:
            self._result_types.pop(msg_id, None)
            self._forget_future(msg_id, done)

        future.add_done_callback(forget)
        return future

    def _forget_future(self, msg_id: Any, done: Any) -> None:
        """Drop `msg_id`'s entry if it is still `done` (ids are never reused)."""
        if self._request_futures.get(msg_id) is done:
            self._request_futures.pop(msg_id, None)

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """pygls' shutdown, cancelling from a copy of the map: a cancelled future's
        callbacks remove its entry, which would break pygls' loop over the live map."""
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True
        return None

    def bookkeeping_sizes(self) -> dict[str, int]:
        """How many entries pygls' internal maps hold (the soak benchmark prints them)."""
        return {
            "request_futures": len(self._request_futures),
            "result_types": len(self._result_types),
            "progress_tokens": len(self.progress.tokens),
        }

    def _lifecycle_allows(self, message: Any, method: str | None) -> bool:
        """LSP's order: nothing but `initialize` (and `exit`) before `initialize`, which
        comes once; changes to documents the server never got are dropped."""
        msg_id = getattr(message, "id", None)
        if method is None or method == types.EXIT:
            return True  # a response from the client, or exit (always allowed)
        if method == types.INITIALIZE and msg_id is not None:
            if self.initialize_received:
                self.answer_error(
                    msg_id, JsonRpcInvalidRequest("The server is already initialized.")
                )
                return False
            self.initialize_received = True
            return True
        if not self.initialize_received:
            if msg_id is not None:
                self.answer_error(
                    msg_id,
                    JsonRpcServerNotInitialized(
                        f"{method} before `initialize`: send `initialize` first."
                    ),
                )
            else:
                log.info("Dropped %s: it came before `initialize`.", method)
            return False
        if method == types.TEXT_DOCUMENT_DID_CHANGE and not self._is_open(message):
            log.warning("Dropped a change to a document that is not open (refused as too large?)")
            return False
        return True

    def _is_open(self, message: Any) -> bool:
        uri = getattr(getattr(getattr(message, "params", None), "text_document", None), "uri", "")
        return isinstance(uri, str) and document_key(uri) in self.workspace.text_documents

    def _knows(self, method: str) -> bool:
        return method in self.fm.features or method in self.fm.builtin_features

    def answer_error(self, msg_id: Any, error: JsonRpcException) -> None:
        """Send one error response for request `msg_id` (pygls private API)."""
        self._send_response(msg_id, error=error.to_response_error())


# -- framing: Content-Length headers over stdio ---------------------------------------------
#
# pygls' reader never recovers from a malformed header (it reads the body as header
# lines, each glued to the next message's header: deaf forever) and buffers any
# message whole.  This reader resyncs on the next `Content-Length:` (the broken
# message is lost, and logged), refuses a body larger than the limit without holding
# it (the request is answered with an error; the session goes on), and ends the
# process, with the reason logged, when the input stops looking like LSP at all.

HEADER_LINE_MAX = 64 * 1024  # a read of one header line (a longer one is read in pieces)
GARBAGE_MAX = 16 * 1024 * 1024  # bytes without a header before we give up on the input
SNIFF_BYTES = 64 * 1024  # how much of a refused body is kept to find its id
DISCARD_CHUNK = 1024 * 1024
_CONTENT_LENGTH = b"content-length:"
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")')
_METHOD = re.compile(rb'"method"\s*:\s*"([^"\\]{1,200})"')


class FramingLost(Exception):
    """The input is not LSP framing any more (the reason is the message)."""


@dataclass(frozen=True)
class Frame:
    """One message body, or (`refused_size` > 0) the first bytes of one too large."""

    body: bytes
    refused_size: int = 0


class ChunkInput:
    """`readline(limit)` and `read(n)` over a function that returns some bytes (b"" at
    the end), e.g. `os.read` on stdin's descriptor: a thread blocked in `os.read` holds
    no lock of Python's buffered files, so the process can exit while it waits."""

    def __init__(self, read_some: Callable[[int], bytes], chunk: int = 65536) -> None:
        self._read_some = read_some
        self._chunk = chunk
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._read_some(self._chunk)
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def readline(self, limit: int) -> bytes:
        while True:
            end = self._buffer.find(b"\n", 0, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buffer) >= limit or not self._fill():
                return self._take(min(limit, len(self._buffer)))

    def read(self, count: int) -> bytes:
        """Up to `count` bytes (fewer only at the end of input)."""
        while len(self._buffer) < count and self._fill():
            pass
        return self._take(min(count, len(self._buffer)))

    def _take(self, count: int) -> bytes:
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken


class FrameReader:
    """Reads LSP messages from a blocking byte stream (runs on its own thread)."""

    def __init__(self, stream: ChunkInput, max_bytes: Callable[[], int]) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self.garbage = 0  # bytes skipped since the last good header

    def next_frame(self) -> Frame | None:
        """The next message (None at end of input)."""
        length = self._headers()
        if length is None:
            return None
        if length > self.max_bytes():
            return self._refuse(length)
        body = self._read_exactly(length)
        return None if body is None else Frame(body)

    def _headers(self) -> int | None:
        length: int | None = None
        tail = b""  # the end of a header-less piece: a header may straddle two reads
        while True:
            raw = self.stream.readline(HEADER_LINE_MAX)
            if not raw:
                return None
            line = tail + raw
            tail = b""
            if line.strip() == b"" and length is not None:
                return length
            at = line.lower().find(_CONTENT_LENGTH)
            if at < 0:
                if length is None or not line.endswith(b"\n"):
                    self._skip(len(raw), line)
                    if not line.endswith(b"\n"):
                        tail = line[-len(_CONTENT_LENGTH) :]
                continue  # another header (Content-Type) or a stray blank line
            if at > 0:
                self._skip(at, line)
            value = line[at + len(_CONTENT_LENGTH) :].strip()
            if not value.isdigit():
                log.error(
                    "Malformed header %r: that message is lost; resyncing on the next one.",
                    line[at : at + 60],
                )
                length = None
                continue
            length = int(value)
            self.garbage = 0

    def _skip(self, count: int, line: bytes) -> None:
        if line.strip():
            log.warning("Skipped %d bytes that are not an LSP header: %r", count, line[:60])
        self.garbage += count
        if self.garbage > GARBAGE_MAX:
            raise FramingLost(
                f"{self.garbage:,} bytes of input without an LSP header: the client is not "
                "speaking LSP (or the stream is corrupt); the server stops."
            )

    def _read_exactly(self, length: int) -> bytes | None:
        parts: list[bytes] = []
        left = length
        while left > 0:
            piece = self.stream.read(left)
            if not piece:
                return None
            parts.append(piece)
            left -= len(piece)
        return b"".join(parts)

    def _refuse(self, length: int) -> Frame | None:
        """Read past a body that is too large, keeping only its first bytes."""
        head = self._read_exactly(min(length, SNIFF_BYTES))
        if head is None:
            return None
        left = length - len(head)
        while left > 0:
            piece = self.stream.read(min(left, DISCARD_CHUNK))
            if not piece:
                return None
            left -= len(piece)
        return Frame(head, refused_size=length)


def refused_request(head: bytes) -> tuple[Any, str]:
    """The id (None for a notification) and method of a refused message's first bytes.

    >>> refused_request(b'{"jsonrpc":"2.0","id":7,"method":"textDocument/didOpen","params":{')
    (7, 'textDocument/didOpen')
    >>> refused_request(b'{"jsonrpc":"2.0","method":"x","params":{"id": 3')
    (None, 'x')
    """
    envelope = head.split(b'"params"', 1)[0]
    found = _ID.search(envelope)
    method = _METHOD.search(envelope)
    msg_id: Any = None
    if found is not None:
        msg_id = json.loads(found.group(1))
    return msg_id, method.group(1).decode("utf-8", "replace") if method else "?"


async def serve_frames(
    protocol: AethelProtocol, stream: ChunkInput, stop: threading.Event
) -> None:
    """Read messages on a daemon thread and hand them to `protocol`, until end of input,
    `stop`, or lost framing (then `FramingLost`)."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Frame | BaseException | None] = asyncio.Queue()
    room = threading.Semaphore(64)  # messages read ahead of the loop, at most
    reader = FrameReader(stream, lambda: protocol.max_message_bytes)

    def pump() -> None:
        while True:
            room.acquire()
            try:
                item: Frame | BaseException | None = reader.next_frame()
            except BaseException as exc:  # handed to the loop, which ends the server
                item = exc
            loop.call_soon_threadsafe(inbox.put_nowait, item)
            if not isinstance(item, Frame):
                return

    threading.Thread(target=pump, name="aethel-lsp-stdin", daemon=True).start()
    while not stop.is_set():
        item = await inbox.get()
        room.release()
        if item is None:
            log.info("End of input: the client closed the connection.")
            return
        if isinstance(item, BaseException):
            raise item
        protocol.receive(item)


def new_stop_event(server: JsonRPCServer) -> threading.Event:
    """An event that pygls' `shutdown()` sets (its private `_stop_event`): our own serving
    loops (stdio here, `tcp.py`) stop on it."""
    stop = threading.Event()
    server._stop_event = stop
    return stop


def close_on_shutdown(server: JsonRPCServer, listener: asyncio.Server) -> None:
    """Have pygls' `shutdown()` close `listener` (its private `_server`)."""
    server._server = listener


def run_stdio(server: JsonRPCServer, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Serve LSP over a byte stream pair until `exit` or end of input; the exit code.

    pygls' own loop swallows the code `exit` asks for (LSP: 1 without `shutdown`).
    """
    protocol = server.protocol
    if not isinstance(protocol, AethelProtocol):
        raise TypeError("run_stdio needs an AethelProtocol")
    stop = new_stop_event(server)
    protocol.set_writer(StdoutWriter(stdout))
    code = 0
    try:
        fd = stdin.fileno()
        asyncio.run(serve_frames(protocol, ChunkInput(lambda n: os.read(fd, n)), stop))
    except FramingLost as exc:
        log.error("%s", exc)
        code = 1
    except BrokenPipeError:
        log.error("The connection to the client is lost; the server stops.")
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:  # `exit`: 0 after `shutdown`, else 1
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        server.shutdown()  # type: ignore[no-untyped-call]  # pygls leaves it untyped
    return code
