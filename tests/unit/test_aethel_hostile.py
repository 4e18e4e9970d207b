"""Hostile Aethel text (bugs.md #7 and #8): deep nesting, endless chains, garbage.

Every language entry point (parser, formatter, checker, editor queries) must answer
without a RecursionError, and a garbage file must yield a bounded list of diagnostics.
"""

from __future__ import annotations

import threading
import time

import pytest
from lsprotocol import types
from pygls.workspace import PositionCodec

from aethel_lsp.language.checker import analyze
from aethel_lsp.language.formatter import format_text, render_expr
from aethel_lsp.language.parser import MAX_DIAGNOSTICS, MAX_NESTING, parse
from aethel_lsp.language.symbols import document_symbols, folding_ranges, semantic_tokens
from aethel_lsp.lsp import aethel_documents
from aethel_lsp.lsp.aethel_documents import ClientColumns, ParseCache, Snapshot
from aethel_lsp.lsp.features.aethel_diagnostics import MAX_PUBLISHED, protocol_diagnostics
from aethel_lsp.lsp.features.aethel_semantic_tokens import encode
from tests.unit.aethel_support import where

GARBAGE = '}{ intent ((( guard ; 🙂 "unterminated\n' * 3_000


def intent(guard: str, verify: str = "b == a;") -> str:
    return (
        "intent t(a: A, b: B) {\n"
        f"    guard {{ {guard} }}\n"
        "    solve { priority: security; }\n"
        f"    verify {{ {verify} }}\n"
        "}\n"
    )


def every_query(text: str) -> None:
    """Run everything the editor and the CLI run on `text`."""
    result = parse(text)
    format_text(text, result)
    analyze(text, timeout_ms=500)
    document_symbols(result.program)
    folding_ranges(result.program)
    semantic_tokens(text, result.program)


@pytest.mark.parametrize(
    "expr",
    [
        "(" * 1000 + "a" + ")" * 1000,
        "!" * 1000 + "a",
        "- " * 1000 + "a",
        "(" * 1000 + "a",  # never closed
        "(-" * 600 + "a" + ")" * 600,
    ],
    ids=["parens", "bangs", "minuses", "unclosed", "mixed"],
)
def test_deep_nesting_is_one_diagnostic(expr: str) -> None:
    text = intent(f"{expr} > 0;")
    every_query(text)
    deep = [d for d in parse(text).diagnostics if d.code == "too-deep"]
    assert len(deep) == 1
    assert "nested too deeply" in deep[0].message


def test_the_diagnostic_is_at_the_first_parenthesis_past_the_limit() -> None:
    text = intent("(" * 300 + "a" + ")" * 300 + " > 0;")
    result = parse(text)
    assert [d.code for d in result.diagnostics] == ["too-deep"]
    first_paren = text.index("(", text.index("guard"))
    assert where(result.diagnostics[0])[:2] == (2, first_paren - text.index("\n") + MAX_NESTING)


def test_nesting_up_to_the_limit_is_fine_everywhere() -> None:
    text = intent("(" * MAX_NESTING + "a" + ")" * MAX_NESTING + " > 0;")
    result = parse(text)
    assert result.ok, result.diagnostics
    formatted = format_text(text)
    assert formatted is not None and "(" * MAX_NESTING + "a" in formatted
    every_query(text)


def test_deeply_nested_if_blocks() -> None:
    text = intent("if (a > 0) { " * 500 + "a > 0;" + " }" * 500)
    every_query(text)
    assert [d.code for d in parse(text).diagnostics].count("too-deep") == 1


def test_a_long_chain_of_connectives_is_not_recursion() -> None:
    text = intent(" && ".join(["a > 0"] * 3000) + ";")
    every_query(text)
    assert len(parse(text).program.intents()[0].blocks[0].conditions) == 3000


