"""Aethel documents for the LSP features: which documents are Aethel, one shared parse
per document version, snapshots that features use on worker threads, and
conversions from `aethel_lsp.language` ranges to protocol ranges.

Shared by the `features/aethel_*` modules (features never import each other).

Why snapshots and threads: parsing a large or garbage file and walking its tree can
take hundreds of milliseconds, and a request handler that does it on the event loop
stalls every other request (completions, `$/cancelRequest`, progress).  So a feature
takes a `Snapshot` of the document on the loop (cheap: the text is an immutable
string) and does the work in `run_in_daemon_thread`.  Parses are shared: the cache
holds one entry per document, and a second caller for the same text waits for the
parse already running instead of starting another.

The language layer counts columns in code points; clients count in the negotiated
encoding (UTF-16 for VS Code, UTF-8 for Neovim).  `ClientColumns` converts, doing the
per-character work once per non-ASCII line (pygls' codec rescans the line for every
position, which is quadratic on long lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate, pairwise
from typing import TypeVar

from lsprotocol import types
from pygls.workspace import PositionCodec, TextDocument

from aethel_lsp.language.diagnostics import Diagnostic
from aethel_lsp.language.incremental import IncrementalParser, chunk_bounds
from aethel_lsp.language.parser import ParseResult, parse
from aethel_lsp.language.spans import Range, Span
from aethel_lsp.lsp.open_documents import document_key

AETHEL_LANGUAGE_ID = "aethel"
DIAGNOSTIC_SOURCE = "aethel"
_CACHE_SIZE = 32

T = TypeVar("T")


def is_aethel(document: TextDocument) -> bool:
    """Only `.ae` documents get Aethel features (languageId `aethel` or a `.ae` uri)."""
    if document.language_id == AETHEL_LANGUAGE_ID:
        return True
    return document.uri.lower().endswith(".ae")


def aethel_document(documents: Mapping[str, TextDocument], uri: str) -> TextDocument | None:
    """The open document at `uri` if it is Aethel and not too large to analyse, else None
    (features then answer empty)."""
    document = documents.get(document_key(uri))
    if document is None or not is_aethel(document) or too_large(document) is not None:
        return None
    return document


# ------------------------------------------------------------------- size bounds

# Lexing an item is one long C call that holds the GIL, so a huge item (a garbage
# file is one) would stall every request while a worker thread parses it; a parse
# also allocates per token, and the garbage collector's pauses grow with the tree.
# Measured on 2 cores: a 100,000-character item or a 2,000,000-character file of
# normal items keeps the event loop's worst stall in the tens of milliseconds.
MAX_ITEM_CHARS = 100_000
MAX_ANALYZED_CHARS = 2_000_000
_VERDICTS: OrderedDict[tuple[str, int | None, int], str | None] = OrderedDict()


def too_large(document: TextDocument) -> str | None:
    """Why `document` is not analysed (None: it is).  Cheap: a scan for item starts,
    once per version."""
    source = document.source
    if len(source) <= MAX_ITEM_CHARS:
        return None
    key = (document_key(document.uri), document.version, len(source))
    if key in _VERDICTS:
        return _VERDICTS[key]
    verdict = size_verdict(source)
    _VERDICTS[key] = verdict
    while len(_VERDICTS) > _CACHE_SIZE:
        _VERDICTS.popitem(last=False)
    return verdict


def size_verdict(source: str) -> str | None:
    """The reason a text is too large for Aethel analysis, or None.

    >>> size_verdict("intent a() {}\\n" * 10), size_verdict("x" * 2_000_001)[:30]
    (None, 'the file has 2,000,001 charact')
    """
    if len(source) > MAX_ANALYZED_CHARS:
        return (
            f"the file has {len(source):,} characters (Aethel analysis stops at "
            f"{MAX_ANALYZED_CHARS:,})"
        )
    bounds = chunk_bounds(source, 1)
    largest = max(end - start for start, end in pairwise(bounds))
    if largest > MAX_ITEM_CHARS:
        return (
            f"one item spans {largest:,} characters (Aethel analysis stops at "
            f"{MAX_ITEM_CHARS:,} per intent or batch)"
        )
    return None


# --------------------------------------------------------------------- parse cache


class _Entry:
    """One parse, finished or running (`done` is set when `result` is final), and the
    document's incremental parser (passed on from version to version)."""

    __slots__ = ("done", "parser", "result", "source", "version")

    def __init__(self, version: int | None, source: str, parser: IncrementalParser) -> None:
        self.version = version
        self.source = source
        self.parser = parser
        self.done = threading.Event()
        self.result: ParseResult | None = None


