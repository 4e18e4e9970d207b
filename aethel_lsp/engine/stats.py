"""Usage statistics that really count, kept across runs in a small SQLite file.

One row per generation (ok / error / cancelled, with the engine's own token counts and
the client's TTFT) and one per probe measurement.  Aggregates (mean, p50, p95) are
computed when asked, from the rows, so nothing is approximated on the way in.

Several processes may write at once (an editor per window, plus the CLI): the file
uses WAL, a busy timeout, and one short transaction per write.  A corrupt file is
moved aside and replaced by a fresh one, and `notice` says so; statistics must never
stop a generation, so write failures are logged and swallowed.

Write-behind (`background=True`, what the language server uses): `record` only queues
the row and returns (~µs); one writer thread per instance commits it, so no SQLite
write (~0.3 ms, up to the busy timeout under contention) runs on the event loop in
front of a generation's final chunk.  Every read first waits for the queued rows
(`flush`), so what `aethel.throughput` reports is immediately consistent with what was
recorded; `close()` and interpreter exit flush too.  The writer thread ends after a
short idle period and is started again by the next write.  Without `background`
(the CLI, the library facade), writes are synchronous as before.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aethel_lsp.engine.types import JsonDict, Metrics
from aethel_lsp.paths import private_dir, private_sqlite, state_dir

log = logging.getLogger(__name__)

Outcome = Literal["ok", "error", "cancelled"]
STATS_FILE = "usage.sqlite3"
BUSY_TIMEOUT_S = 5.0
MAX_ROWS = 100_000  # per table; older rows are pruned so the file stays small
WRITER_IDLE_S = 5.0  # the write-behind thread ends after this long without work

_Write = tuple[str, tuple[object, ...], str]  # sql, row, table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    prompt_tokens INTEGER,
    tokens_generated INTEGER,
    ttft_ms REAL,
    tokens_per_second REAL,
    latency_ms REAL,
    error TEXT,
    cost_usd REAL
);
CREATE INDEX IF NOT EXISTS generations_model ON generations(model);
CREATE TABLE IF NOT EXISTS probes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    model TEXT NOT NULL,
    load_ms REAL,
    ttft_ms REAL,
    tokens_per_second REAL
);
"""


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile (`fraction` in 0..1); `None` for no samples.

    >>> percentile([10.0, 20.0, 30.0, 40.0], 0.5)
    25.0
    >>> percentile([5.0], 0.95), percentile([], 0.5)
    (5.0, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True)
