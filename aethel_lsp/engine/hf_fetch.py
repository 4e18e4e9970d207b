"""Download a GGUF file from Hugging Face into the model directory (`aethel-lsp pull hf:...`).

For a connected machine that wants a better model than SmolLM2 without Ollama, e.g.
`aethel-lsp pull hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`
(a code model with fill-in-the-middle tokens, so the embedded engine uses `/infill`).
Only the file is requested — nothing of the user's code leaves the machine. The Hub
publishes the SHA-256 of every large (LFS) file in the `X-Linked-Etag` header of its
`resolve` URL; the download is checked against it, written next to its final name and
renamed only when complete. `HF_ENDPOINT` points at a mirror (the Hub's own convention).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from aethel_lsp.engine.errors import EngineError, InvalidRequest
from aethel_lsp.engine.types import PullProgress
from aethel_lsp.paths import MODELS_DIR_ENV

__all__ = ["HfFetchError", "HfFile", "fetch_hf_file", "parse_hf_reference"]

DEFAULT_ENDPOINT = "https://huggingface.co"
PREFIX = "hf:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class HfFetchError(EngineError):
    """The Hub refused the file, the connection broke, or the bytes do not match."""


@dataclass(frozen=True)
class HfFile:
    """One file of one Hugging Face model repository, at one revision."""

    owner: str
    repo: str
    path: str
    revision: str = "main"

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def url(self, endpoint: str) -> str:
        repo = f"{endpoint.rstrip('/')}/{self.owner}/{self.repo}"
        return f"{repo}/resolve/{self.revision}/{self.path}"


def parse_hf_reference(reference: str) -> HfFile:
    """`hf:OWNER/REPO/FILE.gguf` (FILE may contain folders; `@REVISION` at the end).

    >>> parse_hf_reference("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/q4.gguf").repo
    'Qwen2.5-Coder-0.5B-Instruct-GGUF'
    >>> file = parse_hf_reference("hf:a/b/sub/m.gguf@v1")
    >>> file.path, file.revision
    ('sub/m.gguf', 'v1')
    """
    body = reference.removeprefix(PREFIX)
    body, _, revision = body.partition("@")
    parts = body.split("/")
    problem = None
    if len(parts) < 3 or not all(parts):
        problem = "it needs an owner, a repository and a file"
    elif not all(_NAME.match(part) for part in parts) or ".." in parts:
        problem = "its parts may only use letters, digits, '.', '_' and '-'"
    elif not parts[-1].lower().endswith(".gguf"):
        problem = "the embedded engine runs GGUF files (the name must end in .gguf)"
    if problem is not None:
        raise InvalidRequest(f"{reference!r} is not a Hugging Face GGUF reference: {problem}. "
                             "Write hf:OWNER/REPO/FILE.gguf.", host="embedded")
    return HfFile(parts[0], parts[1], "/".join(parts[2:]), revision or "main")


async def fetch_hf_file(
    file: HfFile,
    directory: Path,
    *,
    endpoint: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[PullProgress]:
    """Download `file` into `directory`, checked against the Hub's SHA-256 when given."""
    base = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    url = file.url(base)
    target = directory / file.file_name
    if await asyncio.to_thread(target.is_file):
        yield PullProgress("success")
        return
    try:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(directory, exc) from exc
    partial = directory / f".{file.file_name}.partial"
    try:  # however this ends (error, mismatch, closed or cancelled), no partial file stays
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0),
                                     follow_redirects=False) as client:
            expected = await _published_sha256(client, url)
            status = f"downloading {file.file_name}"
            yield PullProgress(status)
            digest = hashlib.sha256()
            try:
                async with client.stream("GET", url, follow_redirects=True) as response:
                    _raise_for(response.status_code, url)
                    total = int(response.headers.get("content-length", 0)) or None
                    done = 0
                    with partial.open("wb") as out:
                        async for chunk in response.aiter_bytes(_CHUNK):
                            await asyncio.to_thread(out.write, chunk)
                            digest.update(chunk)
                            done += len(chunk)
                            yield PullProgress(status, digest=f"sha256:{expected or '?'}",
                                               total=total, completed=done)
            except httpx.HTTPError as exc:
                raise HfFetchError(f"Downloading {url} failed: {exc}. Try again.",
                                   host="embedded") from exc
            except OSError as exc:  # the disk is full, or the directory read-only
                raise _cannot_write(partial, exc) from exc
        yield PullProgress("verifying sha256 digest" if expected else
                           "no SHA-256 published for this file: not verified")
        if expected and digest.hexdigest() != expected:
            raise HfFetchError(f"{file.file_name} does not match the SHA-256 the Hub "
                               f"published ({expected}); it was not kept.", host="embedded")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    yield PullProgress("success")


async def _published_sha256(client: httpx.AsyncClient, url: str) -> str | None:
    try:
        response = await client.head(url)
    except httpx.HTTPError as exc:
        raise HfFetchError(f"Cannot reach {url}: {exc}. Check the network (or HF_ENDPOINT).",
                           host="embedded") from exc
    if response.status_code >= 400:
        _raise_for(response.status_code, url)
    etag = response.headers.get("x-linked-etag", "").strip('"').lower()
    return etag if _SHA256.match(etag) else None


def _cannot_write(path: Path, exc: OSError) -> HfFetchError:
    return HfFetchError(f"Cannot write {path}: {exc.strerror or exc}. Free some disk space, or "
                        f"set {MODELS_DIR_ENV} to a writable directory.", host="embedded")


def _raise_for(status: int, url: str) -> None:
    if status < 400:
        return
    if status in (401, 403):
        raise HfFetchError(f"{url} needs an account (HTTP {status}): gated or private "
                           "repositories are not supported; download the file yourself and "
                           "set `embedded.modelPath`.", host="embedded", status=status)
    if status == 404:
        raise HfFetchError(f"{url} does not exist (HTTP 404): check the owner, repository, "
                           "file name and revision.", host="embedded", status=status)
    raise HfFetchError(f"{url} answered HTTP {status}; try again later.", host="embedded",
                       status=status)