def test_long_flat_sums_work_everywhere() -> None:
    """`a + a + ...` is as deep as it is long: walkers must not recurse along it."""
    terms = " + ".join(["a"] * 2_000)
    text = intent(f"b == {terms};", f"b == old_b + {terms} - a;")
    every_query(text)
    result = parse(text)
    assert result.ok
    formatted = format_text(text)
    assert formatted is not None and format_text(formatted) == formatted
    comparison = result.program.intents()[0].blocks[0].conditions[0].body
    assert render_expr(comparison.right) == terms  # type: ignore[union-attr]


def test_long_literal_chains_are_evaluated_once() -> None:
    ones = " + ".join(["1"] * 3_000)
    started = time.monotonic()
    assert not [f for f in analyze(intent(f"a == {ones};"), timeout_ms=500).findings
                if f.code == "overflow"]
    assert time.monotonic() - started < 20  # generous: each node is evaluated once
    overflow = analyze(intent(f"a == 9223372036854775807 + {ones};"), timeout_ms=500).findings
    assert [f.code for f in overflow].count("overflow") == 1


def test_garbage_gets_a_bounded_list_of_syntax_errors() -> None:
    result = parse(GARBAGE)
    assert len(result.diagnostics) == MAX_DIAGNOSTICS
    assert result.omitted > 5_000
    assert len(result.error_offsets) == MAX_DIAGNOSTICS + result.omitted
    assert not result.ok
    offsets = [d.range.start.offset for d in result.diagnostics]
    assert offsets == sorted(offsets) and offsets == result.error_offsets[:MAX_DIAGNOSTICS]
    every_query(GARBAGE)


def test_published_diagnostics_are_capped_with_a_summary() -> None:
    snap = Snapshot("file:///g.ae", 1, GARBAGE, PositionCodec())
    result = parse(GARBAGE)
    published = protocol_diagnostics(snap, result, [])
    assert len(published) == MAX_PUBLISHED + 1
    summary = published[-1]
    assert summary.code == "too-many-problems"
    assert f"{result.omitted} more problems" in summary.message
    assert summary.range.start.line >= published[-2].range.start.line


def test_few_diagnostics_are_published_as_they_are() -> None:
    text = intent("a = 1;")
    snap = Snapshot("file:///a.ae", 1, text, PositionCodec())
    result = parse(text)
    published = protocol_diagnostics(snap, result, [])
    assert [d.code for d in published] == [d.code for d in result.diagnostics]


@pytest.mark.parametrize(
    "encoding",
    [
        types.PositionEncodingKind.Utf16,
        types.PositionEncodingKind.Utf8,
        types.PositionEncodingKind.Utf32,
    ],
)
def test_client_columns_match_the_pygls_codec(encoding: types.PositionEncodingKind) -> None:
    lines = ["intent a() {\n", "  guard { x > 0; } # 🙂 é 🙂 end\n", "plain\n"]
    codec = PositionCodec(encoding)
    columns = ClientColumns(lines, codec)
    for line, text in enumerate(lines):
        for column in range(len(text) + 3):
            expected = codec.position_to_client_units(
                lines, types.Position(line=line, character=column)
            )
            assert columns.position(line, column) == expected, (line, column)
    assert columns.position(7, 0) == types.Position(line=3, character=0)


def test_semantic_tokens_encoding_is_relative_and_in_client_units() -> None:
    text = "# 🙂\nintent a(x: T) {\n    guard { x > 0; }\n}\n"
    data = encode(Snapshot("file:///s.ae", 1, text, PositionCodec())).data
    tokens = [data[k : k + 5] for k in range(0, len(data), 5)]
    assert tokens[0] == [0, 0, 4, 1, 0]  # the comment: `# 🙂` is 4 UTF-16 units
    assert tokens[1][:3] == [1, 0, 6]  # `intent` on the next line


def test_one_parse_per_text_even_when_asked_concurrently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    gate = threading.Event()

    def slow_parse(self: object, text: str) -> object:
        calls.append(1)
        gate.wait(5)
        return parse(text)

    monkeypatch.setattr(aethel_documents.IncrementalParser, "parse", slow_parse)
    cache = ParseCache()
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("u", GARBAGE, 1)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len(results) == 4
    assert all(r is results[0] for r in results)
    cache.get("u", GARBAGE + "\n", 2)
    assert len(calls) == 2
