"""A fake Hugging Face Hub `resolve` endpoint, for `aethel-lsp pull hf:...` tests.

Like the Hub: `HEAD/GET /OWNER/REPO/resolve/REVISION/FILE` answers 302 to a CDN URL and
carries the file's SHA-256 in `X-Linked-Etag` (quoted, as the Hub sends it); the CDN URL
serves the bytes with a Content-Length. Unknown files are 404, `gated/...` repositories
401. Records every request path. A `tests.fakes.http.LoopbackServer`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tests.fakes.http import Exchange, LoopbackServer


@dataclass
class FakeHub(LoopbackServer):
    label = "fake Hugging Face Hub"

    files: dict[str, bytes] = field(default_factory=dict)  # "owner/repo/main/path" -> bytes
    publish_sha256: bool = True
    corrupt: bool = False  # serve different bytes than the published hash
    paths: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        LoopbackServer.__init__(self, port=self.port)

    async def handle(self, exchange: Exchange) -> None:
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
