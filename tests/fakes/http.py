"""A minimal HTTP/1.1 server on asyncio streams, just enough for the fake Ollama.

Why not `http.server` or an ASGI framework?  The fake must (a) stream NDJSON/SSE with a
flush per line and per-token delays, (b) notice *promptly* when the client closes a
stream (so a test can assert "the connection was closed within 100 ms of the cancel"),
and (c) misbehave on purpose: stall, send a non-JSON line, drop the socket mid-body.
With asyncio streams all three are a few lines: while waiting between tokens we poll
`reader.at_eof()` (the transport reads the socket in the background), and faults
are plain writes/closes.  The stdlib
`http.server` would need a thread per connection plus `select()` tricks for (b), and an
ASGI server would hide the socket we need for (c).  No dependency beyond the stdlib.

Supported: keep-alive, `Content-Length` and chunked request bodies, `Content-Length`
responses and chunked streaming responses (what Go's net/http sends for Ollama's
streams), HEAD.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Request Entity Too Large",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    499: "Client Closed Request",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Site Overloaded",
}

_ServerT = TypeVar("_ServerT", bound="LoopbackServer")
_T = TypeVar("_T")

POLL_INTERVAL = 0.005  # seconds between checks for a client that went away


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP request we can parse."""


@dataclass
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path or "/"
        self.query = parse_qs(parts.query)

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """Read one request; None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("truncated request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise BadRequest(f"bad request line {lines[0]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError as exc:
            raise BadRequest("bad content-length") from exc
        body = await reader.readexactly(length) if length else b""
    return HttpRequest(method.upper(), target, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            # trailers until an empty line
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Exchange:
    """One request/response on a connection, with streaming and close detection.

    `client_closed` becomes true as soon as the peer's EOF (or a reset) is seen; the
    time is kept in `closed_at` (`time.monotonic()`, comparable with the test's clock
    because the fake runs in the test process).
    """

    def __init__(
        self,
        request: HttpRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.request = request
        self.reader = reader
        self.writer = writer
        self.headers_sent = False
        self.chunked = False
        self.finished = False
        self.aborted = False
        self.client_closed = False
        self.closed_at: float | None = None

    # -- whole responses ---------------------------------------------------------
    async def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        headers.update(extra_headers or {})
        self._write_head(status, headers)
        if self.request.method != "HEAD":
            self.writer.write(body)
        self.finished = True
        await self._drain()

    # -- streamed responses --------------------------------------------------------
    def start_stream(self, status: int, content_type: str) -> None:
        """Send the head of a chunked response (bytes follow with `send_chunk`)."""
        self._write_head(status, {"Content-Type": content_type, "Transfer-Encoding": "chunked"})
        self.chunked = True

    async def send_chunk(self, data: bytes) -> bool:
        """Write one chunk and flush; False when the client has gone away."""
        if self.poll_closed():
            return False
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        return await self._drain()

    async def end_stream(self) -> None:
        if self.poll_closed():
            return
        self.writer.write(b"0\r\n\r\n")
        self.finished = True
        await self._drain()

    async def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early if the client closes; True if it did.

        Polls every few milliseconds without consuming bytes: the asyncio transport keeps
        reading the socket in the background, so a client's FIN shows up as
        `reader.at_eof()` and a reset as `reader.exception()`.
        """
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.poll_closed():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
        return True

    def poll_closed(self) -> bool:
        if self.client_closed:
            return True
        if self.reader.at_eof() or self.reader.exception() is not None or self.writer.is_closing():
            self._mark_closed()
            return True
        return False

    def abort(self) -> None:
        """Drop the connection without finishing the response (a crash, a cut cable)."""
        self.aborted = True
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            transport.abort()

    def close_quietly(self) -> None:
        """Finish by closing the socket (used after a deliberately unterminated body)."""
        with contextlib.suppress(Exception):
            self.writer.close()

    # -- internals ---------------------------------------------------------------------
    def _mark_closed(self) -> None:
        if not self.client_closed:
            self.client_closed = True
            self.closed_at = time.monotonic()

    def _write_head(self, status: int, headers: dict[str, str]) -> None:
        reason = REASONS.get(status, "Unknown")
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if not self.request.keep_alive:
            lines.append("Connection: close")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.headers_sent = True

    async def _drain(self) -> bool:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            self._mark_closed()
            return False
        return True


