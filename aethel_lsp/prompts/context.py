"""What a completion model gets to see: windows around the cursor plus a little context.

Layout of the prefix, most stable first, so that Ollama can reuse its prompt (KV) cache
from one keystroke to the next (it reuses the longest common token prefix):

1. ranked snippets from other open documents, as comments (change when the cursor's
   line changes, not on every keystroke);
2. the enclosing Aethel intent's header, as a comment, only when the window cut it off;
3. the prefix window, whose start is snapped to a coarse grid and then to a line start,
   so that it moves in steps of a quarter window instead of with every character typed;
4. then the suffix window (after the cursor, which does not change while typing).

Sizes come from token budgets.  We have no tokenizer here, so a token is estimated at
`CHARS_PER_TOKEN` characters (typical of code with BPE vocabularies); budgets are caps,
and being off by 20 % only changes how much context fits.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aethel_lsp.prompts.fim import FimPrompt

CHARS_PER_TOKEN = 3.5
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_HASH_COMMENT = frozenset(
    {
        "aethel",
        "python",
        "ruby",
        "shellscript",
        "sh",
        "bash",
        "perl",
        "r",
        "toml",
        "yaml",
        "makefile",
        "dockerfile",
        "elixir",
        "julia",
        "nim",
        "powershell",
        "coffeescript",
    }
)
_DASH_COMMENT = frozenset({"lua", "sql", "haskell", "ada", "elm"})
_PERCENT_COMMENT = frozenset({"latex", "tex", "erlang", "matlab"})


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def budget_chars(tokens: int) -> int:
    return max(0, int(tokens * CHARS_PER_TOKEN))


def comment_prefix(language_id: str) -> str:
    """Line-comment syntax for a language id (used to embed context as comments)."""
    if language_id in _HASH_COMMENT:
        return "# "
    if language_id in _DASH_COMMENT:
        return "-- "
    if language_id in _PERCENT_COMMENT:
        return "% "
    return "// "


def line_span(text: str, line: int) -> tuple[int, str]:
    """Offset where `line` (0-based) starts in `text`, and that line with its newline.

    `str.split` with a `maxsplit` runs in C: ~1 ms for line 15,000 of a 20,000-line file,
    where splitting every line (what an editor library usually does per request) costs
    several.  A line past the end is the end of the text.
    """
    if line <= 0:
        start = 0
    else:
        parts = text.split("\n", line)
        if len(parts) <= line:
            return len(text), ""
        start = len(text) - len(parts[-1])
    end = text.find("\n", start)
    return start, text[start:] if end == -1 else text[start : end + 1]


def prefix_window(before: str, tokens: int) -> str:
    """The last `tokens` worth of `before`, starting at a line start on a coarse grid.

    The start only moves when the cursor has moved a quarter window further, so most
    consecutive prompts share their beginning byte for byte (prompt-cache reuse).
    """
    limit = budget_chars(tokens)
    if len(before) <= limit:
        return before
    if limit == 0:
        return ""
    stride = max(1, limit // 4)
    start = len(before) - limit
    start = -(-start // stride) * stride  # round up to the grid: never exceed the budget
    newline = before.find("\n", start - 1) if start > 0 else -1
    if newline != -1 and newline + 1 < len(before):
        start = newline + 1
    return before[start:]


def suffix_window(after: str, tokens: int) -> str:
    """The first `tokens` worth of `after`, cut at a line end when it is longer."""
    limit = budget_chars(tokens)
    if len(after) <= limit:
        return after
    cut = after.rfind("\n", 0, limit)
    return after[: cut + 1] if cut > 0 else after[:limit]


# --- the enclosing Aethel intent ---------------------------------------------------

_INTENT_HEADER = re.compile(r"\bintent\s+([A-Za-z_]\w*)\s*\(([^)]*)\)\s*$")
_BLOCK_NAME = re.compile(r"\b(guard|solve|verify)\s*$")


@dataclass(frozen=True)
class EnclosingIntent:
    """The intent the cursor is inside, and which of its blocks, if any."""

    name: str
    header: str  # "intent transfer(from: Account, to: Account, amount: Balance)"
    block: str | None  # "guard" | "solve" | "verify" | None
    offset: int  # where the header starts in the document


def enclosing_intent(before: str, max_lines: int = 2000) -> EnclosingIntent | None:
    """Find the innermost unclosed `intent` before the cursor by scanning braces backwards.

    A lexical scan, not the parser: text being typed rarely parses, and this only needs
    `{`/`}` and `#` comments.  It walks back line by line from the cursor, so its cost is
    the size of the enclosing intent, not of the document.
    """
    depth = 0  # closers seen (walking backwards) not yet matched by an opener
    block: str | None = None
    end = len(before)
    for _ in range(max_lines):
        start = before.rfind("\n", 0, end) + 1
        line = before[start:end]
        code = line.split("#", 1)[0]
        for col in range(len(code) - 1, -1, -1):
            ch = code[col]
            if ch == "}":
                depth += 1
            elif ch == "{":
                if depth:
                    depth -= 1
                    continue
                lead = before[max(0, start - 400) : start + col]
                if block is None:
                    named = _BLOCK_NAME.search(lead)
                    if named is not None:
                        block = named.group(1)
                        continue
                header = _INTENT_HEADER.search(lead)
                if header is not None:
                    offset = max(0, start - 400) + header.start()
                    name = header.group(1)
                    return EnclosingIntent(name, " ".join(header.group(0).split()), block, offset)
                if block is None:
                    return None  # inside some other construct (atomic_batch body)
        if start == 0:
            return None
        end = start - 1
    return None


# --- snippets from other open documents -------------------------------------------


@dataclass(frozen=True)
class OpenDocument:
    uri: str
    language_id: str
    text: str
    version: int | None = None


@dataclass(frozen=True)
class Snippet:
    uri: str
    start_line: int
    text: str
    score: float


@dataclass(frozen=True)
class _Chunk:
    start_line: int
    text: str
    identifiers: frozenset[str]


SNIPPET_LINES = 20
SNIPPET_STEP = 10
SMALL_DOCUMENT_CHUNKS = 64  # up to ~650 lines: every identifier counts


def identifiers(text: str) -> frozenset[str]:
    return frozenset(_IDENT.findall(text))


@dataclass(frozen=True)
class _IndexedDocument:
    """A document's chunks and, per identifier, the chunks that contain it."""

    chunks: tuple[_Chunk, ...]
    postings: dict[str, tuple[int, ...]]


