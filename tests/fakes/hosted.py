"""What the fake hosted APIs (Anthropic, OpenAI-compatible) share: records and faults.

Each fake is one `tests.fakes.http.LoopbackServer`, so a test can run several at once (one
per endpoint of a provider) and take any of them offline.  The
wire format and the exact error bodies live in the subclasses (`tests.fakes.anthropic`,
`tests.fakes.openai`); this module only knows HTTP, as `tests.fakes.http` does.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes.http import Exchange, HttpRequest, RecordingServer, json_body

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


class FakeHostedApi(RecordingServer[RecordedRequest, RecordedStream]):
    """Recording and fault rules of one fake endpoint (thread-safe for tests)."""

    label = "fake API"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 token_delay: float = 0.0) -> None:
        super().__init__(host=host, port=port)
        self.token_delay = token_delay
        self._replies: list[Reply] = []
        self._faults: list[_FaultRule] = []

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
    def wait_for_request(self, path: str | None = None, timeout: float = 10.0,
                         count: int = 1) -> RecordedRequest:
        def found() -> RecordedRequest | None:
            hits = [r for r in self._requests if path is None or r.path == path]
            return hits[count - 1] if len(hits) >= count else None

        return self._wait_until(found, timeout,
                                lambda: f"no request #{count} to {path} in {timeout} s")

    def wait_for_stream_end(self, timeout: float = 10.0) -> RecordedStream:
        def found() -> RecordedStream | None:
            last = self._streams[-1] if self._streams else None
            return last if last is not None and last.ended_at is not None else None

        return self._wait_until(found, timeout, lambda: f"no finished stream in {timeout} s")

    def _record(self, request: HttpRequest) -> RecordedRequest:
        return self._add_request(RecordedRequest(
            request.method, request.path, dict(request.headers), request.body,
            json_body(request), time.monotonic()))

    def open_stream(self, rec: RecordedRequest) -> RecordedStream:
        return self._add_stream(RecordedStream(rec))

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

    # -- answering ------------------------------------------------------------------------
    async def handle(self, exchange: Exchange) -> None:
        rec = self._record(exchange.request)
        with contextlib.suppress(Abort):
            await self.dispatch(exchange, rec)

    async def dispatch(self, ex: Exchange, rec: RecordedRequest) -> None:
        raise NotImplementedError

    # -- faults ---------------------------------------------------------------------------
    async def _pre_fault(self, ex: Exchange, fault: Fault) -> bool:
        """Apply a fault that acts before the response head; True when it answered."""
        if fault.kind == "status":
            await self._status_fault(ex, fault)
            return True
        if fault.kind == "disconnect" and fault.after_tokens == 0:
            ex.abort()
            return True
        if fault.kind == "stall" and fault.after_tokens == 0:
            await self.pause(ex, fault.seconds)
        return False

    async def _mid_stream_fault(self, ex: Exchange, record: RecordedStream,
                                fault: Fault | None, index: int) -> None:
        """Error event, drop or stall after `index` tokens (the index-0 drop and stall
        happen before the response head, in `_pre_fault`)."""
        if fault is None or fault.after_tokens != index or fault.kind == "status":
            return
        if index == 0 and fault.kind in ("disconnect", "stall"):
            return
        if fault.kind == "error_event":
            await self.send_event(ex, record, self._error_event(fault))
            record.completed = True
            await ex.end_stream()
            raise Abort
        if fault.kind == "disconnect":
            ex.abort()
            raise Abort
        await self.pause(ex, fault.seconds)

    async def _status_fault(self, ex: Exchange, fault: Fault) -> None:
        """Answer a `status` fault in the protocol's error shape."""
        raise NotImplementedError

    def _error_event(self, fault: Fault) -> bytes:
        """The protocol's in-stream error event for an `error_event` fault."""
        raise NotImplementedError
