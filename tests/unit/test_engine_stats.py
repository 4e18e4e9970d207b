"""UsageStats: persistence across instances, concurrent writers, a corrupt file, probes."""

from __future__ import annotations

import doctest
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import aethel_lsp.engine.stats as stats_module
from aethel_lsp.engine.stats import UsageStats, percentile
from aethel_lsp.engine.types import Metrics


def metrics(model: str, tps: float, ttft: float, tokens: int = 10, prompt: int = 5) -> Metrics:
    return Metrics(model=model, prompt_tokens=prompt, tokens_generated=tokens,
                   time_to_first_token_ms=ttft, latency_ms=ttft + 100, tokens_per_second=tps)


def test_default_path_is_in_the_state_dir(isolated_env: dict[str, str]) -> None:
    stats = UsageStats()
    assert stats.path == Path(isolated_env["AETHEL_LSP_STATE_DIR"]) / "usage.sqlite3"
    assert stats.path.exists() and stats.notice is None


def test_aggregates_and_json_shape(tmp_path: Path) -> None:
    stats = UsageStats(tmp_path / "u.sqlite3")
    for tps, ttft in [(10.0, 100.0), (20.0, 200.0), (30.0, 300.0), (40.0, 400.0)]:
        stats.record("m", "ok", metrics("m", tps, ttft))
    stats.record("m", "error", error="EngineOffline")
    stats.record("m", "cancelled")
    usage = stats.usage("m")
    assert (usage.requests, usage.errors, usage.cancelled) == (6, 1, 1)
    assert (usage.tokens_generated, usage.prompt_tokens) == (40, 20)
    assert usage.to_json() == {
        "requests": 6, "errors": 1, "cancelled": 1, "promptTokens": 20, "tokensGenerated": 40,
        "uncountedRequests": 0, "tokensPerSecond": 25.0, "tokensPerSecondP50": 25.0,
        "tokensPerSecondP95": 38.5,
        "timeToFirstTokenMs": 250.0, "timeToFirstTokenMsP50": 250.0,
        "timeToFirstTokenMsP95": 385.0, "costUsd": None,
    }
    assert stats.usage("unknown").requests == 0


def test_costs_per_model_in_total_and_since(tmp_path: Path) -> None:
    import dataclasses
    import time

    stats = UsageStats(tmp_path / "u.sqlite3")
    paid = dataclasses.replace(metrics("claude/h", 10.0, 100.0), cost_usd=0.25)
    stats.record("claude/h", "ok", paid)
    stats.record("claude/h", "ok", dataclasses.replace(paid, cost_usd=0.5))
    stats.record("local-model", "ok", metrics("local-model", 10.0, 100.0))
    assert stats.usage("claude/h").to_json()["costUsd"] == 0.75
    assert stats.usage("local-model").cost_usd is None
    assert stats.total_cost_usd() == 0.75
    assert stats.cost_since(time.time() - 60) == 0.75
    assert stats.cost_since(time.time() + 60) == 0.0


def test_a_file_from_before_costs_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE generations (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL, "
                     "model TEXT, outcome TEXT, prompt_tokens INTEGER, tokens_generated INTEGER, "
                     "ttft_ms REAL, tokens_per_second REAL, latency_ms REAL, error TEXT);"
                     "INSERT INTO generations (at, model, outcome) VALUES (1, 'old', 'ok');")
    db.close()
    stats = UsageStats(path)
    stats.record("new", "ok", metrics("new", 10.0, 100.0))
    assert set(stats.models()) == {"old", "new"} and stats.notice is None
    assert stats.total_cost_usd() is None


def test_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    UsageStats(path).record("a", "ok", metrics("a", 50.0, 80.0))
    UsageStats(path).record("b", "ok", metrics("b", 5.0, 800.0))
    again = UsageStats(path)
    assert set(again.models()) == {"a", "b"}
    assert again.usage("a").tokens_per_second_mean == 50.0
    assert again.to_json()["b"]["timeToFirstTokenMsP50"] == 800.0


def _write_many(path: str, model: str, count: int) -> None:
    stats = UsageStats(path)
    for i in range(count):
        stats.record(model, "ok", metrics(model, float(i), 1.0))


def test_concurrent_writers_threads_and_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "u.sqlite3")
    UsageStats(path)
    threads = [threading.Thread(target=_write_many, args=(path, f"t{i}", 40)) for i in range(4)]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_many, args=(path, f"p{i}", 40)) for i in range(2)]
    for worker in [*threads, *processes]:
        worker.start()
    for thread in threads:
        thread.join(60)
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    models = UsageStats(path).models()
    assert {name: usage.requests for name, usage in models.items()} == {
        "t0": 40, "t1": 40, "t2": 40, "t3": 40, "p0": 40, "p1": 40}


def test_corrupt_file_is_moved_aside_and_restarted(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)
    stats = UsageStats(path)
    assert stats.notice is not None
    assert "was corrupt" in stats.notice and "start fresh" in stats.notice
    asides = list(tmp_path.glob("u.sqlite3.corrupt-*"))
    assert len(asides) == 1 and str(asides[0]) in stats.notice
    stats.record("m", "ok", metrics("m", 1.0, 1.0))
    assert stats.usage("m").requests == 1


