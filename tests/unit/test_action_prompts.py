"""Pure helpers of the AI actions: prompt templates, code extraction, model choice,
and the text a generated contract is inserted as."""

from __future__ import annotations

from lsprotocol import types

from aethel_lsp.engine import ModelInfo
from aethel_lsp.language import parse
from aethel_lsp.language.grammar_prompt import AETHEL_GRAMMAR_SUMMARY
from aethel_lsp.lsp.actions import ContractTarget, contract_text, keep_line_ending, pick_model
from aethel_lsp.prompts import actions as prompts

POINT = types.Range(start=types.Position(0, 0), end=types.Position(0, 0))


def test_templates_carry_code_language_and_problems() -> None:
    p = prompts.explain("x = 1", "python")
    assert "```python\nx = 1\n```" in p.user and "Markdown" in p.system
    p = prompts.improve("x = 1", "python")
    assert "exactly one fenced code block" in p.system
    p = prompts.fix("x = c", "python", ["line 1: undefined name 'c'"])
    assert "- line 1: undefined name 'c'" in p.user
    p = prompts.document("fn f() {}", "rust")
    assert "```rust" in p.user and "Do not" in p.system


def test_generation_prompt_has_grammar_example_and_repair_feedback() -> None:
    p = prompts.generate_contract("transfer with a 1% fee")
    assert AETHEL_GRAMMAR_SUMMARY.splitlines()[0] in p.system
    assert "```aethel" in p.system and "transfer with a 1% fee" in p.user
    r = prompts.repair_contract("transfer", "intent x( {", ["line 1: expected `)`"])
    assert "intent x( {" in r.user and "- line 1: expected `)`" in r.user
    assert prompts.generate_contract("").user.endswith("a small, correct example contract")


def test_extract_code_and_comment_descriptions() -> None:
    assert prompts.extract_code("Sure!\n```py\na = 1\nb = 2\n```\nEnjoy") == "a = 1\nb = 2"
    assert prompts.extract_code("```\nunterminated") == "unterminated"
    assert prompts.extract_code("plain") == "plain"
    assert prompts.description_from_comment("# pay 1% fee") == "pay 1% fee"
    assert prompts.description_from_comment("// js style") == "js style"
    assert prompts.description_from_comment("#") is None
    assert prompts.description_from_comment("x = 1") is None


def test_pick_model_prefers_coders_and_skips_embeddings() -> None:
    models = [
        ModelInfo("nomic-embed-text:latest", capabilities=("embedding",)),
        ModelInfo("qwen3:4b", capabilities=("completion", "thinking")),
        ModelInfo("llama3.2:latest", capabilities=("completion", "tools")),
    ]
    assert pick_model(models, "chat") == "llama3.2:latest"
    models.append(ModelInfo("qwen2.5-coder:1.5b", capabilities=("completion", "insert")))
    assert pick_model(models, "completion") == "qwen2.5-coder:1.5b"
    assert pick_model([ModelInfo("nomic-embed-text", capabilities=("embedding",))], "chat") is None
    assert pick_model([], "chat") is None


def test_keep_line_ending() -> None:
    assert keep_line_ending("a\n", "b") == "b\n"
    assert keep_line_ending("a", "b\n\n") == "b"


def test_contract_text_marks_invalid_and_fences_outside_aethel() -> None:
    target = ContractTarget(POINT, "d", "", fenced=False)
    assert contract_text("intent a() {}", [], target) == "intent a() {}\n"
    problems = parse("intent broken( {").diagnostics
    assert problems
    marked = contract_text("intent broken( {", problems, target)
    assert marked.startswith("# aethel-lsp: INVALID, line 1: ")
    fenced = contract_text("intent a() {}", [], ContractTarget(POINT, "d", "", fenced=True))
    assert fenced == "```aethel\nintent a() {}\n```\n"
