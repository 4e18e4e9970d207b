"""llama.cpp's own HTTP server, run inside this process by the `xllamacpp` package.

Why a server and not bindings: llama.cpp's server already does what an editor needs —
several slots decoding at once (`n_parallel`), a prompt cache per slot (`cache_prompt`)
that makes a keystroke cost only the new tokens, `/infill` for models with
fill-in-the-middle tokens, and exact `timings` — and `xllamacpp` ships it as a prebuilt
wheel, so nothing is compiled at install time.

Who may talk to it: it listens on 127.0.0.1 only, on a port the OS picks, and every
request must carry an API key made here from `secrets` and never written anywhere, so
other local processes (or a web page sending requests to localhost) cannot use it. The
web UI, the `/slots` endpoint and CORS are switched off.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LlamaServer", "ServerSettings", "start_server", "xllamacpp_installed",
           "xllamacpp_version"]


def xllamacpp_installed() -> bool:
    """Whether `xllamacpp` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("xllamacpp") is not None
    except (ImportError, ValueError):
        return False


def xllamacpp_version() -> str | None:
    try:
        return importlib.metadata.version("xllamacpp")
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class ServerSettings:
    """How to run one model: its file, the context per slot, threads and slots."""

    model_path: Path
    context_per_slot: int
    threads: int
    slots: int = 2  # inline completion and an action (or chat) never wait for each other


@dataclass
class LlamaServer:
    """A running server: where it listens, the key it wants, and the native object."""

    settings: ServerSettings
    base_url: str
    api_key: str = field(repr=False)  # a secret: never in a log line or an error message
    load_ms: float
    native: Any

    @property
    def context_per_slot(self) -> int:
        return self.settings.context_per_slot

    def stop(self) -> None:
        """Stop listening and free the model (dropping the last reference does both)."""
        self.native = None


def start_server(settings: ServerSettings) -> LlamaServer:
    """Load the model and start listening; blocks for the load (call it off the loop).

    Raises `ImportError` without xllamacpp and `RuntimeError`/`ValueError` when llama.cpp
    cannot load the file.
    """
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(settings.model_path)
    params.n_parallel = settings.slots
    # llama.cpp splits n_ctx between the slots; each slot gets the context we promise.
    params.n_ctx = settings.context_per_slot * settings.slots
    params.cpuparams.n_threads = settings.threads
    params.cpuparams_batch.n_threads = settings.threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    api_key = secrets.token_urlsafe(32)
    params.api_keys = [api_key]
    params.cors_origins = ""
    params.ui = False
    params.endpoint_slots = False
    params.verbosity = 0  # llama.cpp's logs go to stderr; fd 1 is the LSP channel anyway
    params.warmup = False  # the first real prompt warms up; saves ~0.3 s at load
    begin = time.perf_counter()
    native = xllamacpp.Server(params)
    load_ms = (time.perf_counter() - begin) * 1000.0
    address = str(native.listening_address).rstrip("/")
    return LlamaServer(settings, address, api_key, load_ms, native)
