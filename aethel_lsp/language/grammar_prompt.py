"""Prompt material that lets small local models write valid Aethel, and answer parsing.

`AETHEL_GRAMMAR_SUMMARY` is deliberately short (a few hundred tokens): small models
follow a compact rule list plus one complete example better than a full grammar.  It
lists the constructs models borrow from other languages, because those are the
mistakes they make.  `extract_aethel` pulls the contract out of a chatty answer.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["AETHEL_FEW_SHOT", "AETHEL_GRAMMAR_SUMMARY", "extract_aethel"]

AETHEL_GRAMMAR_SUMMARY: Final = """\
Aethel is a tiny contract language. A file is one or more intents:

intent NAME(param: Type, secret param: Type, external param: Type) {
    guard {
        CONDITION;
    }
    solve {
        priority: security;
        target: ledger;
    }
    verify {
        CONDITION;
    }
}

Rules:
- Every intent has exactly three blocks, in this order: guard (preconditions),
  solve (hints `key: value;` only, no conditions), verify (postconditions).
- Each block holds at least one entry; every entry ends with `;`.
- A CONDITION is exactly one comparison: EXPR OP EXPR with OP one of
  == != < <= > >=. Optional prefix: `secret`. Implication is allowed as
  (a > b) ==> (c > d);
- EXPR uses names, integer numbers, + - * / % and parentheses only.
- Pre-state values are named old_NAME and pinned in guard: old_x == x;
  A balance change in verify is written x == old_x + amount; or
  x == old_x - amount; and all balance changes must sum to zero.
- Comments start with #. Several intents may be grouped in
  atomic_batch NAME { intent ... intent ... }.
Not Aethel (never write these): // comments, = assignment, let, if/else,
&&, ||, !, and/or/not, function calls f(x), member access a.b, strings,
return, assert/ensure/require/prove, semicolon-free lines."""

AETHEL_FEW_SHOT: Final = """\
# Move funds between two accounts; total supply must not change.
intent transfer(sender: Account, receiver: Account, amount: Balance) {
    guard {
        amount > 0;
        sender_balance >= amount;
        old_sender_balance == sender_balance;
        old_receiver_balance == receiver_balance;
    }
    solve {
        priority: security;
        target: ledger;
    }
    verify {
        sender_balance == old_sender_balance - amount;
        receiver_balance == old_receiver_balance + amount;
    }
}
"""

_FENCE_RE: Final = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_ITEM_START_RE: Final = re.compile(r"^[ \t]*(intent|atomic_batch)\b", re.MULTILINE)


def extract_aethel(text: str) -> str:
    """The Aethel contract inside a model answer (fences and chatter removed).

    Preference: a fenced block tagged aethel/ae, then any fenced block that contains an
    intent, then the run of lines from the first `intent`/`atomic_batch` to the brace
    that closes the last item.  Falls back to the stripped text.
    """
    fences = _FENCE_RE.findall(text)
    tagged = [body for tag, body in fences if tag.lower() in ("aethel", "ae")]
    for body in tagged + [body for _, body in fences]:
        if _ITEM_START_RE.search(body):
            return _trim(_cut_items(body))
    if _ITEM_START_RE.search(text):
        return _trim(_cut_items(text))
    return _trim(text)


def _cut_items(text: str) -> str:
    """From the comments before the first item to the close of the last item."""
    match = _ITEM_START_RE.search(text)
    if match is None:
        return text
    lines = text[: match.start()].split("\n")
    start_line = len(lines) - 1
    all_lines = text.split("\n")
    while start_line > 0 and all_lines[start_line - 1].lstrip().startswith("#"):
        start_line -= 1
    out: list[str] = []
    depth = 0
    seen_brace = False
    for line in all_lines[start_line:]:
        code = line.split("#", 1)[0]
        stripped = line.strip()
        if (
            depth == 0
            and seen_brace
            and stripped
            and not (stripped.startswith("#") or re.match(r"(intent|atomic_batch)\b", stripped))
        ):
            break
        out.append(line)
        depth += code.count("{") - code.count("}")
        if "{" in code:
            seen_brace = True
        depth = max(depth, 0)
    return "\n".join(out)


def _trim(text: str) -> str:
    lines = text.strip("\n").split("\n")
    if len(lines) == 1:
        lines[0] = lines[0].strip()
    text = "\n".join(lines).rstrip()
    return text + "\n" if text else ""