class ParseCache:
    """The last parse of each document: parse once per version, share between features.

    An entry is reused when the text is the same (checked by identity first, which is
    the usual case for one document version, then by equality), so a stale tree is
    never served.  `get` blocks while another thread parses the same text: call it
    from worker threads only, never on the event loop.  A new version is parsed
    incrementally (`IncrementalParser`): only the top-level items whose text changed
    are parsed again, so an edit in a 20,000-line file costs milliseconds.
    """

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, uri: str, source: str, version: int | None = None) -> ParseResult:
        uri = document_key(uri)
        with self._lock:
            entry = self._entries.get(uri)
            if entry is not None and (entry.source is source or entry.source == source):
                self._entries.move_to_end(uri)
                owner = False
            else:
                parser = entry.parser if entry is not None else IncrementalParser()
                entry = _Entry(version, source, parser)
                self._store(uri, entry)
                owner = True
        if owner:
            try:
                entry.result = entry.parser.parse(source)
            finally:
                entry.done.set()
        else:
            entry.done.wait()
        if entry.result is None:  # the owner's parse raised; try here (and raise here)
            return parse(source)
        return entry.result

    def put(self, uri: str, source: str, result: ParseResult, version: int | None = None) -> None:
        uri = document_key(uri)
        with self._lock:
            previous = self._entries.get(uri)
            entry = _Entry(version, source, previous.parser if previous else IncrementalParser())
            entry.result = result
            entry.done.set()
            self._store(uri, entry)

    def _store(self, uri: str, entry: _Entry) -> None:
        self._entries[uri] = entry
        self._entries.move_to_end(uri)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, uri: str) -> None:
        with self._lock:
            self._entries.pop(document_key(uri), None)


PARSES = ParseCache()


def parsed(document: TextDocument) -> ParseResult:
    """The shared parse of `document` (blocking: worker threads only)."""
    return PARSES.get(document.uri, document.source, document.version)


# --------------------------------------------------------------------- positions


class ClientColumns:
    """Code-point columns -> the client's position encoding, line by line.

    ASCII lines (nearly all Aethel) need no conversion; other lines get a table of
    cumulative code units, built once.  Lines are `str.splitlines(True)` lines, like
    pygls' (so results match `PositionCodec.position_to_client_units`).
    """

    def __init__(self, lines: Sequence[str], codec: PositionCodec) -> None:
        self.lines = lines
        self.impl = codec.impl
        self.identity = codec.impl.num_units("\U0001f642") == 1  # UTF-32
        self._tables: dict[int, list[int] | None] = {}

    def position(self, line: int, column: int) -> types.Position:
        if line >= len(self.lines) or line < 0:
            return types.Position(line=len(self.lines), character=0)
        return types.Position(line=line, character=self.column(line, column))

    def column(self, line: int, column: int) -> int:
        """Client column of code-point `column` on an existing `line` (clamped to it)."""
        text = self.lines[line]
        column = min(max(column, 0), len(text))
        if self.identity:
            return column
        try:
            table = self._tables[line]
        except KeyError:
            table = None
            if not text.isascii():
                table = list(accumulate(map(self.impl.code_units_for_char, text), initial=0))
            self._tables[line] = table
        return column if table is None else table[column]