class ModelUsage:
    """Everything measured for one model, over all runs."""

    model: str
    requests: int = 0
    errors: int = 0
    cancelled: int = 0
    # None: requests succeeded but the engine counted none of their tokens (unknown, not 0).
    prompt_tokens: int | None = 0
    tokens_generated: int | None = 0
    uncounted: int = 0  # successful requests whose generated tokens the engine did not count
    tokens_per_second_mean: float | None = None
    tokens_per_second_p50: float | None = None
    tokens_per_second_p95: float | None = None
    ttft_ms_mean: float | None = None
    ttft_ms_p50: float | None = None
    ttft_ms_p95: float | None = None
    cost_usd: float | None = None  # None: no generation of this model had a known price

    def to_json(self) -> JsonDict:
        """The per-model object of `aethel.throughput` and `aethel-lsp stats --json`."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "promptTokens": self.prompt_tokens,
            "tokensGenerated": self.tokens_generated,
            "uncountedRequests": self.uncounted,
            "tokensPerSecond": _round(self.tokens_per_second_mean),
            "tokensPerSecondP50": _round(self.tokens_per_second_p50),
            "tokensPerSecondP95": _round(self.tokens_per_second_p95),
            "timeToFirstTokenMs": _round(self.ttft_ms_mean),
            "timeToFirstTokenMsP50": _round(self.ttft_ms_p50),
            "timeToFirstTokenMsP95": _round(self.ttft_ms_p95),
            "costUsd": None if self.cost_usd is None else round(self.cost_usd, 6),
        }


@dataclass(frozen=True)
class ProbeResult:
    """One timed probe of a model (load time, first token, generation speed)."""

    model: str
    at: float
    load_ms: float | None
    ttft_ms: float | None
    tokens_per_second: float | None

    def to_json(self) -> JsonDict:
        return {
            "model": self.model,
            "at": self.at,
            "loadMs": _round(self.load_ms),
            "timeToFirstTokenMs": _round(self.ttft_ms),
            "tokensPerSecond": _round(self.tokens_per_second),
        }


MAX_QUEUED_ROWS = 10_000

class UsageStats:
    """Per-model usage statistics in `state_dir()/usage.sqlite3` (or `path`)."""

    def __init__(self, path: str | Path | None = None, *, background: bool = False) -> None:
        self.path = Path(path) if path is not None else state_dir() / STATS_FILE
        self.notice: str | None = None
        self.background = background
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        # Bounded: a writer stuck behind another process's lock must not make a long
        # session's memory grow; past the bound, rows are dropped (and that is logged).
        self._queue: queue.Queue[_Write] = queue.Queue(maxsize=MAX_QUEUED_ROWS)
        self._dropped = 0
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._open_or_recover()
        if background:
            atexit.register(_flush_at_exit, weakref.ref(self))

    # -- writing ----------------------------------------------------------------------

    def record(self, model: str, outcome: Outcome, metrics: Metrics | None = None,
               error: str | None = None) -> None:
        """One generation's outcome; never raises (statistics must not break a request)."""
        m = metrics or Metrics(model=model)
        row = (time.time(), model, outcome, m.prompt_tokens, m.tokens_generated,
               m.time_to_first_token_ms, m.tokens_per_second, m.latency_ms, error, m.cost_usd)
        self._submit(
            "INSERT INTO generations (at, model, outcome, prompt_tokens, tokens_generated, "
            "ttft_ms, tokens_per_second, latency_ms, error, cost_usd) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            row, "generations")

    def record_probe(self, model: str, load_ms: float | None, ttft_ms: float | None,
                     tokens_per_second: float | None) -> None:
        """One probe measurement (kept with the usage statistics, issue 9)."""
        self._submit("INSERT INTO probes (at, model, load_ms, ttft_ms, tokens_per_second) "
                    "VALUES (?,?,?,?,?)",
                    (time.time(), model, load_ms, ttft_ms, tokens_per_second), "probes")

    def clear(self, model: str | None = None) -> int:
        """Delete every row, or only `model`'s; returns how many generations went."""
        self.flush()
        with self._connection() as db:
            if model is None:
                gone = db.execute("DELETE FROM generations").rowcount
                db.execute("DELETE FROM probes")
            else:
                gone = db.execute("DELETE FROM generations WHERE model = ?", (model,)).rowcount
                db.execute("DELETE FROM probes WHERE model = ?", (model,))
        return int(gone)

    def flush(self) -> None:
        """Wait until every queued row is written (no-op without `background`).

        Never call it from the writer thread itself (it would wait for itself).
        """
        if self.background:
            self._queue.join()

    def _submit(self, sql: str, row: tuple[object, ...], table: str) -> None:
        """Write now, or (background) queue the row for the writer thread."""
        if not self.background:
            self._write(sql, row, table)
            return
        with self._writer_lock:
            try:
                self._queue.put_nowait((sql, row, table))
            except queue.Full:
                self._dropped += 1
                if self._dropped == 1:
                    log.warning("usage statistics: the writer is behind; rows are dropped")
                return
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._drain, name="aethel-usage-stats", daemon=True
                )
                self._writer.start()

    def _drain(self) -> None:
        """The writer thread: write queued rows in order; end after `WRITER_IDLE_S` idle."""
        while True:
            try:
                item = self._queue.get(timeout=WRITER_IDLE_S)
            except queue.Empty:
                with self._writer_lock:  # `_submit` puts under this lock: no row is stranded
                    if self._queue.empty():
                        self._writer = None
                        return
                continue
            try:
                self._write(*item)
            except Exception as exc:  # _write swallows sqlite errors; anything else too
                log.warning("could not record usage statistics in %s: %s", self.path, exc)
            finally:
                self._queue.task_done()

    def _write(self, sql: str, row: tuple[object, ...], table: str) -> None:
        """Insert one row; a file that turns out corrupt now is recovered and written once more."""
        for attempt in range(2):
            try:
                with self._connection() as db:
                    cursor = db.execute(sql, row)
                    if (cursor.lastrowid or 0) % 1000 == 0:
                        _prune(db, table)
                return
            except sqlite3.DatabaseError as exc:
                if attempt == 0 and not _is_lock_error(exc) and self.path.is_file():
                    self._try_recover(exc)
                    continue
                log.warning("could not record usage statistics in %s: %s", self.path, exc)
                return

    def _try_recover(self, exc: sqlite3.DatabaseError) -> None:
        try:
            self._recover(exc)
        except (OSError, sqlite3.Error) as failure:
            log.warning("could not recover the usage statistics file %s: %s", self.path, failure)

    # -- reading ----------------------------------------------------------------------

    def models(self) -> dict[str, ModelUsage]:
        """Aggregates per model, most used first."""
        rows = self._read(
            "SELECT model, outcome, prompt_tokens, tokens_generated, ttft_ms, "
            "tokens_per_second, cost_usd FROM generations ORDER BY id", ())
        grouped: dict[str, list[tuple[object, ...]]] = {}
        for row in rows:
            grouped.setdefault(str(row[0]), []).append(row)
        usages = [_aggregate(model, model_rows) for model, model_rows in grouped.items()]
        usages.sort(key=lambda usage: -usage.requests)
        return {usage.model: usage for usage in usages}

    def total_cost_usd(self) -> float | None:
        """The known cost of every recorded generation; None when none had a price."""
        rows = self._read("SELECT SUM(cost_usd), COUNT(cost_usd) FROM generations", ())
        total, counted = rows[0] if rows else (None, 0)
        return float(total) if counted and isinstance(total, (int, float)) else None

    def cost_since(self, epoch: float) -> float:
        """What generations recorded since `epoch` cost (the daily budget's spend)."""
        rows = self._read("SELECT SUM(cost_usd) FROM generations WHERE at >= ?", (epoch,))
        total = rows[0][0] if rows else None
        return float(total) if isinstance(total, (int, float)) else 0.0

    def usage(self, model: str) -> ModelUsage:
        return self.models().get(model, ModelUsage(model=model))

    def probes(self, model: str | None = None) -> list[ProbeResult]:
        """Probe measurements, newest first."""
        sql = "SELECT model, at, load_ms, ttft_ms, tokens_per_second FROM probes"
        args: tuple[object, ...] = ()
        if model is not None:
            sql, args = sql + " WHERE model = ?", (model,)
        rows = self._read(sql + " ORDER BY id DESC", args)
        return [ProbeResult(str(r[0]), _float(r[1]) or 0.0, _float(r[2]), _float(r[3]),
                            _float(r[4])) for r in rows]

    def to_json(self) -> JsonDict:
        return {name: usage.to_json() for name, usage in self.models().items()}

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        """Rows of a query; a file found corrupt only now is recovered (and reads empty)."""
        self.flush()  # rows recorded so far are visible to this read
        try:
            with self._connection() as db:
                return [tuple(row) for row in db.execute(sql, args).fetchall()]
        except sqlite3.DatabaseError as exc:
            if _is_lock_error(exc):
                raise
            self._recover(exc)
            return []

    # -- the file ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The instance's connection, one transaction, one thread at a time.

        One connection is kept open: closing the last connection to a WAL database
        checkpoints and fsyncs (~25 ms here), far too slow for a write per generation on
        the event loop; a kept connection makes a write ~0.3 ms.
        """
        with self._lock:
            if self._db is None:
                self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S,
                                           check_same_thread=False)
                # WAL + NORMAL: no fsync per commit; a power cut may lose the last rows,
                # never corrupt the file.
                self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                yield self._db

    def close(self) -> None:
        """Write what is queued, then close the connection (a later write reopens it)."""
        self.flush()
        self._close_connection()

    def _close_connection(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _open_or_recover(self) -> None:
        private_dir(self.path.parent)
        try:
            self._initialize()
        except sqlite3.DatabaseError as exc:
            if _is_lock_error(exc):
                raise
            self._recover(exc)

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Move the corrupt file aside, start fresh, and say so in `notice`."""
        self._close_connection()  # (may run on the writer thread: must not flush)
        aside = self._move_aside()
        self.notice = (f"The usage statistics file {self.path} was corrupt ({exc}); it was "
                       f"moved to {aside} and statistics start fresh.")
        log.warning("%s", self.notice)
        self._initialize()

    def _initialize(self) -> None:
        private_sqlite(self.path)  # 0600 before SQLite creates its WAL files alike
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(generations)")}
            if "cost_usd" not in columns:  # a file written before costs were recorded
                db.execute("ALTER TABLE generations ADD COLUMN cost_usd REAL")
                db.commit()
            db.execute("SELECT COUNT(*) FROM generations").fetchone()
        finally:
            db.close()

    def _move_aside(self) -> Path:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        self.path.replace(aside)
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + extra).unlink()
        return aside


