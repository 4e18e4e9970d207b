"""Turn a model's raw fill-in-the-middle answer into ghost text worth showing.

Models overshoot: they repeat the text after the cursor, run past the end of the block
the cursor is in, wrap their answer in Markdown fences (chat models), or leak their FIM
special tokens.  Every rule here removes text; none invents any.  An answer that ends
up empty or only whitespace is returned as "" so that no item is shown at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aethel_lsp.prompts.fim import ALL_SPECIAL_TOKENS

# Languages whose blocks are delimited by braces: the current block ends when the
# completion closes more braces than it opens.
BRACE_LANGUAGES = frozenset(
    {
        "aethel",
        "c",
        "cpp",
        "csharp",
        "go",
        "java",
        "javascript",
        "javascriptreact",
        "typescript",
        "typescriptreact",
        "json",
        "jsonc",
        "kotlin",
        "php",
        "rust",
        "scala",
        "swift",
        "dart",
        "css",
        "scss",
        "less",
        "solidity",
        "zig",
    }
)
# Languages whose blocks are delimited by indentation: the block ends at a dedent.
INDENT_LANGUAGES = frozenset({"python", "yaml", "nim", "coffeescript", "haskell", "fsharp"})
# End-of-text markers: everything after one is not part of the answer.
_END_MARKERS = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|EOT|>",
    "<EOT>",
    "</s>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<file_sep>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
)
_FENCE_OPEN = re.compile(r"^\s*```[\w+#.-]*[ \t]*\n")
_FENCE_CLOSE = re.compile(r"\n?```\s*$")


@dataclass(frozen=True)
class PostprocessContext:
    """What post-processing needs to know about the cursor."""

    language_id: str
    line_prefix: str  # text of the cursor's line before the cursor
    line_suffix: str  # text of the cursor's line after the cursor
    suffix: str  # the document after the cursor (a window is enough)

    @property
    def mid_line(self) -> bool:
        return bool(self.line_suffix.strip())


@dataclass(frozen=True)
class Cleaned:
    """A cleaned answer; `final` means a stop rule fired, so more tokens cannot change
    it (the stream behind it can be closed, and a waiting request answered now)."""

    text: str
    final: bool


def postprocess(raw: str, ctx: PostprocessContext, *, chat: bool = False) -> str:
    """Clean `raw`; returns "" when nothing worth showing is left."""
    return clean(raw, ctx, chat=chat).text


def clean(raw: str, ctx: PostprocessContext, *, chat: bool = False) -> Cleaned:
    """`postprocess`, also saying whether the answer is already complete."""
    text = strip_special_tokens(raw)
    final = len(text) < len(raw) and _has_end_marker(raw)
    # chat answers come fenced; a FIM model sometimes opens one too (outside Markdown,
    # where a fence could be the text the user is writing)
    if chat or (ctx.language_id != "markdown" and _FENCE_OPEN.match(text)):
        stripped = strip_fences(text)
        final = final or (stripped != strip_leading_fence(text))
        text = stripped
    text = trim_current_line_repeat(text, ctx)
    before = text
    if ctx.mid_line:
        # Inside a line: the rest of the line is already there; offer one line at most.
        text = text.split("\n", 1)[0]
    else:
        text = stop_at_blank_line(text)
        text = stop_at_block_end(text, ctx)
    text = trim_suffix_repeat(text, ctx)
    final = final or (len(text) < len(before.rstrip()) and _cut_by_rule(before, text))
    text = text.rstrip()
    if not text.strip():
        return Cleaned("", final)
    return Cleaned(text, final)


def trim_current_line_repeat(text: str, ctx: PostprocessContext) -> str:
    """Drop a repeat of the line being typed from the start of the answer.

    A model that continues (rather than fills in) often starts by writing the current line
    again — whole (`let x = ` answered with `let x = 1;`), from a word inside it
    (`foo.bar(ba` answered with `bar(baz)`), or on the next line. What the user already
    typed is never suggested again; an answer that so far only repeats it is empty.
    """
    typed = ctx.line_prefix.strip()
    if len(typed) < 3:
        return text
    body = text.lstrip(" \t")
    if body.startswith(typed):
        rest = body[len(typed) :]
        typed_spaces = ctx.line_prefix[len(ctx.line_prefix.rstrip()) :]
        return rest[len(typed_spaces) :] if rest.startswith(typed_spaces) else rest
    first_line = body.split("\n", 1)[0]
    if "\n" not in body and first_line and typed.startswith(first_line) and len(first_line) >= 3:
        return ""  # the repeat is still arriving
    overlap = _typed_tail_overlap(ctx.line_prefix, body)
    if overlap:
        return body[overlap:]
    if not ctx.line_suffix.strip() and text.startswith("\n"):
        lines = text.split("\n")
        if len(lines) > 1 and lines[1].strip() == typed:
            return "\n".join([lines[0], *lines[2:]])
    return text


def _typed_tail_overlap(line_prefix: str, answer: str) -> int:
    """Length of the longest end of the typed line that the answer starts with, counted
    only from a word start and when 3+ characters long (so `x = x` + `x + 1` is kept).

    Only the last `len(answer)` characters can overlap: on a 1 MB line, scanning every
    start (each slice a copy) took seconds of the event loop.

    >>> _typed_tail_overlap("y = " + "a" * 100_000 + " foo.ba", "bar(1)")
    0
    >>> _typed_tail_overlap("value = foo.bar(ba", "bar(baz)")
    6
    """
    for start in range(max(0, len(line_prefix) - len(answer)), len(line_prefix)):
        tail = line_prefix[start:]
        if len(tail.strip()) < 3 or not answer.startswith(tail):
            continue
        if start == 0 or not _is_word_char(line_prefix[start - 1]) or not _is_word_char(tail[0]):
            return len(tail)
    return 0


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _has_end_marker(raw: str) -> bool:
    return any(marker in raw for marker in _END_MARKERS)


def _cut_by_rule(before: str, after: str) -> bool:
    """A rule cut text *and* that text was not just a trailing partial overlap with the
    suffix (which more tokens could still extend into something else)."""
    dropped = before[len(after) :] if before.startswith(after) else before
    return "\n" in dropped


def strip_special_tokens(text: str) -> str:
    """Cut at the first end-of-text marker, then drop any other leaked special token."""
    cut = len(text)
    for marker in _END_MARKERS:
        index = text.find(marker)
        if index != -1:
            cut = min(cut, index)
    text = text[:cut]
    for token in ALL_SPECIAL_TOKENS:
        if token in text:
            text = text.replace(token, "")
    return text


def strip_fences(text: str) -> str:
    """Remove a Markdown code fence around the answer (chat models add them)."""
    match = _FENCE_OPEN.match(text)
    if match is None:
        # The opening fence may have been stripped already (streaming); a closing one
        # at a line start still ends the code.
        closing = text.find("\n```")
        return text if closing == -1 else text[:closing]
    body = text[match.end() :]
    closing = body.find("```")
    if closing != -1:
        body = body[:closing]
        return body[:-1] if body.endswith("\n") else body
    return _FENCE_CLOSE.sub("", body)


def strip_leading_fence(text: str) -> str:
    """Only the opening fence: used while an answer is still streaming in."""
    match = _FENCE_OPEN.match(text)
    return text if match is None else text[match.end() :]


def stop_at_blank_line(text: str) -> str:
    """A blank line after some content ends the suggestion: the next paragraph or
    definition is a different thought, and showing it is mostly noise."""
    lines = text.split("\n")
    seen_content = False
    for i, line in enumerate(lines):
        if line.strip():
            seen_content = True
        elif seen_content and i > 0:
            return "\n".join(lines[:i])
    return text


def stop_at_block_end(text: str, ctx: PostprocessContext) -> str:
    """Stop where the block the cursor is in ends, for brace and indentation languages."""
    if ctx.language_id in BRACE_LANGUAGES:
        return _stop_at_brace_close(text, ctx)
    if ctx.language_id in INDENT_LANGUAGES:
        return _stop_at_dedent(text, ctx)
    return text


def _stop_at_brace_close(text: str, ctx: PostprocessContext) -> str:
    """Cut before the line that closes the cursor's enclosing block.

    When the document already continues after the cursor, the closing brace is there
    (FIM models usually see it in the suffix); if the suffix is empty, the closing line
    is kept so the block is finished, and the suggestion stops after it.
    """
    depth = 0
    offset = 0
    suffix_has_code = bool(ctx.suffix.strip())
    for line in text.split("\n"):
        for index, ch in _code_chars(line):
            if ch in "{([":
                depth += 1
            elif ch in "})]":
                depth -= 1
                if depth < 0:
                    if not suffix_has_code:
                        return text[: offset + len(line)]
                    head = line[:index]
                    # Keep what precedes the closer on its line, unless that is only indentation.
                    return text[:offset] + head if head.strip() else text[:offset].rstrip("\n")
        offset += len(line) + 1
    return text


def _code_chars(line: str) -> list[tuple[int, str]]:
    """The (index, char) pairs of a line outside `#` / `//` comments and string literals
    (roughly), so that a brace inside a comment or a string does not end the block."""
    out: list[tuple[int, str]] = []
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch == "#" or line.startswith("//", i):
            break
        else:
            out.append((i, ch))
        i += 1
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _stop_at_dedent(text: str, ctx: PostprocessContext) -> str:
    """Cut at the first later line indented less than the cursor's block."""
    base = _indent(ctx.line_prefix) if ctx.line_prefix.strip() else len(ctx.line_prefix)
    if base == 0:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() and _indent(line) < base:
            return "\n".join(lines[:i])
    return text


