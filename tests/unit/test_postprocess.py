"""Post-processing of raw FIM answers: every rule removes text, none invents it."""

from __future__ import annotations

from aethel_lsp.prompts.postprocess import (
    PostprocessContext,
    clean,
    complete_lines,
    postprocess,
    strip_fences,
    strip_special_tokens,
)


def ctx(
    language: str = "python", line_prefix: str = "", line_suffix: str = "", suffix: str = ""
) -> PostprocessContext:
    return PostprocessContext(language, line_prefix, line_suffix, suffix or line_suffix)


def test_only_whitespace_is_nothing() -> None:
    assert postprocess("   \n\t\n", ctx()) == ""
    assert postprocess("", ctx()) == ""


def test_strips_leaked_special_tokens_and_stops_at_end_markers() -> None:
    assert strip_special_tokens("x = 1<|endoftext|>garbage") == "x = 1"
    assert strip_special_tokens("a<|fim_middle|>b") == "ab"
    assert strip_special_tokens("y = 2 <EOT>") == "y = 2 "
    assert postprocess("return x<｜end▁of▁sentence｜>more", ctx()) == "return x"
    result = clean("value<|endoftext|>", ctx())
    assert result.text == "value"
    assert result.final


def test_markdown_fences_are_removed_for_chat_answers() -> None:
    assert strip_fences("```python\nreturn a + b\n```") == "return a + b"
    assert strip_fences("```\nx\n```\nSome explanation") == "x"
    assert postprocess("```py\nreturn a + b\n```", ctx(), chat=True) == "return a + b"
    assert strip_fences("no fence") == "no fence"


def test_a_fim_answer_that_opens_a_fence_loses_it() -> None:
    """FIM models sometimes answer like a chat model; the fence is never the code."""
    assert postprocess("```python\nreturn a + b\n```", ctx()) == "return a + b"
    assert postprocess("```\nreturn a + b", ctx()) == "return a + b"  # still streaming
    assert postprocess("return a + b", ctx()) == "return a + b"


def test_in_markdown_a_fim_fence_is_the_users_text() -> None:
    assert postprocess("```python\nx = 1", ctx(language="markdown")) == "```python\nx = 1"


def test_mid_line_offers_one_line() -> None:
    c = ctx(line_prefix="print(", line_suffix=")", suffix=")\nnext()\n")
    result = clean("x, y)\nmore()\n", c)
    assert result.text == "x, y"  # the ")" repeats the suffix; the second line is dropped
    assert result.final


def test_blank_line_ends_the_suggestion() -> None:
    raw = "    return a + b\n\ndef other():\n    pass\n"
    result = clean(raw, ctx(line_prefix="", suffix=""))
    assert result.text == "    return a + b"
    assert result.final


def test_python_stops_at_dedent() -> None:
    # The cursor is in a loop body (8 spaces): the `return` at 4 ends that block.
    raw = "total += x\n        count += 1\n    return total\n"
    assert postprocess(raw, ctx(line_prefix="        ")) == "total += x\n        count += 1"


def test_aethel_stops_before_closing_the_enclosing_block_when_the_suffix_has_it() -> None:
    raw = "amount > 0;\n        balance >= amount;\n    }\n    solve {\n"
    c = ctx("aethel", line_prefix="        ", suffix="\n    }\n    solve {\n")
    result = clean(raw, c)
    assert result.text == "amount > 0;\n        balance >= amount;"
    assert result.final


def test_brace_block_kept_when_the_document_ends_at_the_cursor() -> None:
    raw = "    return 1;\n}\nint other() {\n"
    assert postprocess(raw, ctx("c", line_prefix="", suffix="")) == "    return 1;\n}"


def test_braces_in_comments_and_strings_do_not_end_the_block() -> None:
    raw = 'print("}") # }\nx = 1\n'
    assert postprocess(raw, ctx("javascript", suffix="\n}\n")) == 'print("}") # }\nx = 1'


def test_trailing_repeat_of_the_suffix_is_trimmed() -> None:
    c = ctx(line_prefix="    ", suffix="\n    return result\n")
    assert postprocess("result = a * b\n    return result\n", c) == "result = a * b"
    assert postprocess("foo(a)", ctx("python", suffix=")")) == "foo(a"
    # a one-letter coincidence is not a repeat
    assert postprocess("max", ctx("python", suffix="x = 1\n")) == "max"


def test_rest_of_line_repeated_is_dropped() -> None:
    c = ctx(line_prefix="x = ", line_suffix="  # done", suffix="  # done\n")
    assert postprocess("compute()  # done", c) == "compute()"


def test_complete_lines_keeps_only_finished_lines() -> None:
    assert complete_lines("a\nb\npartial") == "a\nb"
    assert complete_lines("no newline yet") == ""


def test_not_final_while_more_tokens_could_change_the_answer() -> None:
    assert not clean("total = compute(", ctx()).final


def test_the_line_being_typed_is_never_repeated() -> None:
    # the whole line again, with or without its indentation
    assert postprocess("let total = a + b;", ctx("aethel", line_prefix="    let total = ")) == (
        "a + b;")
    assert postprocess("    let total = a + b;", ctx("aethel", line_prefix="    let total = ")) == (
        "a + b;")
    # from a word inside the line
    assert postprocess("bar(baz)", ctx("python", line_prefix="x = foo.bar(ba")) == "z)"
    # on the next line, when the cursor is at the end of the line
    assert postprocess("\ndef add(a, b):\n    return a + b",
                       ctx("python", line_prefix="def add(a, b):")) == "\n    return a + b"
    # a repeat still arriving shows nothing yet
    assert postprocess("let tot", ctx("aethel", line_prefix="let total = ")) == ""


def test_an_answer_that_only_looks_like_the_typed_line_is_kept() -> None:
    assert postprocess("x + 1", ctx("python", line_prefix="y = x")) == "x + 1"  # 1 char
    assert postprocess("ing()", ctx("python", line_prefix="result = str")) == "ing()"
    assert postprocess(" 1", ctx("python", line_prefix="x =")) == " 1"
