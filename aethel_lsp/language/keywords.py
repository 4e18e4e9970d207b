"""Hover documentation for Aethel keywords, operators and conventions (Markdown)."""

from __future__ import annotations

from typing import Final

KEYWORD_DOCS: Final[dict[str, str]] = {
    "intent": (
        "**intent** `name(params) { guard {...} solve {...} verify {...} }`\n\n"
        "A state transition. The solver checks that its `guard` can hold, that `guard` and "
        "`verify` hold together, and that balance changes in `verify` sum to zero. Intent "
        "names are unique within a file and within an `atomic_batch`."
    ),
    "atomic_batch": (
        "**atomic_batch** `name { intent ... }`\n\n"
        "A group of intents that succeed or fail together."
    ),
    "guard": (
        "**guard** `{ cond; ... }`: preconditions.\n\n"
        "Every condition must hold before the intent runs. Names read their *pre-state* "
        "values here; pin snapshots with `old_x == x;`."
    ),
    "solve": (
        "**solve** `{ key: value; ... }`: hints for code generation (`priority: security;`, "
        "`target: ledger;`, `oracle: feed;`). They carry no logic and are not checked."
    ),
    "verify": (
        "**verify** `{ cond; ... }`: postconditions.\n\n"
        "Must be satisfiable together with `guard`. `x == old_x + e` / `x == old_x - e` is a "
        "balance change of `+e` / `-e`; all balance changes must sum to zero (conservation)."
    ),
    "secret": (
        "**secret**: marks a parameter or condition whose value must stay private "
        "(zero-knowledge in upstream's plans). It does not change what is checked."
    ),
    "external": (
        "**external**: marks an oracle-supplied parameter (a value from outside the ledger, "
        "such as a price feed)."
    ),
    "==>": (
        "**==>** implication (extension): `(a > b) ==> (c > d)` holds when the left "
        "comparison is false or the right one is true."
    ),
}

OPERATOR_DOCS: Final[dict[str, str]] = {
    "==": "`==` equality (a comparison, not an assignment)",
    "!=": "`!=` inequality",
    "<": "`<` less than",
    "<=": "`<=` less than or equal",
    ">": "`>` greater than",
    ">=": "`>=` greater than or equal",
    "/": "`/` integer division (z3 `div`: rounds so the remainder is never negative)",
    "%": "`%` remainder (z3 `mod`)",
}

OLD_PREFIX_DOC: Final = (
    "By convention `old_{name}` is the value of `{name}` before the intent ran (pin it in "
    "`guard` with `old_{name} == {name};`)."
)