class Snapshot:
    """One version of an open Aethel document; safe to use on a worker thread."""

    def __init__(self, uri: str, version: int | None, source: str, codec: PositionCodec) -> None:
        self.uri = uri
        self.version = version
        self.source = source
        self.codec = codec
        self._lines: Sequence[str] | None = None
        self._columns: ClientColumns | None = None

    @classmethod
    def of(cls, document: TextDocument) -> Snapshot:
        return cls(document.uri, document.version, document.source, document.position_codec)

    @property
    def lines(self) -> Sequence[str]:
        if self._lines is None:
            self._lines = tuple(self.source.splitlines(True))
        return self._lines

    @property
    def columns(self) -> ClientColumns:
        if self._columns is None:
            self._columns = ClientColumns(self.lines, self.codec)
        return self._columns

    def parsed(self) -> ParseResult:
        """The shared parse of this text (blocking: worker threads only)."""
        return PARSES.get(self.uri, self.source, self.version)

    def position(self, line: int, column: int) -> types.Position:
        """0-based line and code-point column -> client units."""
        return self.columns.position(line, column)

    def range(self, where: Range | Span) -> types.Range:
        """Code-point range -> client units."""
        r = where.range if isinstance(where, Span) else where
        return types.Range(
            start=self.columns.position(r.start.line, r.start.column),
            end=self.columns.position(r.end.line, r.end.column),
        )

    def offset_at(self, position: types.Position) -> int:
        """Client position -> offset into `source` (clamped, like pygls)."""
        lines = self.lines
        server = self.codec.position_from_client_units(lines, position)
        return server.character + sum(map(len, lines[: server.line]))

    def diagnostic(self, diagnostic: Diagnostic) -> types.Diagnostic:
        """Protocol diagnostic; a mechanical repair travels in `data["fix"]`
        (`{"title", "range", "newText"}`, range in client units) for quick-fix actions."""
        data = None
        if diagnostic.fix is not None:
            fix_range = self.range(diagnostic.fix.range)
            data = {
                "fix": {
                    "title": diagnostic.fix.title,
                    "range": {
                        "start": {
                            "line": fix_range.start.line,
                            "character": fix_range.start.character,
                        },
                        "end": {"line": fix_range.end.line, "character": fix_range.end.character},
                    },
                    "newText": diagnostic.fix.new_text,
                }
            }
        return types.Diagnostic(
            range=self.range(diagnostic.range),
            message=diagnostic.message,
            severity=types.DiagnosticSeverity(int(diagnostic.severity)),
            code=diagnostic.code,
            source=DIAGNOSTIC_SOURCE,
            data=data,
        )


def snapshot(documents: Mapping[str, TextDocument], uri: str) -> Snapshot | None:
    """A snapshot of the open Aethel document at `uri`, else None (answer empty)."""
    document = aethel_document(documents, uri)
    return None if document is None else Snapshot.of(document)


# --------------------------------------------------------------------- threads


async def run_in_daemon_thread(
    fn: Callable[[], T], finished: Callable[[], None] | None = None
) -> T:
    """Run `fn` on a daemon thread and await its result, keeping the loop free.

    A daemon thread (not an executor's) so that work still running at exit never
    delays shutdown: executor threads are joined at interpreter exit, daemon threads
    are not.  `finished` is called on the loop when the thread ends, even if the
    awaiting task was cancelled meanwhile (a thread cannot be stopped; callers may
    wait for it)."""
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
            _call_soon(loop, deliver, False, exc)
        else:
            _call_soon(loop, deliver, True, value)
        finally:
            if finished is not None:
                _call_soon(loop, finished)

    threading.Thread(target=work, name="aethel-work", daemon=True).start()
    return await future


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object) -> None:
    """`call_soon_threadsafe`, except that a loop closed meanwhile (the server exited
    while the thread worked) just drops the result."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)
