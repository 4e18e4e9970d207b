"""What a generation costs: the user's `prices`, else a built-in table of hosted models.

The built-in figures are list prices in USD per million tokens, copied by hand from the
providers' public model pages on `PRICES_CHECKED`; prices change, so the user's own
`prices` always win and the date is shown wherever the table is.  Only models whose
price we could check are listed (Anthropic's); for any other hosted model, set `prices`
in the provider's settings, or its cost reads as unknown (null), never as zero.
Cache reads/writes and batch discounts are not modelled: the cost is input tokens at the
input price plus output tokens at the output price.
"""

from __future__ import annotations

import re
from typing import Final

from aethel_lsp.config.provider_settings import Price, ProviderSettings
from aethel_lsp.engine.types import Metrics

PRICES_CHECKED: Final = "2026-12-07"

# kind -> model id -> price (platform.claude.com model pages, read on PRICES_CHECKED).
BUILTIN_PRICES: Final[dict[str, dict[str, Price]]] = {
    "anthropic": {
        "claude-fable-5-1": Price(10.0, 50.0),
        "claude-opus-5-5": Price(4.0, 20.0),
        "claude-opus-5": Price(5.0, 25.0),
        "claude-sonnet-5-5": Price(2.0, 10.0),
        # Haiku 5.5 is priced in two bands; this is the band for prompts up to 100k tokens.
        "claude-haiku-5-5": Price(0.10, 0.50),
        "claude-haiku-4-5": Price(1.0, 5.0),
    },
}
_DATE_SUFFIX = re.compile(r"-\d{8}$")


def price_of(provider: ProviderSettings, model: str) -> Price | None:
    """The user's price for `model`, else the built-in one (a dated id matches its base).

    >>> from aethel_lsp.config.provider_settings import ProviderSettings
    >>> claude = ProviderSettings("claude", "anthropic")
    >>> price_of(claude, "claude-haiku-4-5-20251001")
    Price(input=1.0, output=5.0)
    >>> price_of(ProviderSettings("team", "openai"), "coder") is None
    True
    """
    own = provider.price_for(model)
    if own is not None:
        return own
    table = BUILTIN_PRICES.get(provider.kind, {})
    return table.get(model) or table.get(_DATE_SUFFIX.sub("", model))


def cost_of(metrics: Metrics, price: Price | None) -> float | None:
    """USD for one generation; None when the price or either token count is unknown."""
    if price is None or metrics.prompt_tokens is None or metrics.tokens_generated is None:
        return None
    return price.cost(metrics.prompt_tokens, metrics.tokens_generated)
