"""Recommendations: one table of advice, else the best installed model, with reasons."""

from __future__ import annotations

import doctest

import pytest

import aethel_lsp.doctor.checks as doctor_checks
import aethel_lsp.engine.recommend as recommend_module
from aethel_lsp.engine.recommend import (
    SMALL_CODE_MODEL,
    USE_CASES,
    pick_model,
    recommend,
    recommend_all,
)
from aethel_lsp.engine.types import ModelInfo
from aethel_lsp.lsp import actions

B = 1_000_000_000
CODER_1B = ModelInfo("qwen2.5-coder:1.5b", parameters=int(1.5 * B),
                     capabilities=("completion", "insert"))
CODER_14B = ModelInfo("qwen2.5-coder:14b", parameters=14 * B,
                      capabilities=("completion", "insert"))
LLAMA_3B = ModelInfo("llama3.2:latest", parameter_size="3.2B", capabilities=("completion",))
GEMMA_27B = ModelInfo("gemma3:27b", parameters=27 * B, capabilities=("completion", "vision"))
THINKER = ModelInfo("qwen3:8b", parameters=8 * B, capabilities=("completion", "thinking"))
EMBED = ModelInfo("nomic-embed-text:latest", parameters=137_000_000,
                  capabilities=("embedding",))


def by_case(models: list[ModelInfo]) -> dict[str, str | None]:
    return {rec.use_case: rec.model for rec in recommend_all(models)}


def test_one_table_of_advice_with_tags_that_exist() -> None:
    """The earlier engine's table named tags Ollama never had (deepseek-coder:7b) and a 7B
    model as "fast"; ours is the one source the doctor, the actions and the docs use."""
    assert {u.name: u.default for u in USE_CASES} == {
        "coding": "qwen2.5-coder:1.5b", "general": "llama3.2:3b", "fast": "qwen2.5-coder:0.5b",
        "powerful": "llama3.3:70b", "code_large": "qwen2.5-coder:32b"}
    assert doctor_checks.SMALL_CODE_MODEL is SMALL_CODE_MODEL == USE_CASES[0].default
    assert actions.SUGGESTED_MODEL is SMALL_CODE_MODEL


def test_installed_recommendation_is_used() -> None:
    rec = recommend([CODER_1B, CODER_14B], USE_CASES[0])
    assert rec.recommended_installed and rec.model == "qwen2.5-coder:1.5b"
    assert rec.to_json() == {
        "useCase": "coding", "description": "everyday code tasks and inline completion",
        "recommended": "qwen2.5-coder:1.5b", "recommendedInstalled": True,
        "model": "qwen2.5-coder:1.5b",
        "reason": "qwen2.5-coder:1.5b is installed — the recommended model for this."}


@pytest.mark.parametrize(
    "models",
    [
        [CODER_1B, CODER_14B, LLAMA_3B, GEMMA_27B, EMBED],
        [CODER_14B, LLAMA_3B, GEMMA_27B],
        [LLAMA_3B, GEMMA_27B, THINKER],
        [THINKER, CODER_14B],
        [GEMMA_27B],
    ],
)
def test_generate_default_is_recommends_coding_pick(models: list[ModelInfo]) -> None:
    """`generate` without --model, the editor and `recommend` never disagree."""
    assert pick_model(models, "chat") == recommend(models, USE_CASES[0]).model


def test_thinking_models_only_when_nothing_else_answers() -> None:
    assert recommend([THINKER, LLAMA_3B], USE_CASES[1]).model == "llama3.2:latest"
    assert recommend([THINKER], USE_CASES[1]).model == "qwen3:8b"


def test_latest_tag_matches() -> None:
    general = next(u for u in USE_CASES if u.name == "general")
    custom = type(general)("general", "llama3.2", "x", False, 8 * B)
    assert recommend([LLAMA_3B], custom).recommended_installed


def test_best_installed_per_use_case() -> None:
    picks = by_case([CODER_1B, CODER_14B, LLAMA_3B, GEMMA_27B, EMBED])
    assert picks == {
        "coding": "qwen2.5-coder:1.5b",  # the recommended one is installed
        "general": "llama3.2:latest",  # a general model is preferred over coders
        "fast": "qwen2.5-coder:1.5b",  # smallest code model (embedding model excluded)
        "powerful": "gemma3:27b",
        "code_large": "qwen2.5-coder:14b",
    }


def test_reason_explains_the_pick() -> None:
    rec = recommend([CODER_14B, LLAMA_3B], USE_CASES[0])
    assert not rec.recommended_installed
    assert rec.reason.startswith("qwen2.5-coder:1.5b is not installed (`ollama pull "
                                 "qwen2.5-coder:1.5b`); qwen2.5-coder:14b is the best")
    assert "a code model" in rec.reason and "insert" in rec.reason and "14.0B" in rec.reason


def test_no_code_model_falls_back_to_general_and_says_so() -> None:
    rec = recommend([LLAMA_3B], USE_CASES[0])
    assert rec.model == "llama3.2:latest" and "no code model is installed" in rec.reason


def test_nothing_usable() -> None:
    rec = recommend([EMBED], USE_CASES[0])
    assert rec.model is None and "ollama pull qwen2.5-coder:1.5b" in rec.reason


def test_doctests() -> None:
    assert doctest.testmod(recommend_module).failed == 0
