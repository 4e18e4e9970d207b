"""textDocument/foldingRange for Aethel: batches, intents, blocks, comment runs.

Computed on a worker thread from the shared parse (see `aethel_documents`)."""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.language.symbols import folding_ranges
from aethel_lsp.lsp.aethel_documents import Snapshot, run_in_daemon_thread, snapshot
from aethel_lsp.lsp.session import AethelServer


def fold(snap: Snapshot) -> list[types.FoldingRange]:
    return [
        types.FoldingRange(
            start_line=r.start_line,
            end_line=r.end_line,
            kind=(
                types.FoldingRangeKind.Comment
                if r.kind == "comment"
                else types.FoldingRangeKind.Region
            ),
        )
        for r in folding_ranges(snap.parsed().program)
    ]


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    async def folding(
        ls: AethelServer, params: types.FoldingRangeParams
    ) -> list[types.FoldingRange]:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return []
        return await run_in_daemon_thread(lambda: fold(snap))
