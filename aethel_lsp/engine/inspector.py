"""The request inspector: what exactly was sent to the engine, and what came back.

Off by default (`inspector.enabled`).  When on, every generation is recorded: the
request exactly as the backend put it on the wire (its endpoint, URL path and JSON body,
reported by the backend through the request's `on_send` callback, so an OpenAI-compatible
server's record shows no `keep_alive` or `think` it never received), the FIM mode, the
raw response, the engine's metrics, the outcome (ok / error / cancelled) and, for inline
completions, the post-processed text the editor was given.  A backend that sends nothing
over HTTP (the embedded engine), or a request refused before it was sent, is recorded
with the fields it was asked for and `path` null.  "Why is my completion
bad?" then has an answer one command away (`aethel-lsp inspect`, `aethel.inspectLast`).

Storage is a bounded ring in the state directory: a small SQLite file (WAL, busy
timeout, one short transaction per write), so several editors and the CLI can write at
once; the oldest rows beyond `inspector.size` are deleted on each insert.  A corrupt
file is moved aside and the ring starts fresh.

Secrets are never recorded: every string is passed through `Redactor` (engine/redaction.py,
re-exported here) before it is
written — the values of the configured API-key variable, `Authorization` / bearer
tokens, `api_key = ...`-style assignments, and well-known key shapes (`sk-...`,
`ghp_...`, `AKIA...`, `xox?-...`, `hf_...`), and credentials inside URLs.

Linking the post-processed completion to its request: the inline-completion handler
opens an `inspection_scope()` (a context variable) around the scheduler call; the
`InspectingEngine` attaches every request opened inside it to the scope, and
`scope.finish(text, ...)` fills in the result (updating rows already written).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aethel_lsp.config import InspectorSettings, Settings
from aethel_lsp.engine.base import Engine, closing_stream
from aethel_lsp.engine.delegating import DelegatingEngine
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.redaction import REDACTED as REDACTED
from aethel_lsp.engine.redaction import SECRET_ENV_NAMES as SECRET_ENV_NAMES
from aethel_lsp.engine.redaction import Redactor as Redactor
from aethel_lsp.engine.types import (
    ChatRequest,
    Chunk,
    GenerateRequest,
    GenerationOptions,
    JsonDict,
    Metrics,
    SendObserver,
    WireRequest,
)
from aethel_lsp.paths import private_dir, private_sqlite, state_dir

log = logging.getLogger(__name__)

INSPECTOR_FILE = "inspector.sqlite3"
BUSY_TIMEOUT_S = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    body TEXT NOT NULL
);
"""

# -- the record -------------------------------------------------------------------------


@dataclass
class InspectionRecord:
    """One request to the engine, filled in as it happens."""

    kind: str  # "generate" / "chat", or the scope's kind (e.g. "inlineCompletion")
    endpoint: str  # "generate" or "chat" (Ollama), "chat" or "completions" (OpenAI API)
    model: str
    engine: str
    host: str
    request: JsonDict  # the body sent, once the backend reported it (see `sent`)
    fim_mode: str | None = None
    path: str | None = None  # the URL path the body was sent to; None: not sent over HTTP
    at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    response: str = ""
    thinking: str = ""
    metrics: JsonDict | None = None
    outcome: str = "running"  # ok / error / cancelled
    error: str | None = None
    elapsed_ms: float | None = None
    result: str | None = None  # the post-processed text the editor got
    result_source: str | None = None  # fresh / reused / superseded / ... (inline completion)
    partial: bool = False
    row_id: int | None = None

    def sent(self, wire: WireRequest) -> None:
        """The backend put `wire` on the wire: record that instead of what was asked."""
        self.endpoint = wire.endpoint
        self.path = wire.path
        self.request = wire.body

    def to_json(self) -> JsonDict:
        return {
            "at": self.at,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "path": self.path,
            "engine": self.engine,
            "host": self.host,
            "model": self.model,
            "fimMode": self.fim_mode,
            "request": self.request,
            "response": self.response,
            "thinking": self.thinking,
            "metrics": self.metrics,
            "outcome": self.outcome,
            "error": self.error,
            "elapsedMs": None if self.elapsed_ms is None else round(self.elapsed_ms, 2),
            "result": self.result,
            "resultSource": self.result_source,
            "partial": self.partial,
        }


def generate_request_json(request: GenerateRequest) -> JsonDict:
    """The fields of a generate request as asked for (None = not sent), recorded until
    the backend reports the body it sent."""
    return {
        "prompt": request.prompt,
        "suffix": request.suffix,
        "system": request.system,
        "raw": request.raw,
        "options": _options_json(request.options),
        "keepAlive": request.keep_alive,
        "think": request.think,
    }


