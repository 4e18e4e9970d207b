"""The endpoints of one provider: health, least-outstanding-requests, per-document stickiness.

An endpoint that fails (refused connection, timeout or HTTP 5xx before the first token)
is marked unhealthy for `cooldown_s`; it is tried again after that (or at once, last, if
every endpoint is down), and a success or a health check marks it healthy again.  A
document keeps going to the endpoint that served it last while that one is healthy, so
the server's prompt cache for that document stays warm; new documents go to the endpoint
with the fewest requests in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.types import EngineStatus, JsonDict

Health = Literal["healthy", "unhealthy", "unknown"]
MAX_STICKY_DOCUMENTS = 1000


@dataclass
class Endpoint:
    """One address of a provider and what we know about it."""

    url: str
    engine: Engine
    outstanding: int = 0
    health: Health = "unknown"
    last_error: str | None = None
    down_until: float = 0.0

    def to_json(self) -> JsonDict:
        return {"url": self.url, "health": self.health, "outstanding": self.outstanding,
                "error": self.last_error}


class EndpointPool:
    """Chooses the endpoint for each request and remembers how each one is doing."""

    def __init__(self, endpoints: list[Endpoint], *, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = endpoints
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._sticky: OrderedDict[str, Endpoint] = OrderedDict()

    def order(self, affinity: str | None) -> list[Endpoint]:
        """Endpoints to try, best first: the document's own, then least busy, the ones
        cooling down after a failure last (still tried: they may have come back)."""
        now = self._clock()
        ready = [e for e in self.endpoints if e.down_until <= now]
        cooling = sorted((e for e in self.endpoints if e.down_until > now),
                         key=lambda e: e.down_until)
        index = {id(e): i for i, e in enumerate(self.endpoints)}
        ready.sort(key=lambda e: (e.outstanding, index[id(e)]))
        sticky = self._sticky.get(affinity) if affinity else None
        if sticky is not None and sticky in ready and sticky.health != "unhealthy":
            ready.remove(sticky)
            ready.insert(0, sticky)
        return ready + cooling

    def succeeded(self, endpoint: Endpoint, affinity: str | None) -> None:
        endpoint.health = "healthy"
        endpoint.last_error = None
        endpoint.down_until = 0.0
        if affinity:
            self._sticky[affinity] = endpoint
            self._sticky.move_to_end(affinity)
            while len(self._sticky) > MAX_STICKY_DOCUMENTS:
                self._sticky.popitem(last=False)

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        endpoint.health = "unhealthy"
        endpoint.last_error = reason
        endpoint.down_until = self._clock() + self.cooldown_s

    async def check(self) -> list[EngineStatus]:
        """Ask every endpoint at once whether it answers (`Engine.status`, which never raises);
        their statuses, in the endpoints' order."""
        statuses = await asyncio.gather(*(e.engine.status() for e in self.endpoints))
        for endpoint, status in zip(self.endpoints, statuses, strict=True):
            if status.available:
                self.succeeded(endpoint, None)
            else:
                self.failed(endpoint, status.error or "it does not answer")
        return statuses

    def to_json(self) -> list[JsonDict]:
        return [e.to_json() for e in self.endpoints]
