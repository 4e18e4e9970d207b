"""The one way to find an open document by URI: under pygls' own key.

pygls' workspace stores open documents under `urllib.parse.unquote(uri)`, so the
document VS Code opened as `file:///c%3A/My%20Project%20(1)/a.py` is kept under
`file:///c:/My Project (1)/a.py`.  Looking it up with the URI as a request carries it
misses (no completion, no diagnostics, "Unknown document"), so every lookup and every
per-document map of ours goes through `document_key`.  What we send back to the client
is always the document's own `uri`, exactly as the client spelled it.

`tests/unit/test_open_documents.py` fails if a pygls release changes its key.
"""

from __future__ import annotations

from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from aethel_lsp.prompts.context import line_span


def document_key(uri: str) -> str:
    """The key pygls files `uri` under (equal for every spelling of one document).

    >>> document_key("file:///c%3A/My%20Project%20(1)/a.py")
    'file:///c:/My Project (1)/a.py'
    """
    return unquote(uri)


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The document the editor has open at `uri` (any spelling), else None."""
    document: TextDocument | None = workspace.text_documents.get(document_key(uri))
    return document


def same_document(a: str, b: str) -> bool:
    """Whether two URIs name the same document."""
    return a == b or document_key(a) == document_key(b)


def offset_at(document: TextDocument, position: types.Position) -> int:
    """The offset of a client position in `document.source`, at C speed.

    pygls converts columns character by character in Python and splits the whole text
    into lines: on a 1 MB line that held the event loop for ~100 ms per request.  Here the
    line is found with one `split` and the column converted by encoding the line once.
    A column past the end of its line is the line's end (before its newline).
    """
    start, line = line_span(document.source, position.line)
    return start + column_index(line, position.character, document.position_codec.encoding)


def column_index(line: str, units: int, encoding: object) -> int:
    """The code-point index of a column counted in the client's `encoding` units; a
    character that the column cuts in half counts as before it (as pygls does).

    >>> column_index("a😋b\\n", 3, "utf-16"), column_index("a😋b", 2, "utf-16")
    (2, 2)
    >>> column_index("é=1", 2, "utf-8"), column_index("abc\\r\\n", 9, "utf-16")
    (1, 3)
    """
    content = line.rstrip("\r\n")
    units = max(0, units)
    if line.isascii() or encoding == types.PositionEncodingKind.Utf32:
        return min(units, len(content))
    codec, width = ("utf-8", 1) if encoding == types.PositionEncodingKind.Utf8 else (
        "utf-16-le", 2)
    taken = content.encode(codec, "surrogatepass")[: units * width]
    decoded = taken.decode(codec, "ignore")
    index = len(decoded)
    if len(decoded.encode(codec, "surrogatepass")) < len(taken) and index < len(content):
        index += 1  # a character cut in half
    return index
