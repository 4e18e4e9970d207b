"""The aethel-lsp benchmark: the real server process, a real LSP client over stdio, the
project's fake Ollama over real HTTP.  Run from the repository root:

    .venv/bin/python -m bench.run                 # all rows, ~2 minutes
    .venv/bin/python -m bench.run --quick         # fewer samples
    .venv/bin/python -m bench.run --token-delay 0.002 --json bench/results.json

Every figure is printed beside its *floor* — the same work done by calling the fake
directly with httpx (or, for rows without engine work, the same work without our code)
— as a ratio, and beside the goal of issue 5.  The client, the fake (a thread) and the
server (a subprocess) all use `time.monotonic()` of this machine, so the fake's
per-line send times and close times are comparable with the client's receive times.
"""

# mypy: disable-error-code="untyped-decorator,no-untyped-call"
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from tests.fakes.http import Exchange
from tests.fakes.ollama import FakeOllama, RecordedStream, Reply
from tests.fakes.ollama_models import CODER

MODEL = CODER.name
SERVER_ARGS = ["-c", "from aethel_lsp.lsp.server import create_server; create_server().start_io()"]
BARE_PYGLS_ARGS = [
    "-c",
    "from pygls.lsp.server import LanguageServer; LanguageServer('bare', '1').start_io()",
]
ROOT = Path(__file__).resolve().parents[1]


# --- instruments ------------------------------------------------------------------------


