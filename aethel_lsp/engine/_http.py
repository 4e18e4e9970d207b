"""Shared HTTP plumbing of the HTTP backends: deadlines, streamed lines, transport errors,
and size caps.

Timeouts are enforced here with asyncio deadlines rather than httpx read timeouts,
because the budgets we care about (connect, first token, between tokens, the whole
request) are phases of one streamed response, and because a deadline also works with
`httpx.MockTransport`, so the unit tests can prove every timeout without a network.

Nothing an upstream sends is trusted to end: a non-streamed body is read up to
`MAX_BODY_BYTES`, a line up to `MAX_LINE_BYTES`, a generation up to its token budget
(`num_predict` / `max_tokens`) plus `TOKEN_MARGIN`, and every request within
`EngineTimeouts.total_s`; past a cap the response is closed and a clear error raised.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import email.utils
import json
import socket
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

from aethel_lsp.engine.errors import (
    EngineError,
    EngineOffline,
    EngineTimeout,
    InvalidRequest,
    MalformedResponse,
)
from aethel_lsp.engine.types import EngineTimeouts, JsonDict

T = TypeVar("T")

# Ollama emits progress lines every ~60 ms while downloading, but verifying the digest
# of a 40 GB model can take minutes without a line.
PULL_IDLE_S = 600.0
MAX_ERROR_TEXT = 400
# A model list or model details are kilobytes; an error page a few more.  Anything
# this large is not an engine speaking its API.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Lines an engine may stream beyond the request's token budget (a line is at most one
# token; the final line and a few empty ones come on top).
TOKEN_MARGIN = 64
# Server-sent-event lines that carry no token (Anthropic sends `event:` before each
# `data:` line); they do not count against the token budget.
_SSE_FIELDS_WITHOUT_DATA = ("event:", ":", "id:", "retry:")


@dataclass(frozen=True)
class Deadline:
    """What to say when a phase runs out of time (the caller knows host and model)."""

    phase: str
    seconds: float
    message: str


async def within(awaitable: Awaitable[T], deadline: Deadline, host: str) -> T:
    """Await with a time budget; running out raises `EngineTimeout(phase=...)`."""
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(max(deadline.seconds, 0.0)):
                return await awaitable
        return await asyncio.wait_for(awaitable, max(deadline.seconds, 0.0))
    except (TimeoutError, asyncio.TimeoutError) as exc:  # distinct classes on Python 3.10
        raise EngineTimeout(deadline.message, phase=deadline.phase, host=host) from exc


def request_timeout(timeouts: EngineTimeouts, *, streaming: bool) -> httpx.Timeout:
    """httpx's own timeouts: connect always; reads only for non-streamed requests.

    Streamed reads are bounded by `within()` deadlines per phase instead (see module doc).
    """
    read = None if streaming else timeouts.between_tokens_s
    return httpx.Timeout(
        connect=timeouts.connect_s,
        read=read,
        write=timeouts.between_tokens_s,
        pool=timeouts.connect_s,
    )


@contextlib.contextmanager
def translate_transport_errors(host: str, offline_message: str, timeouts: EngineTimeouts,
                               what: str) -> Iterator[None]:
    """The one place where httpx's transport exceptions become engine errors.

    A refused or unroutable connection is `EngineOffline` (never "model not found"); a
    connection dropped after the engine answered is a truncated (malformed) response.
    """
    try:
        yield
    except EngineError:
        raise
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise EngineTimeout(
            f"Could not connect to {host} within {timeouts.connect_s:g} s. {offline_message}",
            phase="connect",
            host=host,
        ) from exc
    except httpx.ConnectError as exc:
        if _is_name_resolution_failure(exc):
            raise EngineOffline(
                f"Cannot resolve the host name of {host}: check its spelling (`host` in the "
                "config, OLLAMA_HOST or --host).",
                host=host,
            ) from exc
        raise EngineOffline(offline_message, host=host) from exc
    except httpx.TimeoutException as exc:
        raise EngineTimeout(
            f"{host} did not answer {what} within {timeouts.between_tokens_s:g} s; "
            "it may be overloaded — try again, or raise `timeouts.betweenTokensMs`.",
            phase="read",
            host=host,
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise MalformedResponse(
            f"The connection to {host} broke during {what} ({exc}); the answer is incomplete — "
            "try again, and check the server's log if it keeps happening.",
            host=host,
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise InvalidRequest(f"{host} is not a usable URL ({exc}); fix the `host` setting.",
                             host=host) from exc
    except httpx.HTTPError as exc:
        raise EngineError(f"Talking to {host} failed during {what}: {exc}", host=host) from exc


def error_text(body: str) -> str:
    """The human message inside an error body: Ollama's `{"error": "..."}`, OpenAI's
    `{"error": {"message": "..."}}`, or the raw text (shortened)."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:MAX_ERROR_TEXT]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, str):
            return err
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return text[:MAX_ERROR_TEXT]


