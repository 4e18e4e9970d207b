"""textDocument/inlineCompletion (LSP 3.18): fill-in-the-middle ghost text from the model.

A thin handler: it turns the request into an `InlineRequest` and lets the
`CompletionScheduler` decide (debounce, latest wins, cache, stream reuse, deadline).
Every request gets exactly one answer; "no suggestion" is an empty list.  Each answer
is logged at debug level with its source and the server's own time, which is what the
benchmark reads.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from lsprotocol import types

from aethel_lsp.completion.requests import InlineRequest, Outcome, SchedulerSettings, Source
from aethel_lsp.completion.scheduler import CompletionScheduler, ModelChoice, scheduler_settings
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.inspector import inspection_scope
from aethel_lsp.lsp.actions import resolve_model
from aethel_lsp.lsp.open_documents import document_key, offset_at, open_document, same_document
from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.prompts.context import OpenDocument

MAX_OTHER_DOCUMENTS = 20
EMPTY = types.InlineCompletionList(items=[])


def register(server: AethelServer) -> None:
    current: list[SchedulerSettings] = [SchedulerSettings(model="")]
    scheduler = CompletionScheduler(
        lambda: server.engine,
        lambda: current[0],
        log=lambda message: server.log(message, types.MessageType.Info),
    )
    choice = ModelChoice()
    last_error: list[str] = [""]

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: AethelServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        entered = time.perf_counter()
        uri = params.text_document.uri
        document = open_document(ls.workspace, uri)
        settings = ls.session.settings
        if document is None or not settings.completion.enabled_for(document.language_id):
            return EMPTY
        _forget_closed(ls, scheduler)
        try:
            model = await choice.get(
                ls.session.model_for("completion"),
                (settings, ls.session.selected_models.get("completion")),
                lambda: resolve_model(ls, "completion"),
            )
        except EngineError as exc:
            _report_error(ls, last_error, str(exc))
            return EMPTY
        current[0] = scheduler_settings(settings, model)
        text = document.source
        offset = offset_at(document, params.position)
        # With the suggest widget open, editors (VS Code) only show ghost text that
        # extends the selected item: complete as if it were already inserted.
        selected = params.context.selected_completion_info
        if selected is not None:
            start = offset_at(document, selected.range.start)
            end = offset_at(document, selected.range.end)
            text = text[:start] + selected.text + text[end:]
            offset = start + len(selected.text)
        request = InlineRequest(
            uri=uri,
            language_id=document.language_id or "",
            text=text,
            offset=offset,
            invoked=params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked,
            documents=lambda: _other_documents(ls, uri),
        )
        with inspection_scope("inlineCompletion") as inspected:
            outcome = await scheduler.complete(request)
        inspected.finish(
            outcome.text,
            fim_mode=outcome.mode.value if outcome.mode else None,
            source=outcome.source.value,
            partial=outcome.partial,
        )
        if outcome.source is Source.ERROR:
            _report_error(ls, last_error, outcome.message)
        elif outcome.source in (Source.FRESH, Source.REUSED, Source.CACHE):
            last_error[0] = ""  # working again: the next failure is news
        _log_outcome(ls, outcome, entered)
        if not outcome.text:
            return EMPTY
        if selected is not None:
            item = types.InlineCompletionItem(
                insert_text=selected.text + outcome.text, range=selected.range
            )
        else:
            position = params.position
            item = types.InlineCompletionItem(
                insert_text=outcome.text, range=types.Range(start=position, end=position)
            )
        return types.InlineCompletionList(items=[item])


def _other_documents(ls: AethelServer, uri: str) -> Sequence[OpenDocument]:
    docs: list[OpenDocument] = []
    for doc in ls.workspace.text_documents.values():
        if not same_document(doc.uri, uri):
            docs.append(OpenDocument(doc.uri, doc.language_id or "", doc.source, doc.version))
        if len(docs) >= MAX_OTHER_DOCUMENTS:
            break
    return docs


def _forget_closed(ls: AethelServer, scheduler: CompletionScheduler) -> None:
    """Close streams and drop cache entries of documents the editor has closed (pygls
    owns didClose, so we notice on the next request)."""
    open_keys = ls.workspace.text_documents.keys()
    for uri in scheduler.document_uris():
        if document_key(uri) not in open_keys:
            scheduler.forget_document(uri)


def _report_error(ls: AethelServer, last_error: list[str], message: str) -> None:
    """One warning per distinct failure, not one per keystroke."""
    if message and message != last_error[0]:
        last_error[0] = message
        ls.log(f"Inline completion failed: {message}", types.MessageType.Warning)


def _log_outcome(ls: AethelServer, outcome: Outcome, entered: float) -> None:
    if ls.session.settings.log_level != "debug":
        return
    server_ms = (time.perf_counter() - entered) * 1000.0
    mode = outcome.mode.value if outcome.mode else "-"
    ls.log(
        f"inline completion: source={outcome.source.value} mode={mode} "
        f"serverMs={server_ms:.3f} elapsedMs={outcome.elapsed_ms:.1f} "
        f"partial={outcome.partial} chars={len(outcome.text)}",
        types.MessageType.Debug,
    )
