"""textDocument/semanticTokens/full for Aethel.

Lexical classes from the lexer, refined with the tree: intent names, parameters (at
the declaration and at every use), types, `solve` hints, `old_*` snapshots.
Positions and lengths are encoded in the client's units (UTF-16 or UTF-8).  A large
file has one token per word, so this runs on a worker thread from the shared parse
(see `aethel_documents`) and converts columns without per-token objects.
"""

from __future__ import annotations

from bisect import bisect_right

from lsprotocol import types

from aethel_lsp.language.symbols import TOKEN_MODIFIERS, TOKEN_TYPES, semantic_tokens
from aethel_lsp.lsp.aethel_documents import Snapshot, run_in_daemon_thread, snapshot
from aethel_lsp.lsp.session import AethelServer

LEGEND = types.SemanticTokensLegend(
    token_types=list(TOKEN_TYPES), token_modifiers=list(TOKEN_MODIFIERS)
)
_TYPE_INDEX = {name: i for i, name in enumerate(TOKEN_TYPES)}
_MODIFIER_BIT = {name: 1 << i for i, name in enumerate(TOKEN_MODIFIERS)}


def encode(snap: Snapshot) -> types.SemanticTokens:
    """The LSP relative encoding: 5 integers per token, in source order."""
    result = snap.parsed()
    line_starts = result.program.index.line_starts
    n_lines = len(snap.lines)
    column = snap.columns.column
    data: list[int] = []
    prev_line = prev_char = 0
    line = 0
    for token in semantic_tokens(snap.source, result.program):
        if line + 1 < len(line_starts) and line_starts[line + 1] <= token.start:
            line = bisect_right(line_starts, token.start) - 1
        if line >= n_lines:
            break
        start_col = token.start - line_starts[line]
        begin = column(line, start_col)
        end = column(line, start_col + token.length)
        modifiers = 0
        for name in token.modifiers:
            modifiers |= _MODIFIER_BIT[name]
        data += [
            line - prev_line,
            begin - prev_char if line == prev_line else begin,
            end - begin,
            _TYPE_INDEX[token.type],
            modifiers,
        ]
        prev_line, prev_char = line, begin
    return types.SemanticTokens(data=data)


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
    async def semantic_tokens_full(
        ls: AethelServer, params: types.SemanticTokensParams
    ) -> types.SemanticTokens | None:
        snap = snapshot(ls.workspace.text_documents, params.text_document.uri)
        if snap is None:
            return None
        return await run_in_daemon_thread(lambda: encode(snap))