class LoopbackServer:
    """The lifecycle every fake shares: one server on loopback, its own thread and loop.

    A test can run several at once, take one offline (`go_offline`/`offline`) and bring it
    back on the same port.  Subclasses answer requests in `handle`; the connection loop
    here keeps a connection alive while its responses finish and drops it otherwise.
    """

    label = "fake server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._online = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def online(self) -> bool:
        return self._online

    def start(self) -> str:
        """Start serving on a background thread; returns the base URL."""
        if self._thread is not None:
            return self.url
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=self.label, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.label} did not start within 10 s")
        if self._start_error is not None:
            self._thread.join(1)
            self._thread = None
            raise RuntimeError(f"{self.label} could not start: {self._start_error}")
        return self.url

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_listener(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._thread = None
        self._loop = None

    def __enter__(self: _ServerT) -> _ServerT:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_offline(self) -> None:
        """Stop listening and drop every connection: clients get 'connection refused'."""
        self._call(self._close_listener())

    def go_online(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        self.go_offline()
        try:
            yield
        finally:
            self.go_online()

    def _call(self, coro: Any) -> Any:
        if self._loop is None:
            coro.close()
            raise RuntimeError(f"{self.label} is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def _run(self) -> None:
        self._start_error = None  # read by start() once `_ready` is set
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # report bind errors to start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:  # open keep-alive connections
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._online = True

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        self._online = False
        if server is not None:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        if server is not None:
            await server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    request = await read_request(reader)
                except BadRequest:
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    break
                if request is None:
                    break
                exchange = Exchange(request, reader, writer)
                await self.handle(exchange)
                if exchange.aborted or exchange.client_closed or not exchange.finished:
                    break
                if not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(self, exchange: Exchange) -> None:
        """Answer one request (the subclass's protocol)."""
        raise NotImplementedError


class Recorded(Protocol):
    """What a fake records of a request: at least its path and its parsed JSON body."""

    path: str
    json: Any


RequestT = TypeVar("RequestT", bound=Recorded)
StreamT = TypeVar("StreamT")


def json_body(request: HttpRequest) -> Any:
    """The request body parsed as JSON; None when empty or not JSON."""
    if not request.body:
        return None
    with contextlib.suppress(ValueError):
        return json.loads(request.body)
    return None


class RecordingServer(LoopbackServer, Generic[RequestT, StreamT]):
    """A `LoopbackServer` that records requests and streams for a test to wait on.

    Thread-safe: the server thread appends, the test thread reads and waits.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[RequestT] = []
        self._streams: list[StreamT] = []

    @property
    def requests(self) -> list[RequestT]:
        with self._lock:
            return list(self._requests)

    @property
    def streams(self) -> list[StreamT]:
        with self._lock:
            return list(self._streams)

    def requests_to(self, path: str) -> list[RequestT]:
        return [r for r in self.requests if r.path == path]

    def bodies(self, path: str) -> list[Any]:
        return [r.json for r in self.requests_to(path)]

    def notify(self) -> None:
        """Wake the waiters: a record changed."""
        with self._changed:
            self._changed.notify_all()

    def _add_request(self, record: RequestT) -> RequestT:
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()
        return record

    def _add_stream(self, record: StreamT) -> StreamT:
        with self._changed:
            self._streams.append(record)
            self._changed.notify_all()
        return record

    def _wait_until(self, found: Callable[[], _T | None], timeout: float,
                    failure: Callable[[], str]) -> _T:
        """Block until `found()` (called under the lock) is not None; TimeoutError with
        `failure()` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = found()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(failure())
                self._changed.wait(remaining)


def serve_until_signal(fake: LoopbackServer, banner: str) -> int:
    """Run `fake` for people until SIGINT/SIGTERM; `banner` (may use `{url}`) says where."""
    try:
        url = fake.start()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(banner.format(url=url), flush=True)
    return wait_for_signal(fake)


def wait_for_signal(fake: LoopbackServer) -> int:
    """Keep a started `fake` serving until SIGINT/SIGTERM, then stop it."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    fake.stop()
    return 0