def chat_request_json(request: ChatRequest) -> JsonDict:
    return {
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "options": _options_json(request.options),
        "keepAlive": request.keep_alive,
        "think": request.think,
    }


def _options_json(options: GenerationOptions) -> JsonDict:
    return options.to_ollama()


def inferred_fim_mode(request: GenerateRequest) -> str | None:
    """What a generate request's shape says about fill-in-the-middle."""
    if request.suffix is not None:
        return "native"
    if request.raw:
        return "template"
    return None


# -- the ring ---------------------------------------------------------------------------


class Inspector:
    """The bounded ring of records in `state_dir()/inspector.sqlite3` (or `path`)."""

    def __init__(self, path: str | Path | None = None, *, size: int = 50,
                 redactor: Redactor | None = None) -> None:
        self.path = Path(path) if path is not None else state_dir() / INSPECTOR_FILE
        self.size = max(1, size)
        self.redactor = redactor or Redactor()
        self.notice: str | None = None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    def configure(self, *, size: int, redactor: Redactor) -> None:
        self.size = max(1, size)
        self.redactor = redactor

    # -- writing ------------------------------------------------------------------------

    def write(self, record: InspectionRecord) -> None:
        """Insert or update `record` (redacted); never raises: inspection must not break
        a request."""
        body = json.dumps(self.redactor.value(record.to_json()), ensure_ascii=False)
        try:
            with self._connection() as db:
                if record.row_id is None:
                    cursor = db.execute("INSERT INTO requests (at, body) VALUES (?, ?)",
                                        (record.at, body))
                    record.row_id = cursor.lastrowid
                    db.execute("DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests)"
                               " - ?", (self.size,))
                else:
                    db.execute("UPDATE requests SET body = ? WHERE id = ?",
                               (body, record.row_id))
        except (sqlite3.Error, OSError) as exc:
            log.warning("could not record the request in %s: %s", self.path, exc)

    def clear(self) -> None:
        with self._connection() as db:
            db.execute("DELETE FROM requests")

    # -- reading ------------------------------------------------------------------------

    def last(self, count: int = 10) -> list[JsonDict]:
        """The newest `count` records, newest first."""
        if not self.path.exists():
            return []
        try:
            with self._connection() as db:
                rows = db.execute("SELECT id, body FROM requests ORDER BY id DESC LIMIT ?",
                                  (max(0, count),)).fetchall()
        except sqlite3.Error as exc:
            log.warning("could not read %s: %s", self.path, exc)
            return []
        out: list[JsonDict] = []
        for row_id, body in rows:
            with contextlib.suppress(ValueError, TypeError):
                item = json.loads(body)
                if isinstance(item, dict):
                    item["id"] = row_id
                    out.append(item)
        return out

    # -- the file -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                self._open()
            assert self._db is not None
            try:
                with self._db:
                    yield self._db
            except sqlite3.DatabaseError as exc:
                if _is_lock_error(exc) or not self.path.is_file():
                    raise
                self._recover(exc)
                raise

    def _open(self) -> None:
        private_dir(self.path.parent)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if _is_lock_error(exc):
                raise
            self._recover(exc)

    def _connect(self) -> sqlite3.Connection:
        private_sqlite(self.path)  # full prompts: 0600, and SQLite's WAL files alike
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute("SELECT COUNT(*) FROM requests").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Move a corrupt file aside and start a fresh ring (and say so in `notice`)."""
        self.close()
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        with contextlib.suppress(OSError):
            self.path.replace(aside)
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                self.path.with_name(self.path.name + extra).unlink()
        self.notice = (f"The inspector file {self.path} was corrupt ({exc}); it was moved to "
                       f"{aside} and the inspector starts fresh.")
        log.warning("%s", self.notice)
        self._db = self._connect()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _is_lock_error(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def inspect_json(inspector: Inspector, settings: InspectorSettings, count: int) -> JsonDict:
    """The result of `aethel.inspectLast` (and `aethel-lsp inspect --json`)."""
    return {
        "enabled": settings.enabled,
        "size": settings.size,
        "path": str(inspector.path),
        "records": inspector.last(count),
    }


# -- linking a request to the result the editor got ---------------------------------------


@dataclass
class InspectionScope:
    """Requests opened while handling one editor request (e.g. one inline completion)."""

    kind: str
    records: list[tuple[Inspector, InspectionRecord]] = field(default_factory=list)

    def attach(self, inspector: Inspector, record: InspectionRecord) -> None:
        record.kind = self.kind
        self.records.append((inspector, record))

    def finish(self, result: str, *, fim_mode: str | None = None, source: str | None = None,
               partial: bool = False) -> None:
        """The post-processed result: stored with every request of this scope.

        A superseded request's result is not the stream's: the successor that adopts
        the stream gets the text, so only the source is noted.
        """
        for inspector, record in self.records:
            if source != "superseded":
                record.result = result
            record.result_source = source
            record.partial = partial
            if fim_mode is not None:
                record.fim_mode = fim_mode
            if record.row_id is not None:
                inspector.write(record)


_SCOPE: contextvars.ContextVar[InspectionScope | None] = contextvars.ContextVar(
    "aethel_inspection_scope", default=None)


@contextlib.contextmanager
def inspection_scope(kind: str) -> Iterator[InspectionScope]:
    """Attach the engine requests made inside the block to one scope (cheap when off)."""
    scope = InspectionScope(kind)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


# -- the engine wrapper -------------------------------------------------------------------


class InspectingEngine(DelegatingEngine):
    """Delegates to `inner`; records generations when `inspector()` returns one.

    `inspector` is asked per request, so turning `inspector.enabled` on or off takes
    effect on the next request without rebuilding the engine.
    """

    def __init__(self, inner: Engine, inspector: Callable[[], Inspector | None]) -> None:
        super().__init__(inner)
        self._inspector = inspector

    def stream_generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        inspector = self._inspector()
        if inspector is None:
            return self.inner.stream_generate(request)
        record = self._record("generate", request.model, generate_request_json(request))
        record.fim_mode = inferred_fim_mode(request)
        observed = dataclasses.replace(request, on_send=_chain(record.sent, request.on_send))
        return self._recorded(inspector, record, _SCOPE.get(),
                              self.inner.stream_generate(observed))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        inspector = self._inspector()
        if inspector is None:
            return self.inner.stream_chat(request)
        record = self._record("chat", request.model, chat_request_json(request))
        observed = dataclasses.replace(request, on_send=_chain(record.sent, request.on_send))
        return self._recorded(inspector, record, _SCOPE.get(), self.inner.stream_chat(observed))

    def _record(self, endpoint: str, model: str, request: JsonDict) -> InspectionRecord:
        return InspectionRecord(kind=endpoint, endpoint=endpoint, model=model,
                                engine=self.inner.kind, host=self.inner.host, request=request)

    async def _recorded(self, inspector: Inspector, record: InspectionRecord,
                        scope: InspectionScope | None,
                        chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        """Pass chunks through; write the record once, however the stream ends."""
        if scope is not None:
            scope.attach(inspector, record)
        parts: list[str] = []
        thinking: list[str] = []
        try:
            async with contextlib.aclosing(closing_stream(chunks)) as stream:
                async for chunk in stream:
                    parts.append(chunk.text)
                    thinking.append(chunk.thinking)
                    if chunk.done and chunk.metrics is not None:
                        record.metrics = chunk.metrics.to_json()
                        _served_by(record, chunk.metrics)
                        record.outcome = "ok"
                    yield chunk
        except EngineError as exc:
            if record.outcome == "running":
                record.outcome, record.error = "error", str(exc)
            raise
        finally:
            if record.outcome == "running":
                record.outcome = "cancelled"
            record.response = "".join(parts)
            record.thinking = "".join(thinking)
            record.elapsed_ms = (time.perf_counter() - record.started) * 1000.0
            inspector.write(record)


def _served_by(record: InspectionRecord, metrics: Metrics) -> None:
    """A provider's request: the endpoint that served it, and why others did not."""
    if metrics.endpoint:
        record.host = metrics.endpoint
    if metrics.endpoint_failures and record.metrics is not None:
        record.metrics["endpointFailures"] = list(metrics.endpoint_failures)


def _chain(first: SendObserver, then: SendObserver | None) -> SendObserver:
    """Both observers, so that wrapping a request keeps an observer set further out."""
    if then is None:
        return first

    def both(wire: WireRequest) -> None:
        first(wire)
        then(wire)

    return both


def inspector_for(settings: Settings, env: Mapping[str, str] | None = None) -> Inspector:
    """The inspector ring of `settings`, redacting the configured API key's value."""
    environ = os.environ if env is None else env
    return Inspector(
        size=settings.inspector.size,
        redactor=Redactor.from_env(environ, *settings.api_key_envs),
    )


def inspecting(engine: Engine, settings: Settings) -> Engine:
    """`engine`, recording every generation in the inspector ring (used by the CLI)."""
    ring = inspector_for(settings)
    return InspectingEngine(engine, lambda: ring)