def _flush_at_exit(ref: weakref.ref[UsageStats]) -> None:
    """atexit: a server that exits without `close()` still writes its last rows."""
    stats = ref()
    if stats is not None:
        stats.flush()


def _is_lock_error(exc: sqlite3.DatabaseError) -> bool:
    """Busy/locked is contention (another writer), not corruption: never move the file."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _prune(db: sqlite3.Connection, table: str) -> None:
    db.execute(f"DELETE FROM {table} WHERE id <= (SELECT MAX(id) FROM {table}) - ?",
               (MAX_ROWS,))


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _known_sum(rows: list[tuple[object, ...]], ok_rows: list[tuple[object, ...]],
               column: int) -> int | None:
    """The sum of the counts the engine reported; `None` when it reported none for
    requests that succeeded (an OpenAI-compatible server without usage): unknown, not 0."""
    counts = [value for value in (row[column] for row in rows) if isinstance(value, int)]
    if not counts and any(not isinstance(row[column], int) for row in ok_rows):
        return None
    return sum(counts)


def _aggregate(model: str, rows: list[tuple[object, ...]]) -> ModelUsage:
    outcomes = [row[1] for row in rows]
    ok_rows = [row for row in rows if row[1] == "ok"]
    rates = [float(r[5]) for r in ok_rows if isinstance(r[5], (int, float))]
    ttfts = [float(r[4]) for r in ok_rows if isinstance(r[4], (int, float))]
    costs = [float(r[6]) for r in rows if isinstance(r[6], (int, float))]
    return ModelUsage(
        model=model,
        requests=len(rows),
        errors=outcomes.count("error"),
        cancelled=outcomes.count("cancelled"),
        prompt_tokens=_known_sum(rows, ok_rows, 2),
        tokens_generated=_known_sum(rows, ok_rows, 3),
        uncounted=sum(1 for row in ok_rows if not isinstance(row[3], int)),
        tokens_per_second_mean=_mean(rates),
        tokens_per_second_p50=percentile(rates, 0.5),
        tokens_per_second_p95=percentile(rates, 0.95),
        ttft_ms_mean=_mean(ttfts),
        ttft_ms_p50=percentile(ttfts, 0.5),
        ttft_ms_p95=percentile(ttfts, 0.95),
        cost_usd=sum(costs) if costs else None,
    )
