"""A fake Hugging Face Hub `resolve` endpoint, for `aethel-lsp pull hf:...` tests.

Like the Hub: `HEAD/GET /OWNER/REPO/resolve/REVISION/FILE` answers 302 to a CDN URL and
carries the file's SHA-256 in `X-Linked-Etag` (quoted, as the Hub sends it); the CDN URL
serves the bytes with a Content-Length. Unknown files are 404, `gated/...` repositories
401. Records every request path. Built on `tests.fakes.http`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from dataclasses import dataclass, field

from tests.fakes.http import BadRequest, Exchange, read_request


@dataclass
class FakeHub:
    files: dict[str, bytes] = field(default_factory=dict)  # "owner/repo/main/path" -> bytes
    publish_sha256: bool = True
    corrupt: bool = False  # serve different bytes than the published hash
    paths: list[str] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeHub:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        server = loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:  # open keep-alive connections
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, BadRequest, asyncio.IncompleteReadError):
            while (request := await read_request(reader)) is not None:
                await self._answer(Exchange(request, reader, writer))
        with contextlib.suppress(Exception):
            writer.close()

    async def _answer(self, exchange: Exchange) -> None:
        path = exchange.request.path
        self.paths.append(f"{exchange.request.method} {path}")
        if path.startswith("/cdn/"):
            data = self.files.get(path.removeprefix("/cdn/"))
            if data is None:
                await exchange.send(404, b"not found", "text/plain")
                return
            await exchange.send(200, data + (b"!" if self.corrupt else b""),
                                "application/octet-stream")
            return
        owner, _, rest = path.lstrip("/").partition("/")
        repo, _, rest = rest.partition("/")
        kind, _, rest = rest.partition("/")
        revision, _, file = rest.partition("/")
        key = f"{owner}/{repo}/{revision}/{file}"
        if owner == "gated":
            await exchange.send(401, b'{"error":"Access restricted"}', "application/json")
            return
        if kind != "resolve" or key not in self.files:
            await exchange.send(404, b'{"error":"Entry not found"}', "application/json")
            return
        headers = {"Location": f"/cdn/{key}"}
        if self.publish_sha256:
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(self.files[key]).hexdigest()}"'
        await exchange.send(302, b"", "text/plain", headers)