class SnippetIndex:
    """Chunks of other open documents with their identifier sets, cached per version.

    Ranking is Jaccard similarity between a chunk's identifiers and those near the
    cursor: cheap, deterministic, and good at finding the definition of the names the
    user is typing around.  An inverted index keeps it cheap for big documents, and
    identifiers found in more than half of a document's chunks are ignored there: they
    do not tell chunks apart (and would make every chunk of a 20,000-line file a match);
    small documents are scored on every identifier.
    """

    def __init__(self, max_documents: int = 32) -> None:
        self._docs: OrderedDict[tuple[str, int | None, int], _IndexedDocument] = OrderedDict()
        self._max = max_documents

    def chunks(self, doc: OpenDocument) -> tuple[_Chunk, ...]:
        return self._indexed(doc).chunks

    def _indexed(self, doc: OpenDocument) -> _IndexedDocument:
        key = (doc.uri, doc.version, len(doc.text))
        found = self._docs.get(key)
        if found is not None:
            self._docs.move_to_end(key)
            return found
        lines = doc.text.split("\n")
        chunks: list[_Chunk] = []
        for start in range(0, max(1, len(lines)), SNIPPET_STEP):
            body = "\n".join(lines[start : start + SNIPPET_LINES])
            if body.strip():
                chunks.append(_Chunk(start, body, identifiers(body)))
            if start + SNIPPET_LINES >= len(lines):
                break
        postings: dict[str, list[int]] = {}
        for index, chunk in enumerate(chunks):
            for name in chunk.identifiers:
                postings.setdefault(name, []).append(index)
        indexed = _IndexedDocument(tuple(chunks), {k: tuple(v) for k, v in postings.items()})
        for old in [k for k in self._docs if k[0] == doc.uri]:
            del self._docs[old]
        self._docs[key] = indexed
        while len(self._docs) > self._max:
            self._docs.popitem(last=False)
        return indexed

    def rank(
        self,
        query: frozenset[str],
        documents: Iterable[OpenDocument],
        *,
        exclude_uri: str,
        budget: int,
        limit: int = 3,
    ) -> list[Snippet]:
        """Best chunks first, at most `limit`, within `budget` characters in total."""
        if not query or budget <= 0:
            return []
        scored: list[Snippet] = []
        for doc in documents:
            if doc.uri == exclude_uri:
                continue
            indexed = self._indexed(doc)
            count = len(indexed.chunks)
            too_common = count if count <= SMALL_DOCUMENT_CHUNKS else count // 2
            common: dict[int, int] = {}
            for name in query:
                hits = indexed.postings.get(name, ())
                if len(hits) > too_common:
                    continue
                for index in hits:
                    common[index] = common.get(index, 0) + 1
            for index, shared in common.items():
                chunk = indexed.chunks[index]
                score = shared / (len(query) + len(chunk.identifiers) - shared)
                scored.append(Snippet(doc.uri, chunk.start_line, chunk.text, score))
        scored.sort(key=lambda s: (-s.score, s.uri, s.start_line))
        chosen: list[Snippet] = []
        used = 0
        for snippet in scored:
            if len(chosen) >= limit:
                break
            if any(
                s.uri == snippet.uri and abs(s.start_line - snippet.start_line) < SNIPPET_LINES
                for s in chosen
            ):
                continue  # overlapping chunk of one already chosen
            if used + len(snippet.text) > budget:
                continue
            chosen.append(snippet)
            used += len(snippet.text)
        return chosen


