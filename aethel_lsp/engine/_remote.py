"""Plumbing the HTTP backends share: their client, the API key, failing streams, status,
and reading loosely typed JSON.

One place, so that every backend reads the key at send time (never stores it), scrubs it
from messages and tells the user how to fix it in the same words, and so that a failed
health check reads the same whichever server it was.  The protocols stay in their modules.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from typing import TypeVar

import httpx

from aethel_lsp import __version__
from aethel_lsp.engine._http import request_timeout
from aethel_lsp.engine.errors import EngineError, EngineOffline, EngineTimeout
from aethel_lsp.engine.types import EngineKind, EngineStatus, EngineTimeouts, JsonDict

T = TypeVar("T")
USER_AGENT = f"aethel-lsp/{__version__}"


def api_client(
    host: str,
    timeouts: EngineTimeouts,
    transport: httpx.AsyncBaseTransport | None,
    *,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """The one client of a backend: its host, our User-Agent, the non-streaming timeout."""
    return httpx.AsyncClient(
        base_url=host,
        transport=transport,
        timeout=request_timeout(timeouts, streaming=False),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        auth=auth,
    )


def env_key(env_name: str) -> str:
    """The key in the environment variable `env_name` ("" when unnamed or unset)."""
    return os.environ.get(env_name, "") if env_name else ""


def scrub_key(text: str, env_name: str) -> str:
    """Servers sometimes echo the key they rejected; never let it reach a message."""
    key = env_key(env_name)
    return text.replace(key, "***") if key else text


def key_advice(env_name: str, setting: str) -> str:
    """How to fix a refused key; `setting` names where the variable is configured."""
    if not env_name:
        return f"name the environment variable holding the key in {setting}"
    if not os.environ.get(env_name):
        return f"the environment variable {env_name} is not set: set it to the key"
    return f"check the key in the environment variable {env_name}"


class KeyFromEnv(httpx.Auth):
    """Adds the key from the environment at send time: `header: scheme key` (no scheme:
    the bare key).  The key lives only in the environment."""

    def __init__(self, env_name: str, *, header: str = "Authorization",
                 scheme: str = "Bearer") -> None:
        self.env_name = env_name
        self.header = header
        self.scheme = scheme

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = env_key(self.env_name)
        if key:
            request.headers[self.header] = f"{self.scheme} {key}" if self.scheme else key
        yield request


async def failing_stream(error: Exception) -> AsyncIterator[T]:
    """A stream that raises `error` when first read, like an HTTP stream answered with an
    error (so a caller meets every failure in the same place: iteration)."""
    nothing: tuple[T, ...] = ()
    for item in nothing:
        yield item
    raise error


def failed_status(kind: EngineKind, host: str, exc: Exception) -> EngineStatus:
    """What a health check reports when asking the server raised `exc` (offline when
    nothing answered or the connection timed out)."""
    if not isinstance(exc, EngineError):
        return EngineStatus(False, host, kind,
                            error=f"Checking {host} failed unexpectedly: {exc!r}")
    offline = isinstance(exc, EngineOffline) or (
        isinstance(exc, EngineTimeout) and exc.phase == "connect")
    return EngineStatus(False, host, kind, error=str(exc), offline=offline)


def json_int(value: object) -> int | None:
    """A JSON number as an int; None for anything else (a bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def json_dict(value: object) -> JsonDict:
    """A JSON object, or an empty one in its place."""
    return value if isinstance(value, dict) else {}
