"""What the Aethel checker may spend and which optional checks it runs.

Kept apart from the checker (which imports z3 on first use) so the command line and the
server can build options from flags and settings without loading the solver.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_FILE_BUDGET_MS",
    "DEFAULT_INTENT_BUDGET_MS",
    "DEFAULT_TIMEOUT_MS",
    "NOT_PROVEN_CODES",
    "CheckOptions",
]

DEFAULT_TIMEOUT_MS = 2000  # one solver query
DEFAULT_INTENT_BUDGET_MS = 6000  # every query of one intent together
DEFAULT_FILE_BUDGET_MS = 30_000  # every query of one file together

# Findings that mean "the checker could not establish this", not "this is wrong":
# warnings (or information) by default, errors under `strict`.
NOT_PROVEN_CODES = frozenset({"solver-unknown", "solver-budget", "unsupported"})


@dataclass(frozen=True)
class CheckOptions:
    """Limits and switches of one check (`aethel-lsp check` flags, `checker.*` settings)."""

    timeout_ms: int = DEFAULT_TIMEOUT_MS
    intent_budget_ms: int = DEFAULT_INTENT_BUDGET_MS
    file_budget_ms: int = DEFAULT_FILE_BUDGET_MS
    # "not proven" (solver unknown, budget spent, unsupported) is an error, not a warning
    strict: bool = False
    # optional: every verify line that is not a state update follows from the guard
    # and the state updates
    verify_implied: bool = False
    # optional: no arithmetic on unknowns can leave the signed 64-bit range
    symbolic_overflow: bool = False
