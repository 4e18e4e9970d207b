"""How the distiller ranks candidates, in this order (docs/aethel.md, "The distiller"):

1. valid (parses and passes every check) beats any candidate that does not;
2. then fewer warnings;
3. then the intent's name and parameters matching the description better;
4. then the cheaper one (no price = free, a local model), then the faster one;
5. ties keep the order in which the candidates were asked for.

`score` summarises the rank on 0-100: 50 for valid, 24/18/12/6/0 for 0/1/2/3/4+ warnings,
up to 5 for the name match (in steps of 0.5), under 0.5 for cost and speed together; each
step is larger than everything below it, so a higher score never ranks lower.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from aethel_lsp.distill.candidate import Candidate
from aethel_lsp.language.ast import Batch, Intent
from aethel_lsp.language.parser import parse

_WORD = re.compile(r"[a-z][a-z0-9]*")
_STOP_WORDS = frozenset({
    "a", "an", "and", "the", "of", "to", "for", "with", "from", "in", "on", "by", "at", "or",
    "is", "be", "as", "that", "this", "it", "its", "into", "when", "then", "than", "after",
    "before", "each", "all", "any", "who", "which", "whose",
})


def words(text: str) -> set[str]:
    """Lower-case words of `text`, splitting snake_case and camelCase, minus stop words.

    >>> sorted(words("transferWithFee to the treasury_account"))
    ['account', 'fee', 'transfer', 'treasury']
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text).replace("_", " ").lower()
    return {w for w in _WORD.findall(spaced) if w not in _STOP_WORDS and len(w) > 1}


def name_match(description: str, text: str) -> float:
    """The share of the description's words found in intent names and parameters, 0..1."""
    wanted = words(description)
    if not wanted:
        return 0.0
    named: set[str] = set()
    for intent in _intents(text):
        named |= words(intent.display_name)
        for param in intent.params:
            named |= words(param.name.name)
    return len(wanted & named) / len(wanted)


def _intents(text: str) -> list[Intent]:
    found: list[Intent] = []
    for item in parse(text).program.items:
        found.extend(item.intents if isinstance(item, Batch) else [item])
    return found


def rank_key(candidate: Candidate, match: float) -> tuple[float, ...]:
    """Sort key, smallest first: the precedence of the module docstring."""
    cost = candidate.cost_usd or 0.0
    latency = (candidate.metrics.latency_ms if candidate.metrics else None) or float("inf")
    return (
        0.0 if candidate.valid else 1.0,
        float(len(candidate.warnings)),
        -round(match, 1),
        cost,
        latency,
        float(candidate.index),
    )


def score(candidate: Candidate, match: float, cheapest: float, fastest: float) -> float:
    points = 50.0 if candidate.valid else 0.0
    points += (24.0, 18.0, 12.0, 6.0, 0.0)[min(len(candidate.warnings), 4)]
    points += 5.0 * round(match, 1)
    cost = candidate.cost_usd or 0.0
    points += 0.3 * (1.0 if cost <= cheapest else cheapest / cost)
    latency = candidate.metrics.latency_ms if candidate.metrics else None
    points += 0.15 * (fastest / latency if latency and fastest else 0.0)
    return round(points, 2)


def rank(candidates: Sequence[Candidate], description: str) -> list[Candidate]:
    """`candidates` best first, each with its score and the one-line reason for it."""
    matches = {c.index: name_match(description, c.text) if c.text else 0.0 for c in candidates}
    cheapest = min((c.cost_usd or 0.0 for c in candidates), default=0.0)
    latencies = [c.metrics.latency_ms for c in candidates if c.metrics and c.metrics.latency_ms]
    fastest = min(latencies, default=0.0)
    ordered = sorted(candidates, key=lambda c: rank_key(c, matches[c.index]))
    return [
        dataclasses.replace(
            c,
            score=score(c, matches[c.index], cheapest, fastest),
            reason=reason(c, matches[c.index]),
        )
        for c in ordered
    ]


def reason(candidate: Candidate, match: float) -> str:
    """One line: why this candidate stands where it does."""
    if candidate.error is not None:
        return f"no answer: {candidate.error}"
    if not candidate.text.strip():
        return "no Aethel program in the answer"
    if not candidate.valid:
        first = candidate.errors[0]
        more = len(candidate.errors) - 1
        extra = f" (+{more} more)" if more else ""
        return f"{first.code}: line {first.range.start.line + 1}: {first.message}{extra}"
    warned = len(candidate.warnings)
    parts = ["valid", f"{warned} warning{'s' if warned != 1 else ''}"]
    parts.append(f"names match {round(match * 100)}% of the description")
    if candidate.attempts > 1:
        parts.append(f"after {candidate.attempts - 1} repair round(s)")
    return ", ".join(parts)


def explanation(ranked: Sequence[Candidate], asked: int, stopped_early: str = "") -> str:
    """The choice and, one line each, what every other candidate failed or lacked."""
    if not ranked:
        return "No candidate was generated."
    best = ranked[0]
    lines = []
    if best.valid:
        lines.append(f"Chose {best.label}: {best.reason}.")
    else:
        lines.append(f"No candidate of {len(ranked)} passed the checker.")
    for other in ranked[1:] if best.valid else ranked:
        verdict = "rejected" if not other.valid else "ranked lower"
        lines.append(f"{other.label} {verdict}: {other.reason}.")
    if stopped_early:
        lines.append(stopped_early)
    elif len(ranked) < asked:
        lines.append(f"{asked - len(ranked)} candidate(s) did not finish.")
    return "\n".join(lines)
