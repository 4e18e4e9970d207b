"""What the fake hosted APIs (Anthropic, OpenAI-compatible) share: lifecycle, records, faults.

Each fake is one HTTP server on 127.0.0.1 with its own thread and event loop, so a test can
run several at once (one per endpoint of a provider) and take any of them offline.  The
wire format and the exact error bodies live in the subclasses (`tests.fakes.anthropic`,
`tests.fakes.openai`); this module only knows HTTP, as `tests.fakes.http` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes.http import BadRequest, Exchange, HttpRequest, read_request

JSON_CT = "application/json"
SSE_CT = "text/event-stream; charset=utf-8"

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """Word-ish tokens that concatenate back to `text` exactly."""
    return _TOKEN_RE.findall(text)


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass
class Reply:
    """The next generation's answer; counts left `None` are derived from the text."""

    text: str = "Hello from the fake."
    tokens: list[str] | None = None
    input_tokens: int | None = None  # None: words of the prompt
    output_tokens: int | None = None  # None: tokens sent
    stop_reason: str | None = None  # None: the protocol's normal end
    token_delay: float | None = None  # None: the fake's `token_delay`
    first_token_delay: float = 0.0

    def token_list(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_tokens(self.text)


FaultKind = Literal["status", "error_event", "stall", "disconnect"]


@dataclass
class Fault:
    """A misbehaviour for the next matching request(s); build with the classmethods.

    `status` faults are rendered in the fake's own error-body shape (`error_type` and
    `message` fill it); `retry_after` adds that header.
    """

    kind: FaultKind
    status: int = 500
    error_type: str = ""
    message: str = ""
    retry_after: str | None = None
    after_tokens: int = 0
    seconds: float = 0.0
    details: dict[str, Any] | None = None

    @classmethod
    def http(cls, status: int, error_type: str = "", message: str = "",
             retry_after: str | None = None) -> Fault:
        return cls("status", status=status, error_type=error_type, message=message,
                   retry_after=retry_after)

    @classmethod
    def error_event(cls, after_tokens: int = 0, error_type: str = "",
                    message: str = "") -> Fault:
        """HTTP 200, `after_tokens` tokens, then an error inside the stream."""
        return cls("error_event", error_type=error_type, message=message,
                   after_tokens=after_tokens)

    @classmethod
    def stall(cls, seconds: float, after_tokens: int = 0) -> Fault:
        """Nothing for `seconds` (before the response head when `after_tokens` is 0)."""
        return cls("stall", seconds=seconds, after_tokens=after_tokens)

    @classmethod
    def disconnect(cls, after_tokens: int = 0) -> Fault:
        return cls("disconnect", after_tokens=after_tokens)


@dataclass
class _FaultRule:
    fault: Fault
    path: str | None
    times: int


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    json: Any
    at: float

    @property
    def model(self) -> str | None:
        value = self.json.get("model") if isinstance(self.json, dict) else None
        return value if isinstance(value, str) else None


@dataclass
class RecordedStream:
    request: RecordedRequest
    tokens_sent: int = 0
    events: list[bytes] = field(default_factory=list)
    completed: bool = False
    closed_early: bool = False
    ended_at: float | None = None


class Abort(Exception):
    """The client went away or a fault ended the response: stop producing."""


class FakeHostedApi:
    """Lifecycle, recording and fault rules of one fake endpoint (thread-safe for tests)."""

    label = "fake API"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 token_delay: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.token_delay = token_delay
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._replies: list[Reply] = []
        self._faults: list[_FaultRule] = []
        self._requests: list[RecordedRequest] = []
        self._streams: list[RecordedStream] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        if self._thread is not None:
            return self.url
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=self.label, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._start_error is not None:
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
        self._thread = self._loop = None

    def __enter__(self) -> FakeHostedApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_offline(self) -> None:
        """Stop listening and drop every connection: clients get "connection refused"."""
        self._call(self._close_listener())

    def go_online(self) -> None:
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
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve_connection, self.host,
                                                  self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        if server is not None:
            await server.wait_closed()

    # -- scripting ------------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def inject(self, fault: Fault, *, path: str | None = None, times: int = 1) -> None:
        with self._lock:
            self._faults.append(_FaultRule(fault, path, times))

    def clear(self) -> None:
        with self._lock:
            self._replies.clear()
            self._faults.clear()
            self._requests.clear()
            self._streams.clear()

    def take_reply(self) -> Reply:
        with self._lock:
            return self._replies.pop(0) if self._replies else Reply()

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if rule.path is None or rule.path == path:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._faults.remove(rule)
                    return rule.fault
        return None

    # -- records --------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def streams(self) -> list[RecordedStream]:
        with self._lock:
            return list(self._streams)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def bodies(self, path: str) -> list[Any]:
        return [r.json for r in self.requests_to(path)]

    def wait_for_request(self, path: str | None = None, timeout: float = 10.0,
                         count: int = 1) -> RecordedRequest:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                hits = [r for r in self._requests if path is None or r.path == path]
                if len(hits) >= count:
                    return hits[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no request #{count} to {path} in {timeout} s")
                self._changed.wait(remaining)

    def wait_for_stream_end(self, timeout: float = 10.0) -> RecordedStream:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if self._streams and self._streams[-1].ended_at is not None:
                    return self._streams[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no finished stream in {timeout} s")
                self._changed.wait(remaining)

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _record(self, request: HttpRequest) -> RecordedRequest:
        parsed: Any = None
        if request.body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(request.body)
        rec = RecordedRequest(request.method, request.path, dict(request.headers),
                              request.body, parsed, time.monotonic())
        with self._changed:
            self._requests.append(rec)
            self._changed.notify_all()
        return rec

    def open_stream(self, rec: RecordedRequest) -> RecordedStream:
        record = RecordedStream(rec)
        with self._changed:
            self._streams.append(record)
        return record

    def close_stream(self, ex: Exchange, record: RecordedStream) -> None:
        if not record.completed and ex.poll_closed():
            record.closed_early = True
        record.ended_at = time.monotonic()
        self.notify()

    async def send_event(self, ex: Exchange, record: RecordedStream, data: bytes, *,
                         token: bool = False) -> None:
        if not await ex.send_chunk(data):
            raise Abort
        record.events.append(data)
        if token:
            record.tokens_sent += 1
        self.notify()

    async def pause(self, ex: Exchange, seconds: float) -> None:
        if seconds > 0 and await ex.wait(seconds):
            raise Abort

    # -- connection loop ------------------------------------------------------------------
    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
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
                rec = self._record(request)
                with contextlib.suppress(Abort):
                    await self.dispatch(exchange, rec)
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

    async def dispatch(self, ex: Exchange, rec: RecordedRequest) -> None:
        raise NotImplementedError
