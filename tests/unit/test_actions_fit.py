"""ensure_fits: a prompt larger than the context is refused before any engine request."""

from __future__ import annotations

import pytest

from aethel_lsp.config import Settings
from aethel_lsp.lsp.actions import ensure_fits
from aethel_lsp.lsp.handlers import UserError
from aethel_lsp.prompts.actions import ActionPrompt

CODE = "x = 1\n" * 1500  # about 3,000 tokens
PROMPT = ActionPrompt(system="Explain.", user=CODE)


def test_fits_the_configured_context() -> None:
    ensure_fits(PROMPT, CODE, Settings())  # contextSize 8192 by default


def test_a_smaller_model_window_wins_and_says_so() -> None:
    with pytest.raises(UserError) as info:
        ensure_fits(PROMPT, CODE, Settings(), model_context=2048)
    message = str(info.value)
    assert "the context is 2,048 tokens" in message
    assert "use a model with a longer context" in message


def test_a_larger_model_window_does_not_lift_the_configured_limit() -> None:
    with pytest.raises(UserError) as info:
        ensure_fits(PROMPT, CODE, Settings(context_size=2048), model_context=32768)
    assert "raise `contextSize`" in str(info.value)
