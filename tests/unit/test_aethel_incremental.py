"""Incremental parsing equals a full parse: random edits, one parser across versions.

Every version is compared with `parse()` on everything a feature can see: the
diagnostics (ranges, messages, fixes), error offsets, the omitted count, the tree
(node by node, offsets included) and the line/column every node's span resolves to.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from aethel_lsp.language.incremental import GROUP, IncrementalParser, chunk_bounds
from aethel_lsp.language.parser import MAX_DIAGNOSTICS, MAX_NESTING, ParseResult, parse
from tests.unit.aethel_support import ALL_PROGRAMS, EXAMPLES, read

# text an edit may insert: item keywords, braces, foreign constructs, comments that
# swallow what follows, nesting, a batch that would own the next intent
SNIPPETS = (
    "intent",
    "intent x(",
    "intent y(a: T) {",
    "\nintent z() { guard { a > 0; } solve { p: q; } verify { a > 0; } }\n",
    "atomic_batch",
    "\natomic_batch b {\n",
    "}",
    "{",
    "(",
    ")",
    ";",
    "/*",
    "*/",
    "//",
    "#",
    '"',
    "if x ",
    "if (a > b) {",
    "guard",
    "verify {",
    "a = b",
    "&&",
    "\n",
    "\n\n",
    " ",
    "x",
    "-" * 3,
    "(" * (MAX_NESTING + 2),
    "\r\n",
    "é",
)


def same(incremental: ParseResult, full: ParseResult) -> None:
    assert incremental.diagnostics == full.diagnostics
    assert incremental.error_offsets == full.error_offsets
    assert incremental.omitted == full.omitted
    assert incremental.index.line_starts == full.index.line_starts
    a, b = incremental.program, full.program
    assert a.span == b.span and a.span.range == b.span.range
    assert a.comments == b.comments
    assert a.items == b.items
    assert ranges(a) == ranges(b)


def ranges(root: object) -> list[object]:
    """The resolved range of every node that has a span, in a fixed walk order."""
    out: list[object] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not dataclasses.is_dataclass(node) or isinstance(node, type):
            continue
        span = getattr(node, "span", None)
        if span is not None:
            out.append((type(node).__name__, span.range))
        for f in dataclasses.fields(node):
            if f.name not in ("index", "span"):
                stack.append(getattr(node, f.name))
    return out


def random_edit(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    roll = rng.random()
    if roll < 0.45:
        return text[:at] + rng.choice(SNIPPETS) + text[at:]
    if roll < 0.75:
        return text[:at] + text[at + rng.randint(1, 40) :]
    if roll < 0.9:  # move a piece: duplicates and reorders whole chunks
        end = min(len(text), at + rng.randint(1, 400))
        piece = text[at:end]
        where = rng.randrange(len(text) + 1)
        return text[:where] + piece + text[where:]
    return text[:at] + rng.choice(SNIPPETS) + text[at + rng.randint(1, 10) :]


def big_text(copies: int) -> str:
    base = read(EXAMPLES / "transfer.ae")
    return "\n".join(base.replace("intent transfer", f"intent transfer_{k}") for k in range(copies))


@pytest.mark.parametrize("path", ALL_PROGRAMS, ids=lambda p: p.name)
def test_random_edits_of_every_program_parse_as_a_full_parse(path: object) -> None:
    text = read(path)  # type: ignore[arg-type]
    rng = random.Random(str(path))
    # several programs side by side, so that there are chunks to reuse
    text = "\n".join([text, read(EXAMPLES / "transfer.ae"), text])
    parser = IncrementalParser(group=1)
    same(parser.parse(text), parse(text))
    for _ in range(40):
        text = random_edit(rng, text)
        same(parser.parse(text), parse(text))


def test_random_edits_of_a_large_file_parse_as_a_full_parse() -> None:
    rng = random.Random(6)
    text = big_text(120)
    parser = IncrementalParser(group=1)
    same(parser.parse(text), parse(text))
    for _ in range(15):
        text = random_edit(rng, text)
        result = parser.parse(text)
        if rng.random() < 0.5:  # sometimes the tree is built, sometimes never
            same(result, parse(text))
        else:
            assert result.diagnostics == parse(text).diagnostics


def test_edits_of_the_20000_line_file_parse_as_a_full_parse() -> None:
    rng = random.Random(20_000)
    text = big_text(1_250)  # the benchmark's file
    parser = IncrementalParser()
    parser.parse(text)
    for _ in range(3):
        text = random_edit(rng, text)
        a, b = parser.parse(text), parse(text)
        # `same` minus the node-by-node range walk (seconds on this size; the smaller
        # files above walk every node)
        assert a.diagnostics == b.diagnostics and a.error_offsets == b.error_offsets
        assert a.program.items == b.program.items
        assert a.program.comments == b.program.comments
        assert [i.span.range for i in a.program.intents()] == [
            i.span.range for i in b.program.intents()
        ]


def test_an_edit_reparses_only_the_item_it_touches() -> None:
    text = big_text(200)
    parser = IncrementalParser(group=1)
    parser.parse(text)
    assert parser.reparsed == len(chunk_bounds(text, 1)) - 1
    middle = text.index("intent transfer_100")
    edited = text[: middle + 30] + "x" + text[middle + 30 :]
    same(parser.parse(edited), parse(edited))
    assert parser.reparsed == 1
    # and back: the original chunk is parsed again (the cache holds the last version)
    same(parser.parse(text), parse(text))
    assert parser.reparsed == 1


def test_a_batch_owns_the_column_0_intents_inside_it() -> None:
    inner = "intent a() {\nguard { x > 0; }\nsolve { p: q; }\nverify { x > 0; }\n}\n"
    text = "atomic_batch b {\n" + inner * 5 + "}\n" + inner * 3
    parser = IncrementalParser(group=1)
    result = parser.parse(text)
    same(result, parse(text))
    assert [type(item).__name__ for item in result.program.items] == ["Batch"] + ["Intent"] * 3
    edited = text.replace("x > 0", "x >= 0", 1)
    same(parser.parse(edited), parse(edited))


def test_a_small_batch_in_a_large_file_is_one_chunk_and_edits_elsewhere_reuse_it() -> None:
    inner = "intent a() {\nguard { x > 0; }\nsolve { p: q; }\nverify { x > 0; }\n}\n"
    text = big_text(40) + "\natomic_batch b {\n" + inner * 3 + "}\n" + big_text(40)
    parser = IncrementalParser(group=1)
    same(parser.parse(text), parse(text))
    at = text.index("intent transfer_10(")
    edited = text[:at] + "#\n" + text[at:]
    same(parser.parse(edited), parse(edited))
    assert parser.reparsed == 1


def test_a_batch_over_most_of_the_file_is_parsed_whole() -> None:
    text = "atomic_batch b {\n" + big_text(60) + "\n}\n" + big_text(2)
    parser = IncrementalParser(group=1)
    same(parser.parse(text), parse(text))
    edited = text.replace("amount > 0", "amount > 1", 1)
    same(parser.parse(edited), parse(edited))


def test_an_unclosed_block_comment_swallows_the_following_items() -> None:
    text = big_text(20)
    parser = IncrementalParser(group=1)
    parser.parse(text)
    at = text.index("intent transfer_7")
    edited = text[:at] + "/*\n" + text[at:]
    result = parser.parse(edited)
    same(result, parse(edited))
    assert len(result.program.intents()) == 7


def test_the_diagnostic_cap_holds_across_chunks() -> None:
    broken = "intent q( {\n" + "guard { a = b && c; if x }\n" * 30
    text = "\n".join([big_text(10), broken * 10, big_text(3)])
    parser = IncrementalParser(group=1)
    result = parser.parse(text)
    same(result, parse(text))
    assert len(result.diagnostics) == MAX_DIAGNOSTICS and result.omitted > 0


def test_chunks_of_several_items_parse_as_a_full_parse() -> None:
    """The default: about one item keyword in GROUP starts a chunk."""
    rng = random.Random(8)
    text = big_text(100)
    parser = IncrementalParser()
    assert 100 // GROUP // 3 < len(chunk_bounds(text)) - 1 < 100 // GROUP * 3
    same(parser.parse(text), parse(text))
    for _ in range(6):
        text = random_edit(rng, text)
        same(parser.parse(text), parse(text))


def test_texts_without_items() -> None:
    parser = IncrementalParser(group=1)
    for text in ("", "   \n", "garbage ) here", "/* x\nintent", "x\nintent\natomic_batch"):
        same(parser.parse(text), parse(text))