class TimedFake(FakeOllama):
    """The fake Ollama, also recording when each stream line was written (monotonic)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line_times: dict[int, list[float]] = {}

    async def _send_line(
        self, ex: Exchange, record: RecordedStream, data: bytes, **kwargs: Any
    ) -> None:
        await super()._send_line(ex, record, data, **kwargs)
        self.line_times.setdefault(id(record), []).append(time.monotonic())


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Row:
    figure: str
    value: float | None
    unit: str
    floor: float | None
    goal: float | None
    goal_text: str
    samples: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.floor is None or self.floor <= 0:
            return None
        return self.value / self.floor

    @property
    def met(self) -> bool | None:
        if self.value is None or self.goal is None:
            return None
        return self.value <= self.goal

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["met"] = self.met
        return out


class Client:
    """A pygls LanguageClient with timestamped notifications (progress, logs, diagnostics)."""

    def __init__(self) -> None:
        self.lsp = LanguageClient("aethel-bench", "1")
        self.progress: list[tuple[float, types.ProgressParams]] = []
        self.logs: list[tuple[float, str]] = []
        self.diagnostics: list[tuple[float, types.PublishDiagnosticsParams]] = []
        self.pid: int | None = None
        lsp = self.lsp

        @lsp.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def _create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @lsp.feature(types.PROGRESS)
        def _progress(params: types.ProgressParams) -> None:
            self.progress.append((time.monotonic(), params))

        @lsp.feature(types.WINDOW_LOG_MESSAGE)
        def _log(params: types.LogMessageParams) -> None:
            self.logs.append((time.monotonic(), params.message))

        @lsp.feature(types.WINDOW_SHOW_MESSAGE)
        def _show(params: types.ShowMessageParams) -> None:
            self.logs.append((time.monotonic(), params.message))

        @lsp.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.diagnostics.append((time.monotonic(), params))

        @lsp.feature(types.WINDOW_SHOW_DOCUMENT)
        def _show_document(params: types.ShowDocumentParams) -> types.ShowDocumentResult:
            return types.ShowDocumentResult(success=True)

        @lsp.feature(types.WORKSPACE_APPLY_EDIT)
        def _apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            return types.ApplyWorkspaceEditResult(applied=True)

        @lsp.feature(types.CLIENT_REGISTER_CAPABILITY)
        def _register(params: types.RegistrationParams) -> None:
            return None

        @lsp.feature("aethel/status")
        def _status(params: Any) -> None:
            return None

    async def start(
        self, env: dict[str, str], root: Path, options: Any, args: Sequence[str] = SERVER_ARGS
    ) -> float:
        """Spawn the server and initialize; returns spawn -> initialize result (ms)."""
        t0 = time.monotonic()
        await self.lsp.start_io(sys.executable, *args, env=env)
        server = getattr(self.lsp, "_server", None)
        self.pid = getattr(server, "pid", None)
        await self.lsp.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    window=types.WindowClientCapabilities(
                        work_done_progress=True,
                        show_document=types.ShowDocumentClientCapabilities(support=True),
                    ),
                    workspace=types.WorkspaceClientCapabilities(apply_edit=True),
                ),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="bench")],
                initialization_options=options,
            )
        )
        elapsed = (time.monotonic() - t0) * 1000.0
        self.lsp.initialized(types.InitializedParams())
        return elapsed

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.lsp.shutdown_async(None), 5)
        with contextlib.suppress(Exception):
            self.lsp.exit(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.lsp.stop(), 5)

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.lsp.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=version, text=text
                )
            )
        )

    def insert(self, uri: str, version: int, line: int, character: int, text: str) -> None:
        position = types.Position(line=line, character=character)
        self.lsp.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=position, end=position), text=text
                    )
                ],
            )
        )

    def inline(self, uri: str, line: int, character: int, *, invoked: bool) -> asyncio.Future[Any]:
        kind = (
            types.InlineCompletionTriggerKind.Invoked
            if invoked
            else types.InlineCompletionTriggerKind.Automatic
        )
        return asyncio.ensure_future(
            self.lsp.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                    context=types.InlineCompletionContext(trigger_kind=kind),
                )
            )
        )


def shown(result: Any) -> str:
    if isinstance(result, types.InlineCompletionList) and result.items:
        return str(result.items[0].insert_text)
    return ""


def isolated_env(base: Path, fake_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "AETHEL_LSP_"))}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        path = base / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["AETHEL_LSP_STATE_DIR"] = str(base / "state")
    env["OLLAMA_HOST"] = fake_url
    env["PYTHONPATH"] = str(ROOT)
    return env


def settings(log_level: str = "info", **completion: Any) -> dict[str, Any]:
    return {
        "engine": "ollama",
        "model": MODEL,
        "logLevel": log_level,
        "completion": {
            "model": MODEL,
            "otherDocuments": False,
            "disabledLanguages": ["plaintext"],
            **completion,
        },
    }


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.002)
    raise TimeoutError("condition not met")


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


async def direct_generate(http: httpx.AsyncClient, url: str, body: Any) -> float:
    """The floor: the same /api/generate stream read to its final line with httpx (ms)."""
    for attempt in range(3):
        t0 = time.monotonic()
        try:
            done = False
            async with http.stream("POST", url, json=body) as r:
                # Read to the end (not just the final line) so that the connection goes
                # back to the pool, as the engine does: otherwise every floor sample
                # would pay a new TCP connection.
                async for raw in r.aiter_lines():
                    done = done or bool(raw and json.loads(raw).get("done"))
            if not done:
                raise httpx.RemoteProtocolError("no final line")
            return (time.monotonic() - t0) * 1000.0
        except httpx.HTTPError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- scenarios --------------------------------------------------------------------------


@dataclass
class Bench:
    fake: TimedFake
    base: Path
    quick: bool
    token_delay: float
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    async def server(self, name: str, options: Any) -> Client:
        client = Client()
        root = self.base / name
        root.mkdir(parents=True, exist_ok=True)
        await client.start(isolated_env(self.base / f"{name}-env", self.fake.url), root, options)
        return client

    def _streaming(self, index: int, tokens: int) -> bool:
        streams = self.fake.streams
        return len(streams) > index and streams[index].tokens_sent >= tokens

    # 1. inline completion: LSP round trip minus the same generation done directly
    async def inline_overhead(self, client: Client, http: httpx.AsyncClient) -> None:
        count = self.n(200, 40)
        tokens = ["compute", "_total", "(", "values", ",", " weights", ")", " +", " offset"]
        self.fake.set_reply(MODEL, Reply(tokens=tokens, token_delay=self.token_delay))
        lines = [f"value_{i} = " for i in range(count + 20)]
        uri = (self.base / "overhead.py").as_uri()
        client.open(uri, "\n".join(lines) + "\n")
        overheads: list[float] = []
        rtts: list[float] = []
        floors: list[float] = []
        for i in range(count + 10):
            line = i
            t0 = time.monotonic()
            result = await client.inline(uri, line, len(lines[line]), invoked=True)
            rtt = (time.monotonic() - t0) * 1000.0
            if i >= 10 and shown(result) != "".join(tokens):
                raise RuntimeError(f"unexpected inline result {result!r}")
            body = self.fake.generate_requests()[-1]
            floor = await direct_generate(http, f"{self.fake.url}/api/generate", body)
            if i >= 10:  # warm-up: first show(), first connection
                rtts.append(rtt)
                floors.append(floor)
                overheads.append(rtt - floor)
        # The pygls floor: the same request for a document where completion is off
        # (answered before any of our logic runs): JSON-RPC + pygls in both processes.
        plain = (self.base / "notes.txt").as_uri()
        client.open(plain, "nothing here\n", language="plaintext")
        nulls: list[float] = []
        for _ in range(count):
            t0 = time.monotonic()
            await client.inline(plain, 0, 5, invoked=True)
            nulls.append((time.monotonic() - t0) * 1000.0)
        self.rows.append(
            Row(
                "inline completion: empty LSP round trip p50 (pygls floor)",
                pct(nulls, 50),
                "ms",
                None,
                None,
                "-",
                len(nulls),
                "completion disabled for the language: no scheduler, no engine",
            )
        )
        # Attribution: the engine layer alone (OllamaEngine, in this process) against the
        # same raw httpx read, on the same body.
        engine_extra = await self._engine_layer(http, self.fake.generate_requests()[-1], count)
        self.rows.append(
            Row(
                "engine layer alone: OllamaEngine - raw httpx p50",
                pct(engine_extra, 50),
                "ms",
                None,
                None,
                "-",
                len(engine_extra),
                "in-process, same /api/generate body: per-line timeouts, parsing, metrics",
            )
        )
        note = (
            f"{len(tokens)} tokens, {self.token_delay * 1000:.0f} ms/token; RTT p50 "
            f"{pct(rtts, 50):.2f} ms vs direct {pct(floors, 50):.2f} ms"
        )
        self.rows.append(
            Row(
                "inline completion: server overhead p50",
                pct(overheads, 50),
                "ms",
                None,
                2.0,
                "<= 2 ms",
                len(overheads),
                note,
            )
        )
        self.rows.append(
            Row(
                "inline completion: server overhead p99",
                pct(overheads, 99),
                "ms",
                None,
                10.0,
                "<= 10 ms",
                len(overheads),
            )
        )
        self.rows.append(
            Row(
                "inline completion: LSP round trip p50 (context)",
                pct(rtts, 50),
                "ms",
                pct(floors, 50),
                None,
                "-",
                len(rtts),
                "floor: same /api/generate via httpx",
            )
        )
        self.details["inline_overhead_ms"] = {"rtt": rtts, "floor": floors, "overhead": overheads}

    async def _engine_layer(
        self, http: httpx.AsyncClient, body: dict[str, Any], count: int
    ) -> list[float]:
        from aethel_lsp.engine import GenerateRequest, GenerationOptions, OllamaEngine

        engine = OllamaEngine(self.fake.url)
        options = body.get("options", {})
        request = GenerateRequest(
            model=body["model"],
            prompt=body["prompt"],
            suffix=body.get("suffix"),
            options=GenerationOptions(
                temperature=options.get("temperature"),
                num_predict=options.get("num_predict"),
                num_ctx=options.get("num_ctx"),
            ),
            keep_alive=body.get("keep_alive"),
        )
        extra: list[float] = []
        try:
            for i in range(count + 5):
                # Alternate the order so that neither side always runs second.
                if i % 2:
                    direct = await direct_generate(http, f"{self.fake.url}/api/generate", body)
                t0 = time.monotonic()
                async for _ in engine.stream_generate(request):
                    pass
                through_engine = (time.monotonic() - t0) * 1000.0
                if not i % 2:
                    direct = await direct_generate(http, f"{self.fake.url}/api/generate", body)
                if i >= 5:
                    extra.append(through_engine - direct)
        finally:
            await engine.aclose()
        return extra

    # 2. streamed action: token written by the fake -> $/progress report at the client
    async def streamed_action(self, client: Client, http: httpx.AsyncClient) -> None:
        # A model slower than the 50 ms coalescing window (every token can be reported at
        # once) and a fast one (50 tok/s: reports must be coalesced).
        for label, delay, count in (("20 tok/s", 0.05, 40), ("50 tok/s", 0.02, 100)):
            await self._streamed_action(client, http, label, delay, count)

    async def _streamed_action(
        self, client: Client, http: httpx.AsyncClient, label: str, delay: float, count: int
    ) -> None:
        runs = self.n(2, 1)
        words = [f"w{i:03d} " for i in range(count)]
        uri = (self.base / "explain.py").as_uri()
        client.open(uri, "def add(a, b):\n    return a + b\n")
        latencies: list[float] = []
        floors: list[float] = []
        for _ in range(runs):
            self.fake.enqueue(Reply(tokens=words, token_delay=delay))
            before = len(self.fake.streams)
            start_progress = len(client.progress)
            result = await asyncio.wait_for(
                client.lsp.workspace_execute_command_async(
                    types.ExecuteCommandParams(
                        command="aethel.explainSelection",
                        arguments=[
                            {
                                "uri": uri,
                                "range": {
                                    "start": {"line": 0, "character": 0},
                                    "end": {"line": 2, "character": 0},
                                },
                            }
                        ],
                    )
                ),
                60,
            )
            stream = self.fake.streams[before]
            sent = self.fake.line_times[id(stream)]
            cumulative: list[tuple[float, int]] = []
            total = 0
            for t, p in client.progress[start_progress:]:
                kind, message = _progress_fields(p.value)
                if kind == "report":
                    total += len(message)
                    cumulative.append((t, total))
            final_text = str(result.get("text", "")) if isinstance(result, dict) else ""
            offset = 0
            for k, word in enumerate(words):
                offset += len(word)
                target = min(offset, len(final_text)) if final_text else offset
                arrival = next((t for t, c in cumulative if c >= target), None)
                if arrival is not None and k < len(sent):
                    latencies.append((arrival - sent[k]) * 1000.0)
            # floor: the same stream read directly with httpx
            self.fake.enqueue(Reply(tokens=words, token_delay=delay))
            body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
            before = len(self.fake.streams)
            received: list[float] = []
            async with http.stream("POST", f"{self.fake.url}/api/chat", json=body) as r:
                async for raw in r.aiter_lines():
                    if raw:
                        received.append(time.monotonic())
            sent = self.fake.line_times[id(self.fake.streams[before])]
            floors.extend((a - s) * 1000.0 for a, s in zip(received, sent, strict=False))
        note = f"{count} tokens at {delay * 1000:.0f} ms/token, {runs} run(s)"
        self.rows.append(
            Row(
                f"streamed action ({label}): token -> $/progress p50",
                pct(latencies, 50),
                "ms",
                pct(floors, 50),
                5.0,
                "<= 5 ms",
                len(latencies),
                note,
            )
        )
        self.rows.append(
            Row(
                f"streamed action ({label}): token -> $/progress p99",
                pct(latencies, 99),
                "ms",
                pct(floors, 99),
                60.0,
                "<= 60 ms",
                len(latencies),
            )
        )

    # 3. typing burst: 40 keystrokes 50 ms apart, then a pause
    async def typing_burst(self, client: Client) -> None:
        await self._typing_burst(client, cancel_previous=False)
        await self._typing_burst(client, cancel_previous=True)

    async def _typing_burst(self, client: Client, *, cancel_previous: bool) -> None:
        """40 keystrokes 50 ms apart, each a didChange + an automatic inline request.

        With `cancel_previous` the client behaves like VS Code: it sends $/cancelRequest
        for the previous inline request just before the next one."""
        style = "VS Code style, $/cancelRequest" if cancel_previous else "no client cancel"
        typed = "compute_total(values, weights) + offset_"[:40]
        continuation = ["a", "dj", "usted", " *", " 2", " -", " bias"] + [" + x"] * 25
        self.fake.set_reply(MODEL, Reply(tokens=continuation, token_delay=0.01))
        name = "burst-cancel" if cancel_previous else "burst"
        uri = (self.base / f"{name}.py").as_uri()
        prefix = "result = "
        client.open(uri, f"values = []\n{prefix}\n")
        # warm: one answered request so the model counts as loaded
        await client.inline(uri, 1, len(prefix), invoked=True)
        first_stream = len(self.fake.streams)
        version = 1
        sent_at: list[float] = []
        pending: list[asyncio.Future[Any]] = []
        for i, ch in enumerate(typed):
            version += 1
            if cancel_previous and i > 0:
                client.lsp.protocol.notify(
                    types.CANCEL_REQUEST, types.CancelParams(id=f"{name}-{i - 1}")
                )
            client.insert(uri, version, 1, len(prefix) + i, ch)
            sent_at.append(time.monotonic())
            params = types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=1, character=len(prefix) + i + 1),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
            pending.append(
                asyncio.ensure_future(
                    client.lsp.protocol.send_request_async(
                        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=f"{name}-{i}"
                    )
                )
            )
            await asyncio.sleep(0.05)
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 30)
        await asyncio.sleep(1.0)  # the pause
        streams = self.fake.streams[first_stream:]
        upstream = len(streams)
        total_tokens = sum(s.tokens_sent for s in streams)
        last_shown = shown(results[-1])
        wasted = sum(s.tokens_sent for s in streams if s.closed_early)
        answered_empty = sum(1 for r in results[:-1] if not isinstance(r, BaseException))
        closes = [
            (s.closed_at - max(t for t in sent_at if t <= s.closed_at)) * 1000.0
            for s in streams
            if s.closed_early and s.closed_at is not None and any(t <= s.closed_at for t in sent_at)
        ]
        self.details[name] = {
            "upstreamRequests": upstream,
            "tokens": total_tokens,
            "wastedTokens": wasted,
            "lastShown": last_shown,
            "earlierRequestsAnswered": answered_empty,
            "closeLatenciesMs": closes,
        }
        waste_pct = 100.0 * wasted / total_tokens if total_tokens else 0.0
        self.rows.append(
            Row(
                f"typing burst ({style}): upstream requests",
                float(upstream),
                "req",
                None,
                2.0,
                "<= 2",
                1,
                f"40 keys at 50 ms; suggestion after the pause: {last_shown[:30]!r}...",
            )
        )
        self.rows.append(
            Row(
                f"typing burst ({style}): tokens nobody saw",
                waste_pct,
                "%",
                None,
                5.0,
                "<= 5 %",
                total_tokens,
                f"{wasted} of {total_tokens} tokens",
            )
        )
        self.rows.append(
            Row(
                f"typing burst ({style}): superseded streams closed within (max)",
                max(closes) if closes else 0.0,
                "ms",
                None,
                20.0,
                "<= 20 ms",
                len(closes),
                "no stream was superseded: the debounce absorbed the burst" if not closes else "",
            )
        )

    # 3b. superseded stream close latency, forced (a request elsewhere mid-stream)
    async def supersede_close(self, client: Client, http: httpx.AsyncClient) -> None:
        count = self.n(20, 6)
        uri = (self.base / "supersede.py").as_uri()
        lines = [f"name_{i} = " for i in range(2 * count + 2)]
        client.open(uri, "\n".join(lines) + "\n")
        latencies: list[float] = []
        floors: list[float] = []
        long_reply = [f" t{i}" for i in range(60)]
        for i in range(count):
            self.fake.enqueue(Reply(tokens=long_reply, token_delay=0.01))
            self.fake.enqueue(Reply(tokens=["1"], token_delay=0.0))
            before = len(self.fake.streams)
            first = client.inline(uri, 2 * i, len(lines[2 * i]), invoked=True)
            await wait_until(partial(self._streaming, before, 2))
            t_send = time.monotonic()
            second = client.inline(uri, 2 * i + 1, len(lines[2 * i + 1]), invoked=True)
            await asyncio.wait_for(first, 10)
            stream = self.fake.streams[before]
            await wait_until(partial(_finished, stream), 10)
            await asyncio.wait_for(second, 10)
            if stream.closed_early and stream.closed_at is not None:
                latencies.append((stream.closed_at - t_send) * 1000.0)
            # floor: open the same stream directly, read 2 lines, close it
            self.fake.enqueue(Reply(tokens=long_reply, token_delay=0.01))
            before = len(self.fake.streams)
            body = {"model": MODEL, "prompt": "x", "stream": True}
            async with http.stream("POST", f"{self.fake.url}/api/generate", json=body) as r:
                seen = 0
                async for raw in r.aiter_lines():
                    seen += 1 if raw else 0
                    if seen >= 2:
                        break
                t_close = time.monotonic()
            direct = self.fake.streams[before]
            await wait_until(partial(_finished, direct), 10)
            if direct.closed_at is not None:
                floors.append((direct.closed_at - t_close) * 1000.0)
        self.rows.append(
            Row(
                "superseded stream closed within p50",
                pct(latencies, 50),
                "ms",
                pct(floors, 50),
                20.0,
                "<= 20 ms",
                len(latencies),
                "request elsewhere mid-stream; fake polls its socket every 5 ms",
            )
        )
        self.rows.append(
            Row(
                "superseded stream closed within p99",
                pct(latencies, 99),
                "ms",
                pct(floors, 99),
                20.0,
                "<= 20 ms",
                len(latencies),
            )
        )

    # 4. typed-through cache hit: server time (from the server's debug log)
    async def cache_hit(self, client: Client) -> None:
        rounds = self.n(8, 3)
        suggestion = "sum(values) + total_offset"
        self.fake.set_reply(MODEL, Reply(tokens=["sum", "(values)", " + total", "_offset"]))
        uri = (self.base / "cache.py").as_uri()
        lines = [f"total_{i} = " for i in range(rounds)]
        client.open(uri, "\n".join(lines) + "\n")
        version = 1
        rtts: list[float] = []
        upstream_before = len(self.fake.generate_requests())
        for r in range(rounds):
            await client.inline(uri, r, len(lines[r]), invoked=True)
            for i, ch in enumerate(suggestion[:-1]):
                version += 1
                client.insert(uri, version, r, len(lines[r]) + i, ch)
                t0 = time.monotonic()
                result = await client.inline(uri, r, len(lines[r]) + i + 1, invoked=False)
                rtts.append((time.monotonic() - t0) * 1000.0)
                if shown(result) != suggestion[i + 1 :]:
                    raise RuntimeError(f"cache miss at {i}: {shown(result)!r}")
        upstream = len(self.fake.generate_requests()) - upstream_before
        await asyncio.sleep(0.2)
        server_ms = [
            float(m.group(1))
            for _, line in client.logs
            if "source=cache" in line and (m := re.search(r"serverMs=([\d.]+)", line))
        ]
        self.rows.append(
            Row(
                "typed-through cache hit: server time p50",
                pct(server_ms, 50),
                "ms",
                None,
                1.0,
                "<= 1 ms",
                len(server_ms),
                f"{upstream} upstream requests for {rounds} suggestions; "
                f"hit RTT p50 {pct(rtts, 50):.2f} ms",
            )
        )
        self.rows.append(
            Row(
                "typed-through cache hit: server time p99",
                pct(server_ms, 99),
                "ms",
                None,
                1.0,
                "<= 1 ms",
                len(server_ms),
            )
        )

    # 5. cold start and idle RSS, against a bare pygls server as the floor
    async def cold_start(self) -> None:
        runs = self.n(5, 2)
        ours: list[float] = []
        bare: list[float] = []
        rss_ours: list[float] = []
        rss_bare: list[float] = []
        for i in range(runs):
            for args, times, rss in (
                (SERVER_ARGS, ours, rss_ours),
                (BARE_PYGLS_ARGS, bare, rss_bare),
            ):
                client = Client()
                root = self.base / f"cold{i}"
                root.mkdir(exist_ok=True)
                env = isolated_env(self.base / f"cold{i}-env", self.fake.url)
                times.append(await client.start(env, root, settings(), args))
                await asyncio.sleep(2.0)  # idle: initialized handled, status check done
                value = rss_mb(client.pid)
                if value is not None:
                    rss.append(value)
                await client.stop()
        self.rows.append(
            Row(
                "cold start: spawn -> initialize result (median)",
                statistics.median(ours),
                "ms",
                statistics.median(bare),
                400.0,
                "<= 400 ms",
                len(ours),
                "floor: a bare pygls LanguageServer",
            )
        )
        self.rows.append(
            Row(
                "idle RSS (median)",
                statistics.median(rss_ours) if rss_ours else None,
                "MB",
                statistics.median(rss_bare) if rss_bare else None,
                70.0,
                "<= 70 MB",
                len(rss_ours),
                "floor: a bare pygls LanguageServer",
            )
        )

    # 6. 20,000-line .ae: didChange -> diagnostics published
    async def big_document(self, client: Client) -> None:
        intent = (ROOT / "tests/fixtures/aethel/examples/transfer.ae").read_text()
        body = intent.split("\n", 1)[1]  # drop the comment line
        chunks: list[str] = []
        lines = 0
        i = 0
        while lines < 20000:
            chunk = body.replace("intent transfer(", f"intent transfer_{i}(")
            chunks.append(chunk)
            lines += chunk.count("\n")
            i += 1
        text = "".join(chunks)
        uri = (self.base / "big.ae").as_uri()
        start = len(client.diagnostics)
        t_open = time.monotonic()
        client.open(uri, text, language="aethel")
        try:
            await wait_until(lambda: any(p.uri == uri for _, p in client.diagnostics[start:]), 30)
        except TimeoutError:
            self.rows.append(
                Row(
                    "20,000-line .ae: didChange -> diagnostics",
                    None,
                    "ms",
                    None,
                    150.0,
                    "<= 150 ms",
                    0,
                    "no diagnostics published: feature not registered",
                )
            )
            return
        first_ms = (time.monotonic() - t_open) * 1000.0
        samples: list[float] = []
        version = 1
        target_line = text.count("\n") // 2
        target_line -= target_line % 17  # an intent header line
        for _ in range(self.n(10, 3)):
            await asyncio.sleep(0.3)
            version += 1
            before = len(client.diagnostics)
            t0 = time.monotonic()
            client.insert(uri, version, target_line + 2, 0, " ")
            try:
                await wait_until(partial(_published, client, uri, before, version), 30)
            except TimeoutError:
                continue
            arrivals = [t for t, p in client.diagnostics[before:] if p.uri == uri]
            samples.append((arrivals[0] - t0) * 1000.0)
        floor = None
        with contextlib.suppress(Exception):
            from aethel_lsp.language import parse

            t0 = time.monotonic()
            parse(text)
            floor = (time.monotonic() - t0) * 1000.0
        self.rows.append(
            Row(
                "20,000-line .ae: didChange -> diagnostics p50",
                pct(samples, 50) if samples else None,
                "ms",
                floor,
                150.0,
                "<= 150 ms",
                len(samples),
                f"{lines} lines, {i} intents; first publish after didOpen {first_ms:.0f} ms; "
                "floor: parse() in-process",
            )
        )


SOAK_CHANGES = 5000
SOAK_INLINE = 1000
SOAK_EXPLAINS = 200
SOAK_CANCELS = 100


async def bookkeeping(client: Client) -> dict[str, int]:
    """Sizes of the server's long-lived maps (the `aethel/bookkeeping` request)."""
    try:
        result = await client.lsp.protocol.send_request_async("aethel/bookkeeping", None)
    except Exception as exc:  # a server without the request (an older commit)
        return {"unavailable": str(exc)[:60]}  # type: ignore[dict-item]
    return dict(result._asdict() if hasattr(result, "_asdict") else result)