def test_write_failures_never_raise(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stats = UsageStats(tmp_path / "u.sqlite3")
    stats.close()
    stats.path = tmp_path / "missing-dir" / "x.sqlite3"  # cannot be opened
    stats.record("m", "ok", metrics("m", 1.0, 1.0))
    assert "could not record usage statistics" in caplog.text


def test_probes(tmp_path: Path) -> None:
    stats = UsageStats(tmp_path / "u.sqlite3")
    stats.record_probe("m", 1200.0, 150.0, 42.0)
    stats.record_probe("n", None, 90.0, 80.0)
    probes = stats.probes()
    assert [p.model for p in probes] == ["n", "m"]
    assert probes[1].to_json()["loadMs"] == 1200.0
    assert [p.model for p in UsageStats(stats.path).probes("m")] == ["m"]


def test_percentile() -> None:
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert percentile([3.0, 1.0], 1.0) == 3.0
    assert doctest.testmod(stats_module).failed == 0


def test_file_corrupted_while_open_is_recovered_on_write(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    stats = UsageStats(path)
    stats.record("m", "ok", metrics("m", 1.0, 1.0))
    stats.close()
    path.write_bytes(b"garbage" * 1000)
    stats.record("m", "ok", metrics("m", 2.0, 2.0))
    assert stats.notice is not None and "was corrupt" in stats.notice
    assert stats.usage("m").requests == 1


# -- write-behind (the language server's mode) -------------------------------------------


def test_background_writes_happen_off_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`record` only queues; the writer thread commits; a read sees every row at once."""
    stats = UsageStats(tmp_path / "u.sqlite3", background=True)
    writers: list[str] = []
    real_write = UsageStats._write

    def spy(self: UsageStats, sql: str, row: tuple[object, ...], table: str) -> None:
        writers.append(threading.current_thread().name)
        real_write(self, sql, row, table)

    monkeypatch.setattr(UsageStats, "_write", spy)
    for i in range(20):
        stats.record("m", "ok", metrics("m", float(i), 1.0))
    stats.record_probe("m", 10.0, 1.0, 2.0)
    assert stats.usage("m").requests == 20  # consistent immediately: reads flush first
    assert [p.model for p in stats.probes()] == ["m"]
    assert writers and set(writers) == {"aethel-usage-stats"}


def test_background_close_writes_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    stats = UsageStats(path, background=True)
    for i in range(50):
        stats.record("m", "cancelled" if i % 2 else "ok", metrics("m", 1.0, 1.0))
    stats.close()
    usage = UsageStats(path).usage("m")  # another instance (another process, in real life)
    assert (usage.requests, usage.cancelled) == (50, 25)


def test_background_writer_stops_when_idle_and_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats_module, "WRITER_IDLE_S", 0.05)
    stats = UsageStats(tmp_path / "u.sqlite3", background=True)
    stats.record("m", "ok", metrics("m", 1.0, 1.0))
    stats.flush()
    first = stats._writer
    assert first is not None
    first.join(10)
    assert not first.is_alive() and stats._writer is None
    stats.record("m", "ok", metrics("m", 2.0, 1.0))
    assert stats.usage("m").requests == 2


def test_background_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    stats = UsageStats(path, background=True)

    def write_many(model: str) -> None:
        for i in range(40):
            stats.record(model, "ok", metrics(model, float(i), 1.0))

    threads = [threading.Thread(target=write_many, args=(f"t{i}",)) for i in range(4)]
    process = multiprocessing.get_context("spawn").Process(
        target=_write_many, args=(str(path), "p0", 40))
    for worker in [*threads, process]:
        worker.start()
    for thread in threads:
        thread.join(60)
    process.join(60)
    assert process.exitcode == 0
    assert {name: u.requests for name, u in stats.models().items()} == {
        "t0": 40, "t1": 40, "t2": 40, "t3": 40, "p0": 40}


def test_background_file_corrupted_while_open_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    stats = UsageStats(path, background=True)
    stats.record("m", "ok", metrics("m", 1.0, 1.0))
    stats.close()
    path.write_bytes(b"garbage" * 1000)
    stats.record("m", "ok", metrics("m", 2.0, 2.0))  # recovered on the writer thread
    assert stats.usage("m").requests == 1
    assert stats.notice is not None and "was corrupt" in stats.notice


def test_background_rows_are_written_at_interpreter_exit(tmp_path: Path) -> None:
    """A server process that exits without `close()` still writes what it queued."""
    path = tmp_path / "u.sqlite3"
    code = (
        "from aethel_lsp.engine.stats import UsageStats\n"
        f"stats = UsageStats({str(path)!r}, background=True)\n"
        "for _ in range(30):\n"
        "    stats.record('m', 'ok')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert UsageStats(path).usage("m").requests == 30


def test_counts_the_engine_never_reported_are_unknown_not_zero(tmp_path: Path) -> None:
    """A server without `usage` (nor timings) leaves counts None: `stats` says unknown."""
    stats = UsageStats(tmp_path / "u.sqlite3")
    uncounted = Metrics(model="m", latency_ms=300.0)
    stats.record("m", "ok", uncounted)
    stats.record("m", "ok", uncounted)
    usage = stats.usage("m")
    assert (usage.tokens_generated, usage.prompt_tokens, usage.uncounted) == (None, None, 2)
    assert usage.to_json()["tokensGenerated"] is None
    stats.record("m", "ok", metrics("m", 20.0, 100.0, tokens=7))
    usage = stats.usage("m")
    assert (usage.tokens_generated, usage.uncounted) == (7, 2)
    assert stats.usage("never-used").tokens_generated == 0  # no request: truly none