def parse_json_object(text: str, *, host: str, what: str) -> JsonDict:
    """A JSON object or `MalformedResponse` naming what was expected."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedResponse(
            f"{host} sent something that is not JSON in {what}: {text[:120]!r}; "
            "is the host really the engine you configured?",
            host=host,
        ) from exc
    if not isinstance(data, dict):
        raise MalformedResponse(f"{host} sent JSON that is not an object in {what}.", host=host)
    return data


class StreamClock:
    """Client-side timing of one generation: start, first token, end (`perf_counter`)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_token: float | None = None

    def mark_token(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()

    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.start) * 1000.0

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0

    def since_first_token_s(self) -> float | None:
        if self.first_token is None:
            return None
        return time.perf_counter() - self.first_token


MAX_LINE_BYTES = 8 * 1024 * 1024  # the official Go client's scanner limit


async def split_lines(chunks: AsyncIterator[bytes], *, host: str) -> AsyncGenerator[str, None]:
    """The lines of a UTF-8 body, split on "\n" only (a trailing "\r" is dropped).

    Not `httpx.Response.aiter_lines()`: that splits like `str.splitlines()`, also on
    U+0085, U+2028, U+2029 and \x1c-\x1e, which Go's `json.Marshal` leaves raw (or, for
    U+0085, unescaped) inside strings — a token containing one would cut an NDJSON line
    in two and read as malformed JSON.  A line longer than `MAX_LINE_BYTES` is refused
    rather than buffered without bound.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending: list[str] = []
    size = 0
    final = False
    while not final:
        raw = await anext(chunks, None)
        final = raw is None
        text = decoder.decode(raw or b"", final=final)
        pieces = text.split("\n")
        for piece in pieces[:-1]:
            pending.append(piece)
            yield "".join(pending).removesuffix("\r")
            pending, size = [], 0
        if pieces[-1]:
            pending.append(pieces[-1])
            size += len(pieces[-1])
            if size > MAX_LINE_BYTES:
                raise MalformedResponse(
                    f"{host} sent a line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB "
                    "without a newline; is the host really the engine you configured?",
                    host=host)
    if pending:
        yield "".join(pending).removesuffix("\r")


async def timed_lines(
    response: httpx.Response,
    *,
    first: Callable[[], Deadline],
    between: Deadline,
    host: str,
    total: Callable[[], Deadline] | None = None,
    max_lines: int | None = None,
) -> AsyncGenerator[str, None]:
    """Non-blank lines of a streamed body, the first within `first()`, the rest within
    `between`, all of them within `total()` (when given), at most `max_lines` of them.

    `first` is a callable so that the budget left for the first line accounts for the
    time already spent waiting for the response headers.
    """
    body = split_lines(response.aiter_bytes(), host=host)
    async with contextlib.aclosing(body) as lines:
        got_first = False
        count = 0
        while True:
            deadline = between if got_first else first()
            if total is not None:
                whole = total()
                deadline = whole if whole.seconds < deadline.seconds else deadline
            line = await within(anext(lines, None), deadline, host)
            if line is None:
                return
            if not line.strip():
                continue
            got_first = True
            if not line.startswith(_SSE_FIELDS_WITHOUT_DATA):
                count += 1  # one NDJSON object or one SSE `data:` line per token at most
            if max_lines is not None and count > max_lines:
                raise MalformedResponse(
                    f"{host} kept streaming past the token budget of the request "
                    f"({max_lines - TOKEN_MARGIN} tokens + {TOKEN_MARGIN}): the stream was "
                    "closed. The engine seems to ignore the limit; check its version.",
                    host=host,
                )
            yield line


async def drain(lines: AsyncIterator[object], budget_s: float = 0.05) -> None:
    """Read the end of a body after its final line (normally already received).

    A response closed before its terminating chunk cannot go back to httpx's pool: the
    next request would pay a new TCP connection.  Bounded, so a server that never ends
    its body costs at most `budget_s`; errors after the final line do not matter.
    """

    async def exhaust() -> None:
        async for _ in lines:
            pass

    with contextlib.suppress(Exception):
        await asyncio.wait_for(exhaust(), budget_s)


def token_budget(body: JsonDict) -> int | None:
    """How many lines a generation may stream: its token limit plus `TOKEN_MARGIN`.

    Ollama's `options.num_predict`, or OpenAI's `max_tokens` / `max_completion_tokens`;
    None when the request sets no positive limit (a download, or -1 = unlimited).

    >>> token_budget({"options": {"num_predict": 100}}), token_budget({"max_tokens": 10})
    (164, 74)
    >>> token_budget({"options": {"num_predict": -1}}) is None, token_budget({}) is None
    (True, True)
    """
    options = body.get("options")
    candidates = [
        options.get("num_predict") if isinstance(options, dict) else None,
        body.get("max_tokens"),
        body.get("max_completion_tokens"),
    ]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value + TOKEN_MARGIN
    return None


async def read_capped(response: httpx.Response, *, host: str, what: str,
                      limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body of a streamed response, refused (and closed) past `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise MalformedResponse(
                    f"{host} sent more than {limit // (1024 * 1024)} MiB for {what}; "
                    "the answer was refused — is the host really the engine you configured?",
                    host=host,
                )
            parts.append(chunk)
    finally:
        await response.aclose()
    return b"".join(parts)


def what_failed(path: str) -> str:
    return f"the error answer of {path}"


BUSY_STATUSES = (503, 429)
# httpcore's words when a pooled keep-alive connection turns out to be closed by the
# server before it answered anything (an idle timeout, an engine restart, a proxy).
STALE_CONNECTION = "Server disconnected without sending a response"


async def send_once_more_if_stale(
    client: httpx.AsyncClient, request: httpx.Request, *, stream: bool = False
) -> httpx.Response:
    """Send `request`; if a reused connection was already closed by the server, send it
    again once on a fresh connection.

    Safe for a POST too: the server sent nothing back, so it never processed the request
    (Go's own HTTP client retries the same case).  A second failure is real and raised.
    """
    try:
        return await client.send(request, stream=stream)
    except httpx.RemoteProtocolError as exc:
        if STALE_CONNECTION not in str(exc):
            raise
        return await client.send(request, stream=stream)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retry of a busy engine (HTTP 503/429): `attempts` tries in all, backoff doubling.

    Providers use `attempts=1`: their own layer retries, honouring `retry-after` and
    reporting the wait, and can fail over to another endpoint instead.
    """

    attempts: int = 3
    backoff_s: float = 0.5
    busy_statuses: tuple[int, ...] = BUSY_STATUSES

    def delay(self, attempt: int) -> float:
        return float(self.backoff_s * 2.0**attempt)


def retry_after_seconds(value: str | None) -> float | None:
    """`retry-after` in seconds: a number of seconds or an HTTP date (RFC 9110 §10.2.3).

    >>> retry_after_seconds("2"), retry_after_seconds("0.5"), retry_after_seconds("soon")
    (2.0, 0.5, None)
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0 if seconds == seconds else None
    return seconds


def with_retry_after(error: EngineError, response: httpx.Response) -> EngineError:
    """Attach the response's `retry-after` to the translated error (see `EngineError`)."""
    error.retry_after_s = retry_after_seconds(response.headers.get("retry-after"))
    return error


class StatusTranslator(Protocol):
    """A backend's translation of HTTP failures into engine errors (its one place)."""

    def offline_message(self) -> str: ...

    def from_status(
        self, status: int, body: str, *, model: str | None, attempts: int, path: str
    ) -> EngineError: ...


class HttpSession:
    """One backend's HTTP conversation: JSON requests and streamed lines, with retries,
    deadlines and error translation shared by every HTTP backend."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        host: str,
        timeouts: EngineTimeouts,
        retry: RetryPolicy,
        errors: StatusTranslator,
    ) -> None:
        self.client = client
        self.host = host
        self.timeouts = timeouts
        self.retry = retry
        self.errors = errors

    def transport_errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translate_transport_errors(self.host, self.errors.offline_message(),
                                          self.timeouts, what)

    async def fetch(self, method: str, path: str, body: JsonDict | None, *,
                    what: str) -> httpx.Response:
        """One request, its body read whole but within `MAX_BODY_BYTES` and the request's
        total budget; transport failures translated, the status left to the caller."""
        request = self.build(method, path, body)
        with self.transport_errors(what):
            response = await within(self._fetch(request, what), self.total_deadline(what),
                                    self.host)
        return response

    async def _fetch(self, request: httpx.Request, what: str) -> httpx.Response:
        streamed = await send_once_more_if_stale(self.client, request, stream=True)
        content = await read_capped(streamed, host=self.host, what=what)
        return httpx.Response(streamed.status_code, headers=streamed.headers,
                              content=content, request=request)

    def total_deadline(self, what: str) -> Deadline:
        budget = self.timeouts.total_s
        return Deadline(
            "total", budget,
            f"{self.host} did not finish {what} within {budget:g} s; the request was "
            "stopped — try again, or check the engine's load.",
        )

    async def request(
        self, method: str, path: str, body: JsonDict | None, *, what: str, model: str | None
    ) -> httpx.Response:
        """A whole request; busy answers are retried, other failures translated."""
        for attempt in range(self.retry.attempts):
            response = await self.fetch(method, path, body, what=what)
            busy = response.status_code in self.retry.busy_statuses
            if busy and attempt + 1 < self.retry.attempts:
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if response.status_code >= 400:
                raise with_retry_after(
                    self.errors.from_status(response.status_code, response.text, model=model,
                                            attempts=attempt + 1, path=path), response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def build(self, method: str, path: str, body: JsonDict | None, *,
              streaming: bool = False) -> httpx.Request:
        """The HTTP request; a body that cannot be JSON (NaN, infinity) is `InvalidRequest`.

        Caught here because Python's `json` raises `ValueError` for `nan`, which would
        otherwise escape the engine's error tree (e.g. `--temperature nan`).
        """
        timeout = (request_timeout(self.timeouts, streaming=True) if streaming
                   else httpx.USE_CLIENT_DEFAULT)
        try:
            return self.client.build_request(method, path, json=body, timeout=timeout)
        except UnicodeEncodeError:
            # Lone surrogates (a client's JSON "\ud83d", undecodable stdin) cannot be UTF-8:
            # send them \u-escaped, as JSON allows; Go's decoder turns each into U+FFFD.
            return self._build_escaped(method, path, body, streaming=streaming)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(
                f"The request to {self.host}{path} cannot be sent as JSON ({exc}); check "
                "the numbers in the settings (temperature, maxTokens, ...): NaN and infinity "
                "are not allowed.", host=self.host) from exc

    def _build_escaped(self, method: str, path: str, body: JsonDict | None, *,
                       streaming: bool) -> httpx.Request:
        try:
            content = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(
                f"The request to {self.host}{path} cannot be sent as JSON ({exc}); check "
                "the numbers in the settings (temperature, maxTokens, ...): NaN and infinity "
                "are not allowed.", host=self.host) from exc
        headers = {"Content-Type": "application/json"}
        if streaming:
            return self.client.build_request(method, path, content=content.encode("ascii"),
                                             headers=headers,
                                             timeout=request_timeout(self.timeouts,
                                                                     streaming=True))
        return self.client.build_request(method, path, content=content.encode("ascii"),
                                         headers=headers)

    async def request_json(
        self, method: str, path: str, body: JsonDict | None, *, what: str, model: str | None
    ) -> JsonDict:
        response = await self.request(method, path, body, what=what, model=model)
        return parse_json_object(response.text, host=self.host, what=what)

    async def stream_lines(
        self,
        path: str,
        body: JsonDict,
        *,
        model: str,
        clock: StreamClock,
        what: str,
        idle_s: float | None = None,
    ) -> AsyncGenerator[str, None]:
        """POST and yield the body's non-blank lines; the response is closed however this
        generator ends (exhausted, error, `aclose()`, or its task cancelled)."""
        with self.transport_errors(what):
            response = await self._open_stream(path, body, model=model, clock=clock,
                                               idle_s=idle_s)
            # Downloads (`idle_s`) may take hours and stream no tokens: no total, no cap.
            whole = self.total_deadline(what)
            lines = timed_lines(
                response,
                first=lambda: self.first_deadline(model, clock, idle_s),
                between=self.between_deadline(model, idle_s),
                host=self.host,
                total=(None if idle_s is not None else lambda: Deadline(
                    whole.phase, whole.seconds - clock.elapsed_ms() / 1000.0, whole.message)),
                max_lines=None if idle_s is not None else token_budget(body),
            )
            try:
                # Closed explicitly: a caller that stops early (after `[DONE]`) would leave
                # it to the garbage collector, whose clean-up task a stopping loop (the
                # LocalEngine facade's) destroys while pending.
                async with contextlib.aclosing(lines):
                    async for line in lines:
                        yield line
            finally:
                await response.aclose()

    async def _open_stream(
        self, path: str, body: JsonDict, *, model: str, clock: StreamClock, idle_s: float | None
    ) -> httpx.Response:
        """Send, waiting for headers within the first-token budget; retry while busy."""
        for attempt in range(self.retry.attempts):
            request = self.build("POST", path, body, streaming=True)
            response = await within(
                send_once_more_if_stale(self.client, request, stream=True),
                self.first_deadline(model, clock, idle_s),
                self.host,
            )
            if response.status_code < 400:
                return response
            text = (await read_capped(response, host=self.host, what=what_failed(path))
                    ).decode("utf-8", "replace")
            busy = response.status_code in self.retry.busy_statuses
            if busy and attempt + 1 < self.retry.attempts:
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            raise with_retry_after(
                self.errors.from_status(response.status_code, text, model=model,
                                        attempts=attempt + 1, path=path), response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def first_deadline(self, model: str, clock: StreamClock, idle_s: float | None) -> Deadline:
        budget = idle_s if idle_s is not None else self.timeouts.first_token_s
        left = budget - clock.elapsed_ms() / 1000.0
        return Deadline(
            "first_token", left,
            f"Model '{model}' at {self.host} sent no first token within {budget:g} s "
            "(loading a large model can take a minute) — try again, pick a smaller model, "
            "or raise `timeouts.firstTokenMs`.",
        )

    def between_deadline(self, model: str, idle_s: float | None) -> Deadline:
        budget = idle_s if idle_s is not None else self.timeouts.between_tokens_s
        return Deadline(
            "between_tokens", budget,
            f"Model '{model}' at {self.host} stalled: nothing arrived for {budget:g} s "
            "after the stream started — try again, or raise `timeouts.betweenTokensMs`.",
        )


def _is_name_resolution_failure(exc: BaseException) -> bool:
    """Did a DNS lookup fail (a mistyped host), rather than a connection to a known host?

    httpx keeps the `socket.gaierror` in the cause chain; its text is the fallback.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    return any(marker in text for marker in (
        "name or service not known", "nodename nor servname", "temporary failure in name",
        "no address associated", "getaddrinfo failed"))