async def soak(bench: Bench) -> None:
    """7. A long session: RSS and pygls' internal maps after warm-up and after
    5,000 didChange + 1,000 inline completions + 200 explains (100 cancelled)."""
    client = await bench.server("soak", settings("info"))
    try:
        await _soak(bench, client)
    finally:
        await client.stop()


async def _soak_round(bench: Bench, client: Client, uri: str, version: int, changes: int,
                      inline: int, explains: int, cancels: int) -> int:
    """Interleave `changes` keystrokes, `inline` completions and `explains` actions."""
    per_inline = max(1, changes // max(1, inline))
    per_explain = max(1, changes // max(1, explains))
    done_inline = done_explain = cancelled = 0
    sel = {"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 0}}
    for i in range(changes):
        version += 1
        client.insert(uri, version, 3, 0, "x")
        if i % per_inline == 0 and done_inline < inline:
            done_inline += 1
            await client.inline(uri, 1, 4 + done_inline % 7, invoked=True)
        if i % per_explain == 0 and done_explain < explains:
            done_explain += 1
            cancel = cancelled < cancels and done_explain % 2 == 0
            cancelled += cancel
            await _soak_explain(bench, client, uri, sel, cancel, by_progress=cancelled % 2 == 0)
    return version


async def _soak_explain(bench: Bench, client: Client, uri: str, sel: dict[str, Any],
                        cancel: bool, *, by_progress: bool) -> None:
    slow = Reply(text="word " * 40, token_delay=0.01 if cancel else 0.0)
    bench.fake.enqueue(slow, model=MODEL)
    msg_id = f"soak-{time.monotonic_ns()}"
    before = len(client.progress)
    future = asyncio.ensure_future(client.lsp.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command="aethel.explainSelection",
                                   arguments=[{"uri": uri, "range": sel}]),
        msg_id=msg_id))
    if cancel:
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: len(client.progress) > before + 1, 10)
        if by_progress and len(client.progress) > before:
            token = client.progress[before][1].token
            client.lsp.window_work_done_progress_cancel(
                types.WorkDoneProgressCancelParams(token=token))
        else:
            client.lsp.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    (outcome,) = await asyncio.wait_for(asyncio.gather(future, return_exceptions=True), 30)
    key = "ok" if not isinstance(outcome, BaseException) else type(outcome).__name__
    tally = bench.details.setdefault("soakOutcomes", {})
    tally[key] = tally.get(key, 0) + 1


