"""Recommendations: the earlier engine's defaults, else the best installed model, with reasons."""

from __future__ import annotations

import doctest

import aethel_lsp.engine.recommend as recommend_module
from aethel_lsp.engine.recommend import USE_CASES, recommend, recommend_all
from aethel_lsp.engine.types import ModelInfo

B = 1_000_000_000
CODER_1B = ModelInfo("qwen2.5-coder:1.5b", parameters=int(1.5 * B),
                     capabilities=("completion", "insert"))
CODER_14B = ModelInfo("qwen2.5-coder:14b", parameters=14 * B,
                      capabilities=("completion", "insert"))
LLAMA_3B = ModelInfo("llama3.2:latest", parameter_size="3.2B", capabilities=("completion",))
GEMMA_27B = ModelInfo("gemma3:27b", parameters=27 * B, capabilities=("completion", "vision"))
EMBED = ModelInfo("nomic-embed-text:latest", parameters=137_000_000,
                  capabilities=("embedding",))


def by_case(models: list[ModelInfo]) -> dict[str, str | None]:
    return {rec.use_case: rec.model for rec in recommend_all(models)}


def test_defaults_are_the_earlier_engines() -> None:
    assert {u.name: u.default for u in USE_CASES} == {
        "coding": "deepseek-coder:7b", "general": "llama3:8b", "fast": "mistral:7b",
        "powerful": "llama3:70b", "code_large": "deepseek-coder:33b"}


def test_installed_recommendation_is_used() -> None:
    rec = recommend([ModelInfo("deepseek-coder:7b"), CODER_14B], USE_CASES[0])
    assert rec.recommended_installed and rec.model == "deepseek-coder:7b"
    assert rec.to_json() == {
        "useCase": "coding", "description": "everyday code tasks and completion",
        "recommended": "deepseek-coder:7b", "recommendedInstalled": True,
        "model": "deepseek-coder:7b",
        "reason": "deepseek-coder:7b is installed — the recommended model for this."}


def test_latest_tag_matches() -> None:
    general = next(u for u in USE_CASES if u.name == "general")
    custom = type(general)("general", "llama3.2", "x", False, 8 * B)
    assert recommend([LLAMA_3B], custom).recommended_installed


def test_best_installed_per_use_case() -> None:
    picks = by_case([CODER_1B, CODER_14B, LLAMA_3B, GEMMA_27B, EMBED])
    assert picks == {
        "coding": "qwen2.5-coder:14b",  # code model closest to 7B by ratio
        "general": "llama3.2:latest",  # a general model is preferred over coders
        "fast": "qwen2.5-coder:1.5b",  # smallest that can generate (embedding model excluded)
        "powerful": "gemma3:27b",
        "code_large": "qwen2.5-coder:14b",
    }


def test_reason_explains_the_pick() -> None:
    rec = recommend([CODER_1B, LLAMA_3B], USE_CASES[0])
    assert not rec.recommended_installed
    assert rec.reason.startswith("deepseek-coder:7b is not installed (`ollama pull "
                                 "deepseek-coder:7b`); qwen2.5-coder:1.5b is the best")
    assert "a code model" in rec.reason and "insert" in rec.reason and "1.5B" in rec.reason


def test_no_code_model_falls_back_to_general_and_says_so() -> None:
    rec = recommend([LLAMA_3B], USE_CASES[0])
    assert rec.model == "llama3.2:latest" and "no code model is installed" in rec.reason


def test_nothing_usable() -> None:
    rec = recommend([EMBED], USE_CASES[0])
    assert rec.model is None and "ollama pull deepseek-coder:7b" in rec.reason


def test_doctests() -> None:
    assert doctest.testmod(recommend_module).failed == 0
