"""textDocument/hover for Aethel: keyword and operator docs, parameters, state variables."""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.language.symbols import hover
from aethel_lsp.lsp.aethel_documents import Snapshot, run_in_daemon_thread, snapshot
from aethel_lsp.lsp.session import AethelServer


def hover_at(snap: Snapshot, position: types.Position) -> types.Hover | None:
    found = hover(snap.source, snap.parsed().program, snap.offset_at(position))
    if found is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown),
        range=snap.range(found.span),
    )


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls: AethelServer, params: types.HoverParams) -> types.Hover | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        return await run_in_daemon_thread(lambda: hover_at(snap, params.position))