async def _soak(bench: Bench, client: Client) -> None:
    bench.fake.set_reply(MODEL, Reply(tokens=["total", " +", " 1"], token_delay=0.0))
    uri = (bench.base / "soak.py").as_uri()
    client.open(uri, "def f(total):\n    return \n\n\n")
    version = await _soak_round(bench, client, uri, 1, 200, 40, 10, 5)  # warm-up
    await asyncio.sleep(2.0)
    rss_before, maps_before = rss_mb(client.pid), await bookkeeping(client)
    bench.details["soakOutcomes"] = {}
    generations = len(bench.fake.generate_requests()) + len(bench.fake.chat_requests())
    t0 = time.monotonic()
    await _soak_round(bench, client, uri, version, SOAK_CHANGES, SOAK_INLINE, SOAK_EXPLAINS,
                      SOAK_CANCELS)
    seconds = time.monotonic() - t0
    await asyncio.sleep(2.0)
    rss_after, maps_after = rss_mb(client.pid), await bookkeeping(client)
    growth = None if rss_before is None or rss_after is None else rss_after - rss_before
    upstream = len(bench.fake.generate_requests()) + len(bench.fake.chat_requests()) - generations
    bench.details["soak"] = {
        "rssBeforeMB": rss_before, "rssAfterMB": rss_after, "seconds": round(seconds, 1),
        "mapsBefore": maps_before, "mapsAfter": maps_after, "upstreamGenerations": upstream,
        "explainOutcomes": bench.details.get("soakOutcomes"),
    }
    print(f"soak: {seconds:.0f} s; RSS {rss_before} -> {rss_after} MB; pygls maps "
          f"{maps_before} -> {maps_after}; {upstream} upstream generations; explains "
          f"{bench.details.get('soakOutcomes')}")
    bench.rows.append(Row(
        f"soak: RSS growth, {SOAK_CHANGES:,} didChange + {SOAK_INLINE:,} inline + "
        f"{SOAK_EXPLAINS} explains ({SOAK_CANCELS} cancelled)",
        growth, "MB", None, 5.0, "<= 5 MB", 1,
        f"RSS {rss_before:.1f} -> {rss_after:.1f} MB; pygls maps before {maps_before}, "
        f"after {maps_after}" if growth is not None else "no RSS",
    ))