def query_identifiers(before: str, lines: int = 15) -> frozenset[str]:
    """Identifiers of the lines just above the cursor's line (not the line being typed,
    so the ranking and hence the prompt's start stay put while typing on one line)."""
    end = before.rfind("\n")
    if end == -1:
        return frozenset()
    start = end
    for _ in range(lines):
        start = before.rfind("\n", 0, start)
        if start == -1:
            break
    return identifiers(before[start + 1 : end])


# --- the whole prompt --------------------------------------------------------------


@dataclass(frozen=True)
class ContextBudget:
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    other_documents: bool = True
    snippet_share: float = 0.25  # of the prefix budget, at most


@dataclass(frozen=True)
class CompletionContext:
    """Everything the FIM prompt is made of, kept apart for tests and the inspector."""

    prompt: FimPrompt
    window_prefix: str
    window_suffix: str
    header: str
    snippets: tuple[Snippet, ...]
    intent: EnclosingIntent | None


def build_context(
    *,
    uri: str,
    language_id: str,
    before: str,
    after: str,
    budget: ContextBudget,
    documents: Sequence[OpenDocument] = (),
    index: SnippetIndex | None = None,
) -> CompletionContext:
    """Assemble prefix (header + window) and suffix for the FIM prompt."""
    mark = comment_prefix(language_id)
    snippet_budget = int(budget_chars(budget.prefix_tokens) * budget.snippet_share)
    snippets: list[Snippet] = []
    if budget.other_documents and documents and index is not None:
        snippets = index.rank(
            query_identifiers(before), documents, exclude_uri=uri, budget=snippet_budget
        )
    window_budget = budget.prefix_tokens - estimate_tokens("".join(s.text for s in snippets))
    window = prefix_window(before, max(0, window_budget))
    intent = enclosing_intent(before) if language_id == "aethel" else None
    parts: list[str] = []
    for snippet in snippets:
        parts.append(f"{mark}From {_short_path(snippet.uri)} (line {snippet.start_line + 1}):\n")
        parts.extend(f"{mark}{line}\n" for line in snippet.text.split("\n"))
    window_start = len(before) - len(window)
    if intent is not None and intent.offset < window_start:
        block = f", in its {intent.block} block" if intent.block else ""
        parts.append(f"{mark}Inside {intent.header}{block}\n")
    header = "".join(parts)
    suffix = suffix_window(after, budget.suffix_tokens)
    return CompletionContext(
        prompt=FimPrompt(prefix=header + window, suffix=suffix, language_id=language_id),
        window_prefix=window,
        window_suffix=suffix,
        header=header,
        snippets=tuple(snippets),
        intent=intent,
    )


def _short_path(uri: str) -> str:
    tail = uri.rsplit("/", 2)
    return "/".join(tail[-2:]) if len(tail) >= 2 else uri
