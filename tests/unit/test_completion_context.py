"""Context windows, stable prompt starts, snippets and the enclosing intent."""

from __future__ import annotations

from pathlib import Path

from aethel_lsp.prompts.context import (
    ContextBudget,
    OpenDocument,
    SnippetIndex,
    budget_chars,
    build_context,
    comment_prefix,
    enclosing_intent,
    prefix_window,
    suffix_window,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aethel" / "examples"


def test_short_text_is_kept_whole() -> None:
    assert prefix_window("abc\ndef", 100) == "abc\ndef"
    assert suffix_window("xyz", 100) == "xyz"


def test_prefix_window_respects_budget_and_starts_at_a_line() -> None:
    text = "".join(f"line {i:04d}\n" for i in range(2000))
    window = prefix_window(text, 100)
    assert len(window) <= budget_chars(100)
    assert text.endswith(window)
    assert window.startswith("line ")


def test_prefix_window_start_is_stable_while_typing() -> None:
    text = "".join(f"value_{i} = {i}\n" for i in range(3000))
    starts = set()
    typed = ""
    for ch in "result = compute(value_1, value_2)":
        typed += ch
        window = prefix_window(text + typed, 256)
        starts.add(window[:40])
    # 34 keystrokes, a quarter-window grid: the prompt start changes at most once.
    assert len(starts) <= 2


def test_suffix_window_cuts_at_a_line_end() -> None:
    text = "".join(f"row {i}\n" for i in range(1000))
    window = suffix_window(text, 50)
    assert text.startswith(window)
    assert window.endswith("\n")
    assert len(window) <= budget_chars(50)


def test_enclosing_intent_and_block() -> None:
    source = (FIXTURES / "transfer.ae").read_text()
    found = enclosing_intent(source[: source.index("to_balance == old_to_balance")])
    assert found is not None
    assert found.name == "transfer"
    assert found.block == "verify"
    assert found.header == "intent transfer(from: Account, to: Account, amount: Balance)"
    assert enclosing_intent(source[: source.index("intent")]) is None


def test_enclosing_intent_inside_atomic_batch() -> None:
    source = (FIXTURES / "escrow_batch.ae").read_text()
    found = enclosing_intent(source[: source.index("intent release") + 200])
    assert found is not None and found.name == "release"
    between = source.index("intent release")
    assert enclosing_intent(source[:between]) is None  # in the batch, between intents


def test_intent_header_is_added_when_the_window_cut_it_off() -> None:
    body = "".join(f"        x_{i} >= 0;\n" for i in range(400))
    before = "intent big(a: Balance) {\n    guard {\n" + body + "        "
    context = build_context(
        uri="file:///big.ae",
        language_id="aethel",
        before=before,
        after="\n    }\n}\n",
        budget=ContextBudget(prefix_tokens=200, suffix_tokens=50),
    )
    assert context.intent is not None and context.intent.name == "big"
    assert context.header == "# Inside intent big(a: Balance), in its guard block\n"
    assert context.prompt.prefix == context.header + context.window_prefix
    assert context.prompt.suffix == "\n    }\n}\n"


def test_snippets_from_other_documents_are_ranked_and_commented() -> None:
    helper = OpenDocument(
        "file:///w/helpers.py",
        "python",
        "def compute_total(prices, tax_rate):\n    return sum(prices) * (1 + tax_rate)\n",
        1,
    )
    unrelated = OpenDocument("file:///w/other.py", "python", "import os\nprint(os.getcwd())\n", 1)
    before = "prices = load_prices()\ntax_rate = 0.2\nresult = compute_total(prices, tax_rate)\n"
    context = build_context(
        uri="file:///w/main.py",
        language_id="python",
        before=before,
        after="",
        budget=ContextBudget(),
        documents=[unrelated, helper],
        index=SnippetIndex(),
    )
    assert [s.uri for s in context.snippets] == ["file:///w/helpers.py"]
    assert context.header.startswith("# From w/helpers.py (line 1):\n# def compute_total(")
    assert context.prompt.prefix.endswith(before)


def test_snippets_off_and_own_document_excluded() -> None:
    me = OpenDocument("file:///w/a.py", "python", "alpha_beta = 1\n", 1)
    context = build_context(
        uri="file:///w/a.py",
        language_id="python",
        before="alpha_beta = 2\nalpha_beta\n",
        after="",
        budget=ContextBudget(other_documents=True),
        documents=[me],
        index=SnippetIndex(),
    )
    assert context.snippets == ()


def test_comment_syntax() -> None:
    assert comment_prefix("aethel") == "# "
    assert comment_prefix("typescript") == "// "
    assert comment_prefix("lua") == "-- "


def test_big_documents_are_ranked_by_their_distinctive_identifiers() -> None:
    body = "".join(
        f"intent pay_{i}(a: Account) {{\n    guard {{\n        balance >= amount_{i};\n    }}\n}}\n"
        for i in range(2000)
    )
    big = OpenDocument("file:///w/big.ae", "aethel", body, 1)
    index = SnippetIndex()
    # `balance` is in every chunk (ignored there); `amount_1234` names one place.
    found = index.rank(
        frozenset({"balance", "amount_1234"}), [big], exclude_uri="file:///w/x.ae", budget=4000
    )
    assert found and "amount_1234" in found[0].text
    assert index.rank(frozenset({"balance"}), [big], exclude_uri="", budget=4000) == []