def _progress_fields(value: Any) -> tuple[str, str]:
    """(kind, message) of a $/progress value, typed or raw (the client may not know the
    token's type and hand us a dict or a namedtuple)."""
    if isinstance(value, dict):
        return str(value.get("kind", "")), str(value.get("message") or "")
    kind = getattr(value, "kind", "")
    message = getattr(value, "message", "") or ""
    return str(kind), str(message)


def _finished(stream: RecordedStream) -> bool:
    return stream.finished


def _published(client: Client, uri: str, start: int, version: int) -> bool:
    return any(
        p.uri == uri and (p.version is None or p.version >= version)
        for _, p in client.diagnostics[start:]
    )


def print_table(rows: list[Row]) -> None:
    header = f"{'figure':56} {'measured':>12} {'floor':>10} {'ratio':>7} {'goal':>10}  ok"
    print(header)
    print("-" * len(header))
    for row in rows:
        value = "n/a" if row.value is None else f"{row.value:.2f} {row.unit}"
        floor = "-" if row.floor is None else f"{row.floor:.2f}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        met = {True: "yes", False: "NO", None: "-"}[row.met]
        print(f"{row.figure:56} {value:>12} {floor:>10} {ratio:>7} {row.goal_text:>10}  {met}")
        if row.note:
            print(f"    {row.note}")


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="aethel-bench-") as tmp:
        base = Path(tmp)
        fake = TimedFake([CODER], token_delay=args.token_delay)
        fake.start()
        bench = Bench(fake, base, args.quick, args.token_delay)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                if args.soak_only:
                    await soak(bench)
                    return _report(bench, args)
                main = await bench.server("main", settings("info"))
                try:
                    await bench.inline_overhead(main, http)
                    await bench.streamed_action(main, http)
                    await bench.typing_burst(main)
                    await bench.supersede_close(main, http)
                    await bench.big_document(main)
                finally:
                    await main.stop()
                debug = await bench.server("debug", settings("debug"))
                try:
                    await bench.cache_hit(debug)
                finally:
                    await debug.stop()
            await bench.cold_start()
            await soak(bench)
        finally:
            fake.stop()
    return _report(bench, args)


def _report(bench: Bench, args: argparse.Namespace) -> int:
    print_table(bench.rows)
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "tokenDelayS": args.token_delay,
        "quick": args.quick,
        "rows": [row.to_json() for row in bench.rows],
        "burst": bench.details.get("burst"),
        "burstWithCancel": bench.details.get("burst-cancel"),
        "soak": bench.details.get("soak"),
    }
    write_json(Path(args.json), out)
    print(f"\nJSON written to {args.json}")
    return 0


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--token-delay",
        type=float,
        default=0.002,
        help="per-token delay of the fake Ollama for the inline rows (s)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--soak-only", action="store_true",
                        help="only the long-session soak row (writes its own JSON)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)
    if args.soak_only and args.json == parser.get_default("json"):
        args.json = str(ROOT / "bench" / "soak.json")  # keep the full run's results
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
