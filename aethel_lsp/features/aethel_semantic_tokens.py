"""textDocument/semanticTokens/full for Aethel.

Lexical classes from the lexer, refined with the tree: intent names, parameters (at
the declaration and at every use), types, `solve` hints, `old_*` snapshots.
Positions and lengths are encoded in the client's units (UTF-16 or UTF-8).
"""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.aethel_documents import aethel_document, parsed
from aethel_lsp.language.symbols import TOKEN_MODIFIERS, TOKEN_TYPES, semantic_tokens
from aethel_lsp.session import AethelServer

LEGEND = types.SemanticTokensLegend(
    token_types=list(TOKEN_TYPES), token_modifiers=list(TOKEN_MODIFIERS)
)
_TYPE_INDEX = {name: i for i, name in enumerate(TOKEN_TYPES)}
_MODIFIER_BIT = {name: 1 << i for i, name in enumerate(TOKEN_MODIFIERS)}


def register(server: AethelServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
    def semantic_tokens_full(
        ls: AethelServer, params: types.SemanticTokensParams
    ) -> types.SemanticTokens | None:
        document = aethel_document(ls.workspace.text_documents, params.text_document.uri)
        if document is None:
            return None
        result = parsed(document)
        lines = document.lines
        codec = document.position_codec
        index = result.program.index
        data: list[int] = []
        prev_line = prev_char = 0
        for token in semantic_tokens(document.source, result.program):
            start = index.position(token.start)
            begin = codec.position_to_client_units(
                lines, types.Position(line=start.line, character=start.column)
            )
            end = codec.position_to_client_units(
                lines, types.Position(line=start.line, character=start.column + token.length)
            )
            delta_line = begin.line - prev_line
            delta_char = begin.character - prev_char if delta_line == 0 else begin.character
            modifiers = 0
            for name in token.modifiers:
                modifiers |= _MODIFIER_BIT[name]
            data += [
                delta_line,
                delta_char,
                end.character - begin.character,
                _TYPE_INDEX[token.type],
                modifiers,
            ]
            prev_line, prev_char = begin.line, begin.character
        return types.SemanticTokens(data=data)