def trim_suffix_repeat(text: str, ctx: PostprocessContext) -> str:
    """Drop what the document already has after the cursor.

    Two shapes: the answer ends with the start of the suffix (e.g. the `)` that the
    editor auto-closed), or a later line of the answer is the suffix's first line.
    """
    suffix = ctx.suffix
    if not suffix.strip():
        return text
    # 1. A full line of the answer equals the first non-blank line of the suffix.
    first_suffix_line = next((s.strip() for s in suffix.split("\n") if s.strip()), "")
    if first_suffix_line and "\n" in text:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if i > 0 and line.strip() == first_suffix_line:
                text = "\n".join(lines[:i])
                break
    # 2. The answer's tail overlaps the head of the suffix (longest overlap wins).
    head = suffix[: len(text)]
    for k in range(min(len(text), len(head)), 0, -1):
        overlap = head[:k]
        if text.endswith(overlap) and _meaningful_overlap(overlap):
            return text[:-k]
    # 3. The rest of the cursor's line repeated at the end of the answer's first line.
    rest = ctx.line_suffix.strip()
    if rest and "\n" not in text and text.rstrip().endswith(rest):
        return text.rstrip()[: -len(rest)]
    return text


def _meaningful_overlap(overlap: str) -> bool:
    """Closers like `)` or `];` count even alone; a word must be 3+ characters, so a
    completion ending in `x` is not cut because the suffix happens to start with `x`."""
    core = overlap.strip()
    if not core:
        return False
    return len(core) >= 3 or not any(ch.isalnum() or ch == "_" for ch in core)


def complete_lines(text: str) -> str:
    """The part of a partial answer that ends at its last newline (the deadline rule)."""
    cut = text.rfind("\n")
    return "" if cut == -1 else text[:cut]
