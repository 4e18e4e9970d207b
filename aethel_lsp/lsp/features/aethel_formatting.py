"""textDocument/formatting for Aethel: the canonical formatter, as one whole-document edit.

A document with syntax errors is left alone (no edits) and the user is told why:
reprinting the parser's recovery guesses would rewrite what they typed.  The parse
is the shared one; formatting runs on a worker thread (see `aethel_documents`).
"""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.language.formatter import format_text
from aethel_lsp.lsp.aethel_documents import Snapshot, run_in_daemon_thread, snapshot
from aethel_lsp.lsp.session import AethelServer


def edits(snap: Snapshot) -> list[types.TextEdit] | None:
    """The whole-document edit, [] when already formatted, None on syntax errors."""
    result = snap.parsed()
    if not result.ok:
        return None
    formatted = format_text(snap.source, result)
    if formatted is None or formatted == snap.source:
        return []
    end = snap.position(len(snap.lines), 0)
    return [
        types.TextEdit(
            range=types.Range(start=types.Position(line=0, character=0), end=end),
            new_text=formatted,
        )
    ]


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    async def formatting(
        ls: AethelServer, params: types.DocumentFormattingParams
    ) -> list[types.TextEdit] | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        found = await run_in_daemon_thread(lambda: edits(snap))
        if found is None:
            ls.show(
                "aethel-lsp: not formatting: the file has syntax errors. Fix the errors "
                "marked in the editor, then format again.",
                types.MessageType.Warning,
            )
            return []
        return found
