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
import logging
import threading
from dataclasses import dataclass, field

from lsprotocol import types
from pygls.workspace import TextDocument

from aethel_lsp.config.schema import CheckerSettings
from aethel_lsp.language.checker import CheckCancelled, CheckOptions, check
from aethel_lsp.language.diagnostics import Diagnostic
from aethel_lsp.language.parser import ParseResult
from aethel_lsp.lsp.aethel_documents import (
    PARSES,
    Snapshot,
    is_aethel,
    run_in_daemon_thread,
    too_large,
)
from aethel_lsp.lsp.open_documents import document_key, open_document
from aethel_lsp.lsp.session import AethelServer

log = logging.getLogger(__name__)

CHECK_DELAY_S = 0.25  # quiet time after the last change before the solver runs
MAX_PARALLEL = 2  # solver threads at once (the machine may have 2 cores)
# Diagnostics published per document: clients slow down or hang on tens of thousands
# (a garbage file), and nobody reads past the first few hundred.
MAX_PUBLISHED = 200


def protocol_diagnostics(
    snap: Snapshot, result: ParseResult, findings: list[Diagnostic]
) -> list[types.Diagnostic]:
    """The syntax errors and `findings` in source order, at most `MAX_PUBLISHED` of
    them, plus one "... and N more problems" diagnostic where the first hidden one is.

    Runs on a worker thread (it converts positions)."""
    merged = [*result.diagnostics, *findings]
    merged.sort(key=lambda d: (d.range.start.offset, d.range.end.offset))
    shown = merged[:MAX_PUBLISHED]
    hidden = len(merged) - len(shown) + result.omitted
    out = [snap.diagnostic(d) for d in shown]
    if hidden > 0:
        if len(merged) > len(shown):
            where = merged[len(shown)].range.start
        else:  # only syntax errors that the parser counted without listing them
            offsets = result.error_offsets
            where = result.index.position(offsets[min(len(shown), len(offsets) - 1)])
        first = snap.position(where.line, where.column)
        out.append(
            types.Diagnostic(
                range=types.Range(start=first, end=first),
                message=(
                    f"… and {hidden} more problem{'s' if hidden != 1 else ''} in this file "
                    f"(only the first {len(shown)} are listed): fix those first, or check "
                    "that this really is an Aethel file"
                ),
                severity=types.DiagnosticSeverity.Warning,
                code="too-many-problems",
                source="aethel",
            )
        )
    return out


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
        key = document_key(uri)
        previous = self.pending.pop(key, None)
        if previous is not None:
            previous.stop()
        document = open_document(self.server.workspace, uri)
        if document is None or not is_aethel(document):
            return
        reason = too_large(document)
        if reason is not None:
            self.publish_too_large(document, reason)
            return
        cancel = threading.Event()
        task = asyncio.ensure_future(self.analyze(document, cancel))
        entry = _Pending(task, cancel)
        self.pending[key] = entry

        def done(finished: asyncio.Task[None]) -> None:
            if self.pending.get(key) is entry:
                del self.pending[key]
            if not finished.cancelled() and finished.exception() is not None:
                self.server.log(
                    f"Aethel analysis of {uri} failed: {finished.exception()}",
                    types.MessageType.Warning,
                )

        task.add_done_callback(done)

    async def analyze(self, document: TextDocument, cancel: threading.Event) -> None:
        snap = Snapshot.of(document)
        # One parse thread per document at a time: during a burst of changes on a huge
        # file, stale parses would otherwise pile up and starve the newest one.  Not
        # behind `slots`: syntax diagnostics never wait for a busy solver.  The parse
        # goes through the shared cache, so features asking meanwhile wait for it
        # instead of parsing the same text again.
        key = document_key(snap.uri)
        idle = self.parser_idle.get(key)
        if idle is None:
            idle = self.parser_idle[key] = asyncio.Event()
            idle.set()
        await idle.wait()
        idle.clear()

        def syntax() -> tuple[ParseResult, list[types.Diagnostic]]:
            result = snap.parsed()
            return result, protocol_diagnostics(snap, result, [])

        try:
            result, syntax_only = await run_in_daemon_thread(syntax, idle.set)
        except Exception as exc:  # a parser bug must not leave stale diagnostics behind
            self.failed(snap, "parser", exc)
            return
        self.publish(snap, syntax_only)
        await asyncio.sleep(CHECK_DELAY_S)
        options = checker_options(self.server.session.settings.checker)
        try:
            async with self.slots:
                published = await run_in_daemon_thread(
                    lambda: protocol_diagnostics(
                        snap, result, self.run_check(result, cancel, options)
                    )
                )
        except CheckCancelled:
            return
        except Exception as exc:  # keep the syntax diagnostics; say the checker failed
            if not cancel.is_set():
                self.failed(snap, "checker", exc, keep=syntax_only)
            return
        if cancel.is_set():
            return
        self.publish(snap, published)

    def failed(
        self,
        snap: Snapshot,
        stage: str,
        exc: Exception,
        keep: list[types.Diagnostic] | None = None,
    ) -> None:
        """Log a crash of the parser or checker and publish what is still known."""
        log.exception("Aethel %s failed on %s", stage, snap.uri, exc_info=exc)
        self.server.log(
            f"The Aethel {stage} failed on {snap.uri}: {type(exc).__name__}: {exc}",
            types.MessageType.Warning,
        )
        notice = file_notice(
            f"The Aethel {stage} failed on this file ({type(exc).__name__}); "
            + ("syntax diagnostics are still shown. " if keep else "")
            + "Please report it with the file.",
            types.DiagnosticSeverity.Warning,
            f"{stage}-failed",
        )
        self.publish(snap, [*(keep or []), notice])

    @staticmethod
    def run_check(
        result: ParseResult, cancel: threading.Event, options: CheckOptions
    ) -> list[Diagnostic]:
        return check(
            result.program,
            options=options,
            cancel=cancel,
            syntax_errors=result.diagnostics,
            error_offsets=result.error_offsets,
        )

    def publish_too_large(self, document: TextDocument, reason: str) -> None:
        notice = file_notice(
            f"Aethel analysis is off for this file: {reason}. Syntax checks, the checker "
            "and the other Aethel features need it smaller, so that the editor stays "
            "responsive.",
            types.DiagnosticSeverity.Information,
            "too-large",
        )
        self.publish(Snapshot.of(document), [notice])

    def publish(self, snap: Snapshot, diagnostics: list[types.Diagnostic]) -> None:
        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=snap.uri, version=snap.version, diagnostics=diagnostics
            )
        )

    def close(self, uri: str) -> None:
        key = document_key(uri)
        previous = self.pending.pop(key, None)
        if previous is not None:
            previous.stop()
        PARSES.forget(uri)
        # A parse still running keeps its own reference to the event.
        self.parser_idle.pop(key, None)
        if uri.lower().endswith(".ae"):
            self.server.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
            )


def file_notice(message: str, severity: types.DiagnosticSeverity, code: str) -> types.Diagnostic:
    """A diagnostic about the whole file, at its start."""
    start = types.Position(line=0, character=0)
    return types.Diagnostic(
        range=types.Range(start=start, end=start),
        message=message,
        severity=severity,
        code=code,
        source="aethel",
    )


def checker_options(settings: CheckerSettings) -> CheckOptions:
    """The `checker.*` settings as the checker's options (read once per check)."""
    return CheckOptions(
        timeout_ms=settings.timeout_ms,
        intent_budget_ms=settings.intent_budget_ms,
        file_budget_ms=settings.file_budget_ms,
        strict=settings.strict,
        verify_implied=settings.verify_implied,
        symbolic_overflow=settings.symbolic_overflow,
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
