"""Aethel documents for the LSP features: which documents are Aethel, a parse cache,
and conversions from `aethel_lsp.language` ranges to protocol ranges.

Shared by the `features/aethel_*` modules (features never import each other).  The
language layer counts columns in code points; clients count in the negotiated
encoding (UTF-16 for VS Code, UTF-8 for Neovim), so every range goes through the
document's pygls position codec.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from threading import Lock

from lsprotocol import types
from pygls.workspace import TextDocument

from aethel_lsp.language.diagnostics import Diagnostic
from aethel_lsp.language.parser import ParseResult, parse
from aethel_lsp.language.spans import Range, Span

AETHEL_LANGUAGE_ID = "aethel"
DIAGNOSTIC_SOURCE = "aethel"
_CACHE_SIZE = 32


def is_aethel(document: TextDocument) -> bool:
    """Only `.ae` documents get Aethel features (languageId `aethel` or a `.ae` uri)."""
    if document.language_id == AETHEL_LANGUAGE_ID:
        return True
    return document.uri.lower().endswith(".ae")


def aethel_document(documents: Mapping[str, TextDocument], uri: str) -> TextDocument | None:
    """The open document at `uri` if it is Aethel, else None (features then answer empty)."""
    document = documents.get(uri)
    if document is None or not is_aethel(document):
        return None
    return document


class ParseCache:
    """The last parse of each document, keyed by uri and checked against the source."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._entries: OrderedDict[str, tuple[str, ParseResult]] = OrderedDict()
        self._size = size
        self._lock = Lock()  # parses also run on worker threads

    def get(self, uri: str, source: str) -> ParseResult:
        with self._lock:
            entry = self._entries.get(uri)
            if entry is not None and (entry[0] is source or entry[0] == source):
                self._entries.move_to_end(uri)
                return entry[1]
        result = parse(source)
        self.put(uri, source, result)
        return result

    def put(self, uri: str, source: str, result: ParseResult) -> None:
        with self._lock:
            self._entries[uri] = (source, result)
            self._entries.move_to_end(uri)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, uri: str) -> None:
        with self._lock:
            self._entries.pop(uri, None)


PARSES = ParseCache()


def parsed(document: TextDocument) -> ParseResult:
    return PARSES.get(document.uri, document.source)


def lsp_range(document: TextDocument, lines: Sequence[str], where: Range | Span) -> types.Range:
    """Code-point range -> client units."""
    r = where.range if isinstance(where, Span) else where
    server_range = types.Range(
        start=types.Position(line=r.start.line, character=r.start.column),
        end=types.Position(line=r.end.line, character=r.end.column),
    )
    return document.position_codec.range_to_client_units(lines, server_range)


def lsp_diagnostic(
    document: TextDocument, lines: Sequence[str], diagnostic: Diagnostic
) -> types.Diagnostic:
    """Protocol diagnostic; a mechanical repair travels in `data["fix"]`
    (`{"title", "range", "newText"}`, range in client units) for quick-fix actions."""
    data = None
    if diagnostic.fix is not None:
        fix_range = lsp_range(document, lines, diagnostic.fix.range)
        data = {
            "fix": {
                "title": diagnostic.fix.title,
                "range": {
                    "start": {"line": fix_range.start.line, "character": fix_range.start.character},
                    "end": {"line": fix_range.end.line, "character": fix_range.end.character},
                },
                "newText": diagnostic.fix.new_text,
            }
        }
    return types.Diagnostic(
        range=lsp_range(document, lines, diagnostic.range),
        message=diagnostic.message,
        severity=types.DiagnosticSeverity(int(diagnostic.severity)),
        code=diagnostic.code,
        source=DIAGNOSTIC_SOURCE,
        data=data,
    )


def offset_at(document: TextDocument, position: types.Position) -> int:
    """Client position -> offset into `document.source` (clamped)."""
    return document.offset_at_position(position)
