"""Aethel diagnostics, published on open and change.

Syntax diagnostics go out at once (parsing is a few milliseconds for normal files);
the z3 checker runs after a short debounce, on a worker thread, and its findings are
published together with the syntax diagnostics.  Each document has at most one
pending analysis: a change cancels the previous task and sets its cancel event, so a
stale check stops at the next intent (every z3 query also has a time limit).  The
event loop never waits for the solver.

This module owns didOpen/didChange/didClose; it only acts on `.ae` documents.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from lsprotocol import types
from pygls.workspace import TextDocument

from aethel_lsp.aethel_documents import PARSES, is_aethel, lsp_diagnostic
from aethel_lsp.language.checker import DEFAULT_TIMEOUT_MS, CheckCancelled, check
from aethel_lsp.language.diagnostics import Diagnostic
from aethel_lsp.language.parser import ParseResult, parse
from aethel_lsp.session import AethelServer

CHECK_DELAY_S = 0.25  # quiet time after the last change before the solver runs
MAX_PARALLEL = 2  # solver threads at once (the machine may have 2 cores)

T = TypeVar("T")


async def run_in_daemon_thread(
    fn: Callable[[], T], finished: Callable[[], None] | None = None
) -> T:
    """Run `fn` on a daemon thread: a solver still busy at exit never delays shutdown
    (executor threads are joined at interpreter exit; daemon threads are not).

    `finished` is called on the loop when the thread ends, even if the awaiting task
    was cancelled meanwhile (a thread cannot be stopped; callers may wait for it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: object) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)  # type: ignore[arg-type]
        else:
            assert isinstance(value, BaseException)
            future.set_exception(value)

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # delivered to the awaiting task
            loop.call_soon_threadsafe(deliver, False, exc)
        else:
            loop.call_soon_threadsafe(deliver, True, value)
        finally:
            if finished is not None:
                loop.call_soon_threadsafe(finished)

    threading.Thread(target=work, name="aethel-check", daemon=True).start()
    return await future


@dataclass
class _Pending:
    task: asyncio.Task[None]
    cancel: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.cancel.set()
        self.task.cancel()


class AethelDiagnostics:
    """Per-document analysis tasks of one server."""

    def __init__(self, server: AethelServer) -> None:
        self.server = server
        self.pending: dict[str, _Pending] = {}
        self.parser_idle: dict[str, asyncio.Event] = {}
        self.slots = asyncio.Semaphore(MAX_PARALLEL)

    def schedule(self, uri: str) -> None:
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.stop()
        document = self.server.workspace.text_documents.get(uri)
        if document is None or not is_aethel(document):
            return
        cancel = threading.Event()
        task = asyncio.ensure_future(self.analyze(document, cancel))
        entry = _Pending(task, cancel)
        self.pending[uri] = entry

        def done(finished: asyncio.Task[None]) -> None:
            if self.pending.get(uri) is entry:
                del self.pending[uri]
            if not finished.cancelled() and finished.exception() is not None:
                self.server.log(
                    f"Aethel analysis of {uri} failed: {finished.exception()}",
                    types.MessageType.Warning,
                )

        task.add_done_callback(done)

    async def analyze(self, document: TextDocument, cancel: threading.Event) -> None:
        uri, source, version = document.uri, document.source, document.version
        # One parse thread per document at a time: during a burst of changes on a huge
        # file, stale parses would otherwise pile up and starve the newest one.  Not
        # behind `slots`: syntax diagnostics never wait for a busy solver.
        idle = self.parser_idle.get(uri)
        if idle is None:
            idle = self.parser_idle[uri] = asyncio.Event()
            idle.set()
        await idle.wait()
        idle.clear()
        result: ParseResult = await run_in_daemon_thread(lambda: parse(source), idle.set)
        PARSES.put(uri, source, result)
        self.publish(document, version, result.diagnostics)
        await asyncio.sleep(CHECK_DELAY_S)
        try:
            async with self.slots:
                findings = await run_in_daemon_thread(lambda: self.run_check(result, cancel))
        except CheckCancelled:
            return
        if cancel.is_set():
            return
        self.publish(document, version, [*result.diagnostics, *findings])

    @staticmethod
    def run_check(result: ParseResult, cancel: threading.Event) -> list[Diagnostic]:
        return check(
            result.program,
            timeout_ms=DEFAULT_TIMEOUT_MS,
            cancel=cancel,
            syntax_errors=result.diagnostics,
        )

    def publish(
        self, document: TextDocument, version: int | None, diagnostics: list[Diagnostic]
    ) -> None:
        lines = document.lines
        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=document.uri,
                version=version,
                diagnostics=[lsp_diagnostic(document, lines, d) for d in diagnostics],
            )
        )

    def close(self, uri: str) -> None:
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.stop()
        PARSES.forget(uri)
        idle = self.parser_idle.get(uri)
        if idle is not None and idle.is_set():
            del self.parser_idle[uri]
        if uri.lower().endswith(".ae"):
            self.server.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
            )


def register(server: AethelServer) -> None:
    diagnostics = AethelDiagnostics(server)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: AethelServer, params: types.DidOpenTextDocumentParams) -> None:
        diagnostics.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: AethelServer, params: types.DidChangeTextDocumentParams) -> None:
        diagnostics.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: AethelServer, params: types.DidCloseTextDocumentParams) -> None:
        diagnostics.close(params.text_document.uri)
