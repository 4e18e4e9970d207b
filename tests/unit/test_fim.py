"""FIM mode choice and the exact requests each mode produces."""

from __future__ import annotations

import pytest

from aethel_lsp.engine.types import GenerationOptions, ModelInfo
from aethel_lsp.prompts.fim import (
    ALL_SPECIAL_TOKENS,
    CODELLAMA,
    CODESTRAL,
    DEEPSEEK_CODER,
    QWEN_CODER,
    STARCODER2,
    FimMode,
    FimPrompt,
    build_chat_request,
    build_generate_request,
    choose_mode,
    plan_for_empty_prefix,
    template_for,
)

PROMPT = FimPrompt(
    prefix="def add(a, b):\n    ", suffix="\n\nprint(add(1, 2))\n", language_id="python"
)
OPTIONS = GenerationOptions(temperature=0.1, num_predict=64)


def test_insert_capability_means_native_suffix() -> None:
    info = ModelInfo("qwen2.5-coder:1.5b", family="qwen2", capabilities=("completion", "insert"))
    plan = choose_mode("qwen2.5-coder:1.5b", info)
    assert plan.mode is FimMode.NATIVE
    assert "insert" in plan.reason
    request = build_generate_request(plan, PROMPT, OPTIONS, "30m")
    assert request.prompt == PROMPT.prefix
    assert request.suffix == PROMPT.suffix
    assert request.raw is False
    assert request.keep_alive == "30m"
    assert request.options.num_predict == 64


@pytest.mark.parametrize(
    ("model", "family", "template"),
    [
        ("qwen2.5-coder:7b-base", "qwen2", QWEN_CODER),
        ("deepseek-coder:1.3b-base", "llama", DEEPSEEK_CODER),
        ("codellama:7b-code", "llama", CODELLAMA),
        ("starcoder2:3b", "starcoder2", STARCODER2),
        ("codestral:22b", "llama", CODESTRAL),
        ("my-registry.example/team/starcoder2-finetune:latest", None, STARCODER2),
        ("custom-model", "starcoder2", STARCODER2),
    ],
)
def test_known_family_without_insert_uses_raw_template(
    model: str, family: str | None, template: object
) -> None:
    info = ModelInfo(model, family=family, capabilities=("completion",))
    plan = choose_mode(model, info)
    assert plan.mode is FimMode.TEMPLATE
    assert plan.template is template
    assert "no 'insert' capability" in plan.reason
    request = build_generate_request(plan, PROMPT, OPTIONS, None)
    assert request.raw is True
    assert request.suffix is None  # Ollama refuses `suffix` without `insert`, even raw
    assert request.system is None  # raw mode refuses `system`
    assert set(plan.template.stop) <= set(request.options.stop)


def test_template_renders_the_real_special_tokens() -> None:
    assert QWEN_CODER.render("P", "S") == "<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>"
    assert STARCODER2.render("P", "S") == "<fim_prefix>P<fim_suffix>S<fim_middle>"
    assert CODELLAMA.render("P", "S") == "<PRE> P <SUF>S <MID>"
    assert DEEPSEEK_CODER.render("P", "S") == "<｜fim▁begin｜>P<｜fim▁hole｜>S<｜fim▁end｜>"
    assert CODESTRAL.render("P", "S") == "[SUFFIX]S[PREFIX]P"


def test_unknown_model_without_insert_falls_back_to_chat() -> None:
    info = ModelInfo("llama3.2:1b", family="llama", capabilities=("completion", "tools"))
    plan = choose_mode("llama3.2:1b", info)
    assert plan.mode is FimMode.CHAT
    assert "completion, tools" in plan.reason
    chat = build_chat_request(plan, PROMPT, OPTIONS, "5m")
    assert [m.role for m in chat.messages] == ["system", "user"]
    user = chat.messages[1].content
    assert user.startswith("```python\n" + PROMPT.prefix + "<CURSOR>" + PROMPT.suffix)
    with pytest.raises(ValueError, match="not a generate plan"):
        build_generate_request(plan, PROMPT, OPTIONS, None)


def test_show_failure_still_uses_the_name() -> None:
    plan = choose_mode("codellama:7b-code", None)
    assert plan.mode is FimMode.TEMPLATE
    assert "capabilities: none" in plan.reason
    assert choose_mode("mystery", None).mode is FimMode.CHAT


def test_insert_wins_over_family_template() -> None:
    info = ModelInfo("codellama:7b-code", capabilities=("completion", "insert"))
    assert choose_mode("codellama:7b-code", info).mode is FimMode.NATIVE
    assert template_for("codellama:7b-code", info) is CODELLAMA


def test_special_token_list_has_every_family_marker() -> None:
    for token in ("<|fim_middle|>", "<fim_middle>", "<MID>", "<｜fim▁end｜>", "[PREFIX]", "<EOT>"):
        assert token in ALL_SPECIAL_TOKENS
    assert "" not in ALL_SPECIAL_TOKENS


def test_describe_names_model_mode_and_reason() -> None:
    plan = choose_mode("starcoder2:3b", ModelInfo("starcoder2:3b", capabilities=("completion",)))
    assert plan.describe().startswith("FIM mode for starcoder2:3b: template (")


def test_empty_prefix_never_uses_the_native_plan() -> None:
    """Ollama answers an empty `prompt` by loading the model only (done_reason "load")."""
    from aethel_lsp.prompts.fim import plan_for_empty_prefix

    native = choose_mode(
        "qwen2.5-coder:1.5b", ModelInfo("qwen2.5-coder:1.5b", capabilities=("insert",))
    )
    fallback = plan_for_empty_prefix(native)
    assert fallback.mode is FimMode.TEMPLATE and fallback.template is QWEN_CODER
    request = build_generate_request(fallback, FimPrompt("", "\nprint(1)\n"), OPTIONS, None)
    assert request.prompt == "<|fim_prefix|><|fim_suffix|>\nprint(1)\n<|fim_middle|>"
    assert request.raw
    unknown = choose_mode("mystery", ModelInfo("mystery", capabilities=("insert",)))
    assert plan_for_empty_prefix(unknown).mode is FimMode.CHAT
    template = choose_mode("starcoder2:3b", None)
    assert plan_for_empty_prefix(template) is template


def test_an_engine_with_a_prompt_cache_continues_the_prefix() -> None:
    """The embedded engine: a model without FIM continues the text before the cursor as a
    raw prompt (stable between keystrokes, so llama.cpp's cache reuses it), not chat."""
    smol = ModelInfo("SmolLM2-135M-Instruct.Q4_1", capabilities=("completion",))
    plan = choose_mode(smol.name, smol, continuation=True)
    assert plan.mode is FimMode.CONTINUE and "cached prefix" in plan.reason
    request = build_generate_request(plan, FimPrompt("# a.py\ndef add(a, b):\n", "\nx = 1\n"),
                                     GenerationOptions(num_predict=16), None)
    assert (request.prompt, request.raw, request.suffix) == ("# a.py\ndef add(a, b):\n", True,
                                                            None)
    assert plan_for_empty_prefix(plan).mode is FimMode.CHAT
    coder = ModelInfo("qwen2.5-coder:1.5b", capabilities=("completion", "insert"))
    assert choose_mode(coder.name, coder, continuation=True).mode is FimMode.NATIVE
    assert choose_mode(smol.name, smol).mode is FimMode.CHAT  # Ollama: unchanged
