"""Prompt templates for the code actions: explain, improve, document, fix, generate.

Pure text in, `ActionPrompt` out (no I/O): the server turns a prompt into a chat
request.  Templates ask for exactly one fenced block when the answer is code, so
`extract_code` can take the code out of a chatty answer.  For Aethel generation the
prompt carries the grammar summary and the few-shot example of
`aethel_lsp.language.grammar_prompt`, so that even small local models write valid Aethel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aethel_lsp.language.grammar_prompt import AETHEL_FEW_SHOT, AETHEL_GRAMMAR_SUMMARY


@dataclass(frozen=True)
class ActionPrompt:
    system: str
    user: str


_CODE_RULES = (
    "Answer with exactly one fenced code block containing the complete replacement for the "
    "given code, and nothing else: no explanation before or after it."
)


def _fence(code: str, language: str) -> str:
    return f"```{language}\n{code.rstrip()}\n```"


def explain(code: str, language: str) -> ActionPrompt:
    return ActionPrompt(
        system=(
            "You are a senior engineer explaining code to a colleague. Be concise and "
            "concrete: what it does, how, and anything surprising or risky. Use Markdown."
        ),
        user=f"Explain this {language} code:\n\n{_fence(code, language)}",
    )


def improve(code: str, language: str) -> ActionPrompt:
    return ActionPrompt(
        system=(
            "You rewrite code to be clearer, safer and more idiomatic without changing "
            "its behaviour or its public names. " + _CODE_RULES
        ),
        user=f"Improve this {language} code:\n\n{_fence(code, language)}",
    )


def document(code: str, language: str) -> ActionPrompt:
    return ActionPrompt(
        system=(
            "You add documentation to code: docstrings or doc comments in the usual style "
            "of the language, and short comments where the code is not obvious. Do not "
            "change the code itself. " + _CODE_RULES
        ),
        user=f"Add documentation to this {language} code:\n\n{_fence(code, language)}",
    )


def fix(code: str, language: str, problems: Sequence[str]) -> ActionPrompt:
    listed = "\n".join(f"- {p}" for p in problems) or "- (no message given)"
    return ActionPrompt(
        system="You fix the reported problems with the smallest correct change. " + _CODE_RULES,
        user=(
            f"Fix these problems in the {language} code below:\n{listed}\n\n"
            f"{_fence(code, language)}"
        ),
    )


def generate_contract(description: str, existing: str = "") -> ActionPrompt:
    """Ask for an Aethel program that implements `description` (or completes `existing`)."""
    grammar = AETHEL_GRAMMAR_SUMMARY
    example = AETHEL_FEW_SHOT
    task = description.strip() or "a small, correct example contract"
    user = f"Write an Aethel contract for: {task}"
    if existing.strip():
        user += f"\n\nStart from this draft:\n{_fence(existing, 'aethel')}"
    return ActionPrompt(
        system=(
            "You write Aethel smart contracts. Use only the syntax below.\n\n"
            f"{grammar}\n\nExample:\n{_fence(example, 'aethel')}\n\n"
            "Answer with exactly one ```aethel fenced block containing the whole program."
        ),
        user=user,
    )


def repair_contract(description: str, previous: str, problems: Sequence[str]) -> ActionPrompt:
    """The repair round: the previous answer plus the diagnostics it produced."""
    base = generate_contract(description)
    listed = "\n".join(f"- {p}" for p in problems)
    return ActionPrompt(
        system=base.system,
        user=(
            f"{base.user}\n\nYour previous answer:\n{_fence(previous, 'aethel')}\n\n"
            f"It has these problems:\n{listed}\n\nReturn the corrected, complete program."
        ),
    )


_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:\n```|```|\Z)", re.DOTALL)


def extract_code(answer: str) -> str:
    """The code inside the first fenced block of `answer`, else the whole answer.

    >>> extract_code("Sure:\\n```py\\nx = 1\\n```\\nDone.")
    'x = 1'
    >>> extract_code("x = 1\\n")
    'x = 1'
    """
    match = _FENCE.search(answer)
    code = match.group(1) if match else answer
    return code.strip("\n").rstrip()


_INTENT_COMMENT = re.compile(r"^\s*(?:#|//|--|;)\s*(.+?)\s*$")


def description_from_comment(line: str) -> str | None:
    """`# transfer with a 1% fee to the treasury` -> the description, else None.

    >>> description_from_comment("  # transfer with a 1% fee")
    'transfer with a 1% fee'
    >>> description_from_comment("intent x() {") is None
    True
    """
    match = _INTENT_COMMENT.match(line)
    return match.group(1) if match and match.group(1) else None
